/**
 * The small Workers globals in the isolate: navigator, scheduler.wait, AbortSignal.any/timeout,
 * reportError and URLPattern; and hostile uses of them (wrong types, use outside a request,
 * patched prototypes) refused without harming the next request.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

/** A worker answering with JSON of what each probe returned or threw; `top` runs at module scope. */
function probes(body: string, top = ''): WorkerBundle {
  return worker(
    `${top}
     export default { async fetch(request) {
       const out = {};
       const t = async (name, f) => { try { out[name] = await f() } catch (e) { out[name] = e.name + ': ' + e.message } };
       ${body}
       return Response.json(out) } }`,
  );
}
async function json(bundle: WorkerBundle, logs: LogEntry[] = []): Promise<Record<string, unknown>> {
  const res = await rt.handle(bundle, GET, { log: (e) => logs.push(...e) });
  return JSON.parse(text(res.body)) as Record<string, unknown>;
}

test('navigator says what Workers says, and cannot be made again', async () => {
  const out = await json(
    probes(`
      await t('ua', () => [navigator.userAgent, navigator.hardwareConcurrency]);
      await t('construct', () => new Navigator());
      await t('proto', () => { Object.defineProperty(Navigator.prototype, 'userAgent', { get: () => 'patched' }); return navigator.userAgent });
    `),
  );
  assert.deepEqual(out.ua, ['Cloudflare-Workers', 1]);
  assert.match(String(out.construct), /^TypeError: Illegal constructor/);
  assert.equal(out.proto, 'patched', 'a patched prototype changes what the worker itself sees');
  assert.deepEqual((await json(probes(`await t('ua', () => navigator.userAgent);`))).ua, 'Cloudflare-Workers', 'and nothing in another worker');
});

test("scheduler.wait waits on the request's timers, stops at an abort, and is refused outside a request", async () => {
  const out = await json(
    probes(
      `
      await t('waited', async () => { let fired = false; setTimeout(() => (fired = true), 5); await scheduler.wait(20); return fired });
      await t('aborted', () => scheduler.wait(60_000, { signal: AbortSignal.timeout(5) }));
      await t('already', () => scheduler.wait(10, { signal: AbortSignal.abort('no') }).catch((r) => 'rejected ' + r));
      await t('badSignal', () => scheduler.wait(10, { signal: {} }));
      await t('global', () => atTop);
    `,
      `const atTop = scheduler.wait(1).then(() => 'allowed', (e) => e.message);`,
    ),
  );
  assert.equal(out.waited, true);
  assert.match(String(out.aborted), /^TimeoutError: /);
  assert.equal(out.already, 'rejected no');
  assert.match(String(out.badSignal), /^TypeError: scheduler\.wait: options\.signal must be an AbortSignal/);
  assert.match(String(out.global), /only be set while a request is being handled/);
});

test('AbortSignal.any follows the first of its signals; reportError logs and the request goes on', async () => {
  const logs: LogEntry[] = [];
  const out = await json(
    probes(`
      await t('any', () => { const a = new AbortController(), b = new AbortController(); const s = AbortSignal.any([a.signal, b.signal]); const was = s.aborted; b.abort('from b'); a.abort('from a'); return [was, s.aborted, s.reason] });
      await t('anyAborted', () => AbortSignal.any([new AbortController().signal, AbortSignal.abort('first')]).reason);
      await t('anyEmpty', () => AbortSignal.any([]).aborted);
      await t('anyBad', () => AbortSignal.any([{ aborted: true }]));
      await t('anyNotIterable', () => AbortSignal.any(5));
      await t('report', () => { reportError(new Error('reported')); return 'went on' });
    `),
    logs,
  );
  assert.deepEqual(out.any, [false, true, 'from b']);
  assert.equal(out.anyAborted, 'first');
  assert.equal(out.anyEmpty, false);
  assert.match(String(out.anyBad), /^TypeError: AbortSignal\.any takes an iterable of AbortSignal/);
  assert.match(String(out.anyNotIterable), /^TypeError: /);
  assert.equal(out.report, 'went on');
  assert.ok(
    logs.some((l) => l.level === 'error' && /Uncaught.*reported/s.test(l.message)),
    JSON.stringify(logs),
  );
});

test('URLPattern matches as the standard says; a hostile pattern is a TypeError', async () => {
  const out = await json(
    probes(`
      await t('match', () => { const p = new URLPattern({ pathname: '/books/:id' }); return [p.test('https://x.test/books/12'), p.exec('https://x.test/books/12').pathname.groups.id, p.test('https://x.test/films/1')] });
      await t('string', () => new URLPattern('https://*.example.com/:a/*').exec('https://api.example.com/v1/x/y').pathname.groups);
      await t('bad', () => new URLPattern({ pathname: '/(' }));
      await t('badType', () => new URLPattern(42));
    `),
  );
  assert.deepEqual(out.match, [true, '12', false]);
  assert.deepEqual(out.string, { a: 'v1', 0: 'x/y' });
  assert.match(String(out.bad), /^TypeError: /);
  assert.match(String(out.badType), /^TypeError: /);
});
