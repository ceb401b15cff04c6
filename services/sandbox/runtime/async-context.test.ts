/**
 * AsyncLocalStorage (`node:async_hooks`, bootstrap/async-context.ts): the store follows the worker's
 * continuations — `await` as `cordon deploy` lowers it for a worker that imports the module, `then`,
 * timers, intervals and `queueMicrotask` — and nothing of one request is seen by the next. The worker
 * source goes through esbuild with the same lowering the CLI applies (cli/nodejs-compat.ts).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { transform } from 'esbuild';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';
import { LOWERED_ASYNC } from '../../../cli/nodejs-compat.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

async function lowered(source: string): Promise<string> {
  return (await transform(source, { format: 'esm', target: 'es2022', supported: LOWERED_ASYNC, loader: 'js' })).code;
}

async function run(source: string, count = 1): Promise<unknown[]> {
  const bundle = worker(await lowered(source));
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) out.push(JSON.parse(text((await rt.handle(bundle, { ...GET, url: `http://example.test/${i}` }, { log: () => {} })).body)));
  return out;
}

test('the store follows await, then, timers, intervals and queueMicrotask', async () => {
  const [out] = await run(`
    import { AsyncLocalStorage } from 'node:async_hooks';
    const als = new AsyncLocalStorage();
    const tick = () => new Promise((r) => setTimeout(r, 1));
    export default { async fetch() {
      const seen = {};
      const p = [];
      await als.run('outer', async () => {
        seen.sync = als.getStore();
        await tick();
        seen.afterAwait = als.getStore();
        p.push(Promise.resolve().then(() => (seen.thenCb = als.getStore())));
        p.push(new Promise((r) => setTimeout(() => r(seen.timer = als.getStore()), 2)));
        p.push(new Promise((r) => queueMicrotask(() => r(seen.microtask = als.getStore()))));
        p.push(new Promise((r) => { let n = 0; const id = setInterval(() => { seen.interval = als.getStore(); if (++n === 2) { clearInterval(id); r(); } }, 1); }));
        p.push(Promise.reject(new Error('x')).catch(() => (seen.catch = als.getStore())));
        p.push(Promise.resolve().finally(() => (seen.finally = als.getStore())));
        await als.run('inner', async () => { await tick(); seen.nested = als.getStore(); });
        seen.afterNested = als.getStore();
        seen.exit = als.exit(() => als.getStore());
        const snap = als.run('snap', () => AsyncLocalStorage.snapshot());
        seen.snapshot = snap(() => als.getStore());
        seen.bound = als.run('bound', () => AsyncLocalStorage.bind(() => als.getStore()))();
      });
      await Promise.all(p);
      seen.outside = als.getStore() ?? null;
      return Response.json(seen);
    } };`);
  assert.deepEqual(out, {
    sync: 'outer',
    afterAwait: 'outer',
    thenCb: 'outer',
    timer: 'outer',
    microtask: 'outer',
    interval: 'outer',
    catch: 'outer',
    finally: 'outer',
    nested: 'inner',
    afterNested: 'outer',
    snapshot: 'snap',
    bound: 'bound',
    outside: null,
  });
});

test('concurrent runs keep their own stores, and a request never sees an earlier one', async () => {
  const out = await run(
    `
    import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
    const als = new AsyncLocalStorage();
    let resource;
    export default { async fetch(request) {
      const before = als.getStore() ?? null;
      const fromResource = resource ? resource.runInAsyncScope(() => als.getStore()) : null;
      const ids = await Promise.all([1, 2, 3].map((n) => als.run(n, async () => {
        await new Promise((r) => setTimeout(r, 4 - n));
        await null;
        return als.getStore();
      })));
      als.run('kept', () => { resource = new AsyncResource('test'); setTimeout(() => {}, 1); });
      return Response.json({ before, ids, fromResource });
    } };`,
    2,
  );
  assert.deepEqual(out[0], { before: null, ids: [1, 2, 3], fromResource: null });
  assert.deepEqual(out[1], { before: null, ids: [1, 2, 3], fromResource: 'kept' }, 'an AsyncResource keeps its own frame, and only it');
});

test('two storages are independent, and bad callbacks are TypeErrors', async () => {
  const [out] = await run(`
    import { AsyncLocalStorage } from 'node:async_hooks';
    const a = new AsyncLocalStorage(), b = new AsyncLocalStorage();
    export default { async fetch() {
      const r = await a.run('A', () => b.run('B', async () => { await null; return [a.getStore(), b.getStore(), b.exit(() => [a.getStore(), b.getStore() ?? null])]; }));
      let bad;
      try { a.run(1, 'not a function') } catch (e) { bad = e.name }
      return Response.json({ r, bad });
    } };`);
  assert.deepEqual(out, { r: ['A', 'B', ['A', null]], bad: 'TypeError' });
});
