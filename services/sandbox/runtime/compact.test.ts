/**
 * An idle isolate gives back the memory its garbage holds (WorkerInstance.compact, run by the runtime's
 * idle sweep through compactIdle): once per idle spell, never while it has work, the worker's state kept.
 * Measured by heap sizes far apart (its garbage against none), not time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { WorkerInstance } from './instance.ts';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const fail = (m: string) => {
  throw new Error(m);
};
const log = { log: () => {} };
const rebuilt = typeof (ivm.Isolate.prototype as { reduceMemory?: unknown }).reduceMemory === 'function';
const skip = !rebuilt && process.env.CORDON_REQUIRE_ALL !== '1' ? 'isolated-vm was not rebuilt (native/isolated-vm.mjs: no g++ at npm install)' : false;

test("an idle isolate's garbage is collected once per idle spell; the worker's state stays", { skip }, async () => {
  // Each request leaves ~180 KB of garbage besides what the bootstrap left.
  const w = await WorkerInstance.create(
    worker(`let n = 0; export default { fetch() { for (let i = 0; i < 1000; i++) new Array(20); return new Response(String(++n)) } }`),
    fail,
  );
  try {
    assert.equal(text((await w.handle(GET, log)).body), '1');
    assert.equal(w.compactable(), true);
    const before = await w.heapBytes();
    await w.compact();
    const after = await w.heapBytes();
    assert.ok(after < before - 64 * 1024, `the heap went from ${before} to ${after} bytes`);
    assert.equal(w.compactable(), false, 'compacted again without having been used');
    assert.equal(text((await w.handle(GET, log)).body), '2');
    assert.equal(w.compactable(), true, 'used since: compacted again once idle');
  } finally {
    w.dispose();
  }
});

test('an isolate with a request in flight is not compacted', { skip }, async () => {
  const w = await WorkerInstance.create(
    worker(`export default { async fetch() { await new Promise((r) => setTimeout(r, 100)); return new Response('late') } }`),
    fail,
  );
  try {
    const pending = w.handle(GET, log);
    assert.equal(w.active, 1);
    assert.equal(w.compactable(), false);
    const before = await w.heapBytes();
    await w.compact();
    assert.ok((await w.heapBytes()) >= before, 'collected while a request was in flight');
    assert.equal(text((await pending).body), 'late');
    assert.equal(w.compactable(), true);
  } finally {
    w.dispose();
  }
});

test('the idle sweep compacts each isolate idle for compactIdleMs once, and none used more recently; after dropCodeIdleMs once more, dropping code', {
  skip,
}, async (t) => {
  const compacted = new Map<WorkerInstance, boolean[]>();
  const original = WorkerInstance.prototype.compact;
  t.mock.method(WorkerInstance.prototype, 'compact', function (this: WorkerInstance, dropCode?: boolean) {
    compacted.set(this, [...(compacted.get(this) ?? []), !!dropCode]);
    return original.call(this, dropCode);
  });
  const idle = new WorkerRuntime({ spares: 0, compactIdleMs: 0 });
  const recent = new WorkerRuntime({ spares: 0, compactIdleMs: 60_000 });
  const dormant = new WorkerRuntime({ spares: 0, compactIdleMs: 0, dropCodeIdleMs: 300 });
  try {
    const hello = `export default { fetch() { return new Response('hi') } }`;
    for (let i = 0; i < 3; i++) assert.equal(text((await idle.handle(worker(hello), GET, log)).body), 'hi');
    assert.equal(text((await recent.handle(worker(hello), GET, log)).body), 'hi');
    assert.equal(text((await dormant.handle(worker(hello), GET, log)).body), 'hi');
    // The sweep runs every 50 ms here; bounded wait for it to reach the four, and the dormant one twice.
    const done = () => compacted.size >= 4 && [...compacted.values()].some((c) => c.length === 2);
    for (let i = 0; i < 250 && !done(); i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(compacted.size, 4, 'an isolate used within compactIdleMs was compacted, or an idle one was not');
    // Each runtime sweeps on a timer of its own: the order in which they first compacted is not the point.
    const runs = [...compacted.values()].map((c) => JSON.stringify(c)).sort();
    assert.deepEqual(runs, ['[false,true]', '[false]', '[false]', '[false]']);
  } finally {
    idle.dispose();
    recent.dispose();
    dormant.dispose();
  }
});
