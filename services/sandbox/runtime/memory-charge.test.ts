/**
 * Memory outside isolated-vm's allocator (resizable ArrayBuffers, WebAssembly memories) is charged to
 * the worker's limit: the bombs are refused with a RangeError, tampering with the built-ins does not
 * get around the charge, ordinary use still works, and what is let go is given back.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { WorkerRuntime, WorkerError } from './index.ts';
import { WorkerInstance } from './instance.ts';
import { planMemories, wasmProblem, WASM_PAGE } from './bootstrap/wasm.ts';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import { GET, memoryModule, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());
const MiB = 1024 * 1024;

async function json(bundle: WorkerBundle): Promise<Record<string, unknown>> {
  let res;
  try {
    res = await rt.handle(bundle, GET, { log: () => {} });
  } catch (e) {
    assert.ok(e instanceof WorkerError);
    assert.fail(`${e.message}: ${e.detail}`);
  }
  return JSON.parse(text(res.body)) as Record<string, unknown>;
}

/** A worker of `memoryMb` that runs each probe and answers with what each returned or threw. */
function probes(memoryMb: number, body: string, opts: Parameters<typeof worker>[1] = {}): WorkerBundle {
  return worker(
    `${opts.modules?.length ? `import mod from './m.wasm';` : ''}
     export default { async fetch() {
       const out = {}; const keep = globalThis.keep ??= [];
       const t = async (name, f) => { try { out[name] = await f() } catch (e) { out[name] = e.name + ': ' + e.message } };
       ${body}
       return Response.json(out) } }`,
    { ...opts, limits: { memoryMb, cpuMs: 5000, wallMs: 20_000 } },
  );
}

test('the three bombs of issue 12 are refused in a 128 MB worker, with the limit named', async () => {
  const out = await json(
    probes(
      128,
      `await t('resize', () => { const b = new ArrayBuffer(0, { maxByteLength: 2 ** 30 }); keep.push(b); b.resize(300 * ${MiB}); return 'held' });
       await t('initial', () => { keep.push(new WebAssembly.Memory({ initial: 4800 })); return 'held' });
       await t('grow', () => { const m = new WebAssembly.Memory({ initial: 1 }); keep.push(m); m.grow(4799); return 'held' });
       await t('transfer', () => { keep.push(new ArrayBuffer(8, { maxByteLength: 2 ** 30 }).transfer(300 * ${MiB})); return 'held' });
       await t('fixed', () => { keep.push(new ArrayBuffer(300 * ${MiB})); return 'held' });`,
    ),
  );
  assert.match(String(out.resize), /^RangeError: .*resize/);
  assert.match(
    String(out.initial),
    /^RangeError: new WebAssembly\.Memory\(\): .*\(300 MiB\) does not fit in what is left of this worker's memory limit of 128 MB/,
  );
  assert.match(String(out.grow), /^RangeError: .*Maximum memory size exceeded/);
  assert.match(String(out.transfer), /^RangeError/);
  assert.match(String(out.fixed), /^RangeError/);
});

test('maximums are capped at half the limit and charged: a second one that does not fit is refused', async () => {
  const out = await json(
    probes(
      64,
      `await t('capped', () => new ArrayBuffer(0, { maxByteLength: 2 ** 30 }).maxByteLength);
       await t('kept', () => { const b = new ArrayBuffer(0, { maxByteLength: 20 * ${MiB} }); keep.push(b); return b.maxByteLength });
       await t('more', () => { for (let i = 0; i < 10; i++) keep.push(new ArrayBuffer(0, { maxByteLength: 30 * ${MiB} })); return 'held' });
       await t('memory', () => { keep.push(new WebAssembly.Memory({ initial: 1 })); return 'held' });`,
    ),
  );
  assert.equal(out.capped, 32 * MiB);
  assert.equal(out.kept, 20 * MiB);
  assert.match(
    String(out.more),
    /^RangeError: new ArrayBuffer\(\): a resizable ArrayBuffer, at its maxByteLength \(30 MiB\) does not fit in what is left of this worker's memory limit of 64 MB/,
  );
  assert.match(String(out.memory), /^RangeError: new WebAssembly\.Memory\(\): .*does not fit/);
});

test("a module's own memory cannot grow past the cap from inside Wasm, and each instance is charged", async () => {
  const out = await json(
    probes(
      128,
      `await t('declared', () => { const i = new WebAssembly.Instance(mod); keep.push(i); return [i.exports.grow(1000), i.exports.grow(100), i.exports.mem.buffer.byteLength] });
       await t('async', async () => { for (let i = 0; i < 10; i++) keep.push(await WebAssembly.instantiate(mod)); return 'held' });
       await t('exported', () => { const m = new WebAssembly.Instance(mod).exports.mem; return m.grow(2000) });`,
      { modules: [{ name: 'm.wasm', type: 'wasm', content: memoryModule(1).toString('base64') }] },
    ),
  );
  // 1 page, no maximum declared: capped at 64 MiB (1024 pages); growing to 1001 works, to 1101 does not.
  assert.deepEqual(out.declared, [1, -1, 1001 * WASM_PAGE]);
  assert.match(String(out.async), /^RangeError: WebAssembly\.Instance\(\): .*\(64 MiB\) does not fit/);
  assert.match(String(out.exported), /^RangeError: WebAssembly\.Instance\(\)/);
});

test('tampering with the built-ins does not get around the charge', async () => {
  const out = await json(
    probes(
      128,
      `Object.defineProperty(Object.prototype, 'maximum', { get() { return 65536 }, configurable: true });
       Object.defineProperty(Object.prototype, 'maxByteLength', { get() { return 2 ** 32 }, configurable: true });
       const then = Promise.prototype.then; const iterator = Array.prototype[Symbol.iterator];
       Promise.prototype.then = function (f, r) { return 'patched' };
       Array.prototype[Symbol.iterator] = function* () {};
       WeakMap.prototype.get = () => undefined; WeakMap.prototype.set = function () { return this };
       Uint8Array.prototype.subarray = () => new Uint8Array(0);
       Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'length', { get() { return 8 }, configurable: true });
       let calls = 0;
       await t('valueOf', () => { const m = new WebAssembly.Memory({ initial: { valueOf() { return calls++ ? 4800 : 1 } } }); return [calls, m.buffer.byteLength] });
       await t('noMaximum', () => new WebAssembly.Memory({ initial: 1 }).grow(2000));
       await t('inherited', () => new ArrayBuffer(0, {}).maxByteLength);
       await t('originals', () => [ArrayBuffer.prototype.constructor === ArrayBuffer, WebAssembly.Memory.prototype.constructor === WebAssembly.Memory, WebAssembly.Instance.prototype.constructor === WebAssembly.Instance, typeof SharedArrayBuffer]);
       await t('module', () => new WebAssembly.Instance(mod).exports.grow(2000));
       Promise.prototype.then = then; Array.prototype[Symbol.iterator] = iterator;`,
      { modules: [{ name: 'm.wasm', type: 'wasm', content: memoryModule(1).toString('base64') }] },
    ),
  );
  assert.deepEqual(out.valueOf, [1, WASM_PAGE], 'the descriptor is read and converted once');
  assert.match(String(out.noMaximum), /^RangeError: .*Maximum memory size exceeded/, 'an inherited maximum is capped too');
  assert.equal(out.inherited, 64 * MiB, 'an inherited maxByteLength is capped and charged');
  assert.deepEqual(out.originals, [true, true, true, 'undefined']);
  assert.equal(out.module, -1, 'memory.grow inside Wasm stops at the cap');
});

test('with --allow-eval, modules compiled at run time are capped too, whatever the tenant patched', async () => {
  const out = await json(
    worker(
      `import raw from './m.bin';
       export default { async fetch() {
         Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'length', { get() { return 8 }, configurable: true });
         Uint8Array.prototype.subarray = () => new Uint8Array(0); Uint8Array.prototype.set = () => {};
         const viaModule = new WebAssembly.Instance(new WebAssembly.Module(raw)).exports.grow(2000);
         const viaCompile = new WebAssembly.Instance(await WebAssembly.compile(raw)).exports.grow(2000);
         const viaInstantiate = (await WebAssembly.instantiate(raw)).instance.exports.grow(2000);
         return Response.json([viaModule, viaCompile, viaInstantiate]) } }`,
      {
        allowEval: true,
        limits: { memoryMb: 128, cpuMs: 5000, wallMs: 20_000 },
        modules: [{ name: 'm.bin', type: 'data', content: memoryModule(1).toString('base64') }],
      },
    ),
  );
  assert.deepEqual(out, [-1, -1, -1]);
});

test('ordinary use works, and what a worker lets go is given back', async () => {
  const out = await json(
    probes(
      64,
      `await t('rab', () => { const b = new ArrayBuffer(4, { maxByteLength: 1024 }); b.resize(1000); const c = b.transfer(); return [b.detached, c.byteLength, c.maxByteLength, c.resizable] });
       await t('memory', () => { const m = new WebAssembly.Memory({ initial: 2, maximum: 4 }); m.grow(2); return [m.buffer.byteLength, new Uint8Array(m.buffer).length] });
       await t('churn', () => { let n = 0; for (let i = 0; i < 20; i++) { const b = new ArrayBuffer(0, { maxByteLength: 24 * ${MiB} }); b.resize(24 * ${MiB}); n++ } return n });
       await t('instances', () => { let n = 0; for (let i = 0; i < 10; i++) { new WebAssembly.Instance(mod).exports.grow(10); n++ } return n });
       await t('instanceof', () => [new Uint8Array(1).buffer instanceof ArrayBuffer, ArrayBuffer.isView(new Uint8Array(1)), ArrayBuffer.length, ArrayBuffer.name, new (class X extends ArrayBuffer {})(8).byteLength]);`,
      { modules: [{ name: 'm.wasm', type: 'wasm', content: memoryModule(1, 16).toString('base64') }] },
    ),
  );
  assert.deepEqual(out.rab, [true, 1000, 1024, true]);
  assert.deepEqual(out.memory, [4 * WASM_PAGE, 4 * WASM_PAGE]);
  assert.equal(out.churn, 20);
  assert.equal(out.instances, 10);
  assert.deepEqual(out.instanceof, [true, true, 1, 'ArrayBuffer', 8]);
});

test('a worker with the smallest limit (8 MB) still gets a Wasm memory', async () => {
  const out = await json(probes(8, `await t('memory', () => new WebAssembly.Memory({ initial: 1 }).grow(1));`));
  assert.equal(out.memory, 1);
});

test('planMemories caps a missing or large maximum, keeps a small one, refuses 64-bit memory', () => {
  const capped = planMemories(memoryModule(1), 1024);
  assert.ok(typeof capped !== 'string');
  assert.equal(capped.maxBytes, 1024 * WASM_PAGE);
  assert.equal(capped.count, 1);
  assert.deepEqual(planMemories(capped.bytes, 1024), { bytes: capped.bytes, maxBytes: 1024 * WASM_PAGE, count: 1 }, 'a capped module is left as it is');
  assert.equal(wasmProblem(capped.bytes), null);
  assert.ok(
    (globalThis as unknown as { WebAssembly: { validate(b: Uint8Array): boolean } }).WebAssembly.validate(capped.bytes),
    'V8 takes the rewritten module',
  );
  const big = planMemories(memoryModule(2000, 65536), 1024);
  assert.ok(typeof big !== 'string');
  assert.equal(big.maxBytes, 2000 * WASM_PAGE, 'an initial size above the cap is the maximum');
  const small = memoryModule(1, 16);
  assert.deepEqual(planMemories(small, 1024), { bytes: small, maxBytes: 16 * WASM_PAGE, count: 1 });
  const memory64 = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x04, 0x01]);
  assert.match(String(planMemories(memory64, 1024)), /64-bit memory/);
  assert.match(String(planMemories(Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x03, 0x01, 0x01]), 1024)), /shared memory/);
});

test('the charges are visible to the sandbox-wide budget (heap + external)', async () => {
  const instance = await WorkerInstance.create(
    probes(
      64,
      `await t('held', () => { keep.push(new ArrayBuffer(0, { maxByteLength: 16 * ${MiB} }), new WebAssembly.Memory({ initial: 1, maximum: 128 })); return 'held' });`,
    ),
    () => {},
  );
  try {
    const before = await instance.heapBytes();
    await instance.handle(GET, { log: () => {} });
    assert.ok((await instance.heapBytes()) - before >= 24 * MiB, 'the resizable buffer and the memory count at their maximums');
  } finally {
    instance.dispose();
  }
});

test('a buffer moved into an isolate (transferIn, as request bodies go in) is counted as one copied in is', async () => {
  for (const moved of [false, true]) {
    const isolate = new ivm.Isolate({ memoryLimit: 32 });
    try {
      const context = await isolate.createContext();
      const keep = await context.eval('globalThis.kept = []; (b) => void kept.push(b)', { reference: true });
      const into = (b: ArrayBuffer) =>
        moved
          ? new ivm.ExternalCopy(b, { transferOut: true }).copyInto({ release: true, transferIn: true })
          : new ivm.ExternalCopy(b).copyInto({ release: true });
      await keep.apply(undefined, [into(new ArrayBuffer(8 * MiB))]);
      assert.ok(isolate.getHeapStatisticsSync().externally_allocated_size >= 8 * MiB, `moved ${moved}: counted`);
      // Past the 32 MB limit the isolate is disposed, moved buffers or not.
      await assert.rejects(async () => {
        for (let i = 0; i < 5; i++) await keep.apply(undefined, [into(new ArrayBuffer(8 * MiB))]);
      }, /memory limit/);
    } finally {
      if (!isolate.isDisposed) isolate.dispose();
    }
  }
});
