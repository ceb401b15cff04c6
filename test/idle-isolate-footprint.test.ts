/**
 * Issue 17 (idle isolates per GiB): what an idle worker's isolate holds beyond what it needs, counted,
 * not timed. One V8 context, the worker's: isolated-vm's own default context is the first one made for the
 * isolate (native/isolated-vm.mjs), not a context beside it that nothing of the worker's runs in (a second
 * set of every builtin object, ~0.18 MiB). And once idle long enough (dropCodeIdleMs, WorkerInstance.compact(true)),
 * no bytecode of the functions it ran: V8 compiles them again from their source when they are next called
 * (~0.12 MiB of a hello-world's).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { lastIsolate } from './helpers/isolate-copies.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one, whose last isolate is the worker's.
const { WorkerInstance } = await import('../services/sandbox/runtime/instance.ts');
const { GET, text, worker } = await import('../services/sandbox/runtime/testing/fixtures.ts');

const fail = (m: string) => {
  throw new Error(m);
};
const log = { log() {} };
const stats = (isolate: ivm.Isolate) => isolate.getHeapStatisticsSync() as ivm.HeapStatistics & { number_of_native_contexts?: number };
const rebuilt = typeof (ivm.Isolate.prototype as { reduceMemory?: unknown }).reduceMemory === 'function';
const skip = !rebuilt && process.env.CORDON_REQUIRE_ALL !== '1' ? 'isolated-vm was not rebuilt (native/isolated-vm.mjs: no g++ at npm install)' : false;

test("a served, idle worker's isolate holds one V8 context: the worker's", { skip }, async () => {
  const w = await WorkerInstance.create(worker(`export default { fetch() { return new Response('hi') } }`), fail);
  try {
    assert.equal(text((await w.handle(GET, log)).body), 'hi');
    assert.equal(stats(lastIsolate()!).number_of_native_contexts, 1);
    await w.compact();
    assert.equal(stats(lastIsolate()!).number_of_native_contexts, 1);
  } finally {
    w.dispose();
  }
});

test('an isolate compacted dropping code holds no bytecode of the functions it ran, which run again', { skip }, async () => {
  // A function whose bytecode is ~1 MB (its source stays: V8 compiles it again from there when called).
  const body = Array.from({ length: 60_000 }, (_, i) => `s = (s * 31 + ${i}) | 0;`).join('\n');
  const w = await WorkerInstance.create(
    worker(`function big() { let s = 0;\n${body}\n return s }
      export default { fetch() { return new Response(String(big())) } }`),
    fail,
  );
  try {
    const first = text((await w.handle(GET, log)).body);
    // First its garbage only (as the idle sweep does after compactIdleMs), then its code too.
    await w.compact();
    assert.equal(w.compactable(true), true);
    const before = await w.heapBytes();
    await w.compact(true);
    assert.equal(w.compactable(true), false);
    const after = await w.heapBytes();
    assert.ok(before - after > 1024 * 1024, `dropping code gave back ${((before - after) / 1024).toFixed(0)} KiB: the bytecode stayed`);
    assert.equal(text((await w.handle(GET, log)).body), first);
  } finally {
    w.dispose();
  }
});
