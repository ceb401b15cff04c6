/** Instances made ahead of need: each takes one worker, with that worker's own env, and never another. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerInstance } from './instance.ts';
import { type WorkerError, WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const fail = (m: string) => {
  throw new Error(m);
};
const log = { log: () => {} };

test('a prepared instance adopts one worker: its vars, then its modules; never a second one', async () => {
  const spare = await WorkerInstance.prepare(fail, 64);
  try {
    const a = worker(`export default { fetch(req, env) { return new Response('a:' + env.WHO + ':' + typeof eval) } }`, { vars: { WHO: 'first' } });
    await spare.adopt(a);
    assert.equal(text((await spare.handle(GET, log)).body), 'a:first:function');
    await assert.rejects(spare.adopt(worker(`export default {}`)), /cannot take that worker/);
  } finally {
    spare.dispose();
  }
});

test('nothing of the rehearsal stays: a worker without a fetch handler has none; the clock starts as in a fresh isolate', async () => {
  const spare = await WorkerInstance.prepare(fail, 64);
  try {
    await spare.adopt(worker(`export default { scheduled() {} }`));
    await assert.rejects(spare.handle(GET, log), (e: WorkerError) => e.status === 500 && /no default export with a fetch/.test(e.detail));
  } finally {
    spare.dispose();
  }
  // Date.now() at load time is 0, as in Workers (no request has set the clock), and time starts at
  // the first request: the same from a spare as from a fresh isolate.
  const src = `const loadedAt = Date.now(); export default { async fetch(req) { return Response.json([loadedAt, performance.timeOrigin === Date.now(), performance.now(), req.url, [...req.headers]]) } }`;
  const fresh = await WorkerInstance.create(worker(src), fail);
  const other = await WorkerInstance.prepare(fail, worker(src).limits.memoryMb);
  try {
    await new Promise((r) => setTimeout(r, 20));
    await other.adopt(worker(src));
    const fromFresh = JSON.parse(text((await fresh.handle(GET, log)).body)) as unknown[];
    const fromSpare = JSON.parse(text((await other.handle(GET, log)).body)) as unknown[];
    assert.deepEqual(fromSpare, [0, true, 0, GET.url, GET.headers]);
    assert.deepEqual(fromSpare, fromFresh);
  } finally {
    fresh.dispose();
    other.dispose();
  }
});

test('a spare is not handed to a worker that may eval, nor one with another memory limit', async () => {
  const spare = await WorkerInstance.prepare(fail, 64);
  try {
    await assert.rejects(spare.adopt(worker(`export default {}`, { allowEval: true })), /cannot take that worker/);
    await assert.rejects(spare.adopt(worker(`export default {}`, { limits: { memoryMb: 32 } })), /cannot take that worker/);
  } finally {
    spare.dispose();
  }
});

test('through the runtime: workers served from spares keep their own env and eval stays refused', async () => {
  const rt = new WorkerRuntime({ spares: 2 });
  try {
    await new Promise((r) => setTimeout(r, 400)); // spares are made once cold starts pause
    assert.ok(rt.stats().spares > 0, 'spares were made');
    const src = `export default { fetch(req, env) { let e; try { eval('1'); e = 'eval ran' } catch { e = 'eval refused' } return new Response(env.WHO + ' ' + e) } }`;
    const one = await rt.handle(worker(src, { vars: { WHO: 'one' }, limits: { memoryMb: 128 } }), GET, log);
    const two = await rt.handle(worker(src, { vars: { WHO: 'two' }, limits: { memoryMb: 128 } }), GET, log);
    assert.equal(text(one.body), 'one eval refused');
    assert.equal(text(two.body), 'two eval refused');
    const evaling = await rt.handle(worker(src, { vars: { WHO: 'three' }, allowEval: true, limits: { memoryMb: 128 } }), GET, log);
    assert.equal(text(evaling.body), 'three eval ran', 'a worker allowed to eval gets a fresh isolate');
  } finally {
    rt.dispose();
  }
});
