/**
 * Issues 14 and 17 (a bystander slowed by a burst of Dynamic Workers): the runtime's idle sweep lets go of
 * every loaded Worker idle past its time at once, and after a burst that is hundreds of isolates. Disposing
 * one is ~0.5 ms of synchronous work on the event loop, so the sweep held the loop, and every other worker's
 * requests with it, for tens of ms. Their isolates are now torn down at most DISPOSED_PER_TURN per turn of
 * the event loop (services/sandbox/runtime/isolate-disposal.ts), counted here by turn, not timed.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { disposals } from './helpers/isolate-copies.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one.
const { WorkerRuntime } = await import('../services/sandbox/runtime/index.ts');
const { DISPOSED_PER_TURN } = await import('../services/sandbox/runtime/isolate-disposal.ts');
const { GET, text, worker } = await import('../services/sandbox/runtime/testing/fixtures.ts');

const LOADS = 16;
const rt = new WorkerRuntime({ spares: 0, dynamic: { perWorker: 200, idleMs: 300, loadsPerSecond: 1000 } });
after(() => rt.dispose());

const parent = worker(
  `export default { async fetch(req, env) {
    const n = new URL(req.url).searchParams.get('n');
    if (n === null) return new Response('parent');
    const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
      modules: { 'w.js': 'export default { fetch() { return new Response("dynamic ' + n + '") } }' } });
    return w.getEntrypoint().fetch('http://dynamic/');
  } }`,
  { bindings: [{ type: 'loader', name: 'LOADER' }], limits: { cpuMs: 5000 } },
);

async function ask(query: string): Promise<string> {
  const res = await rt.handle(parent, { ...GET, url: `http://example.test/${query}` }, { log: () => {} });
  return `${res.status} ${res.stream ? await new Response(res.stream).text() : text(res.body)}`;
}

test('an idle sweep of many loaded Workers disposes their isolates a few per turn, and the parent stays', async () => {
  assert.equal(await ask(''), '200 parent');
  const before = disposals().count;
  const answers = await Promise.all(Array.from({ length: LOADS }, (_, n) => ask(`?n=${n}`)));
  assert.deepEqual(
    answers,
    Array.from({ length: LOADS }, (_, n) => `200 dynamic ${n}`),
  );
  assert.equal(rt.stats().dynamic, LOADS, 'every loaded Worker is held until it idles');
  // The sweep runs every ~150 ms here; all of them idle past 300 ms go in the same sweep.
  const until = Date.now() + 10_000;
  while ((rt.stats().dynamic > 0 || disposals().count < before + LOADS) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(rt.stats().dynamic, 0, 'the loaded Workers were let go');
  assert.equal(disposals().count - before, LOADS, 'and each isolate was disposed');
  const most = disposals(before).mostInOneTurn;
  assert.ok(most <= DISPOSED_PER_TURN, `${most} isolates disposed in one turn of the event loop (at most ${DISPOSED_PER_TURN})`);
  assert.equal(await ask(''), '200 parent', 'the parent, not idle that long, still answers from its isolate');
});
