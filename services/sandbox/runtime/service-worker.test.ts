/** Service-worker syntax in the isolate: `addEventListener('fetch' | 'scheduled')` with no default export. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime, WorkerError } from './index.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

test('a fetch listener answers through event.respondWith, with vars as globals and waitUntil on the event', async () => {
  const logs: LogEntry[] = [];
  const w = worker(
    `addEventListener('fetch', (event) => {
       event.waitUntil(Promise.resolve().then(() => console.log('later')));
       event.respondWith(handle(event.request));
     });
     async function handle(request) { return new Response(GREETING + ' ' + new URL(request.url).pathname + ' ' + typeof event); }`,
    { vars: { GREETING: 'hi' } },
  );
  const res = await rt.handle(w, GET, { log: (e) => logs.push(...e) });
  assert.equal(res.status, 200);
  assert.equal(text(res.body), 'hi /path undefined');
  const again = await rt.handle(w, GET, { log: () => {} });
  assert.equal(text(again.body), 'hi /path undefined', 'the listener serves every request');
});

test('a listener that never calls respondWith, or calls it late or twice, is a clear error; an ES module worker keeps its default export', async () => {
  const failure = async (source: string) => {
    const logs: LogEntry[] = [];
    await assert.rejects(rt.handle(worker(source), GET, { log: (e) => logs.push(...e) }), WorkerError);
    return logs.map((l) => l.message).join('\n');
  };
  assert.match(await failure(`addEventListener('fetch', () => {});`), /no fetch event listener called event\.respondWith\(\)/);
  assert.match(
    await failure(`addEventListener('fetch', (e) => { e.respondWith(new Response('a')); e.respondWith(new Response('b')); });`),
    /respondWith\(\) was already called/,
  );
  assert.match(await failure(`addEventListener('fetch', (e) => { setTimeout(() => e.respondWith(new Response('a'))); });`), /no fetch event listener called/);
  const late = worker(
    `addEventListener('fetch', (e) => { e.respondWith(new Response('a')); }); export default { fetch() { try { addEventListener('fetch', () => {}); return new Response('no throw'); } catch (e) { return new Response(e.message); } } };`,
  );
  const res = await rt.handle(late, GET, { log: () => {} });
  assert.match(text(res.body), /only while the worker's script is evaluated/, 'the default export wins, and registration has ended');
});

test('a limit the worker breaks in a cron tick or a queue batch is reported through that entry’s hooks (a quarantine signal), once each', async () => {
  const spin = { limits: { cpuMs: 50 } };
  const hits: string[] = [];
  const cron = worker(`export default { scheduled() { for (;;) {} } }`, spin);
  await assert.rejects(rt.runScheduled(cron, '* * * * *', Date.now(), { log: () => {}, limitHit: (k) => hits.push(`cron ${k}`) }), /CPU time limit/);
  const queue = worker(`export default { queue() { for (;;) {} } }`, spin);
  await assert.rejects(rt.runQueue(queue, 'q', [], { log: () => {}, limitHit: (k) => hits.push(`queue ${k}`) }), /CPU time limit/);
  assert.deepEqual(hits, ['cron cpu', 'queue cpu']);
});

test('a scheduled listener runs for a cron tick, its waitUntil awaited', async () => {
  const logs: LogEntry[] = [];
  const w = worker(
    `addEventListener('scheduled', (event) => { event.waitUntil(Promise.resolve().then(() => console.log('tick', event.cron, typeof event.scheduledTime))); });`,
  );
  await rt.runScheduled(w, '*/5 * * * *', Date.now(), { log: (e) => logs.push(...e) });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    logs.map((l) => l.message),
    ['tick */5 * * * * number'],
  );
});
