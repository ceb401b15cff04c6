/**
 * Idle isolates are torn down a few per turn of the event loop (isolate-disposal.ts): a sweep that lets go
 * of hundreds must not hold the loop for all of them at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { DISPOSED_PER_TURN, PacedDisposal, type Disposable } from './isolate-disposal.ts';

/** A fake isolate that records when it was disposed; `fails`: its dispose throws, as a disposed isolated-vm isolate's can. */
function fake(log: string[], name: string, fails = false): Disposable {
  let disposed = false;
  return {
    get isDisposed() {
      return disposed;
    },
    dispose() {
      if (fails) throw new Error('Isolate is already disposed');
      if (disposed) throw new Error(`${name} disposed twice`);
      disposed = true;
      log.push(name);
    },
  };
}

test('at most perTurn isolates a turn, in the order they came, none at once', () => {
  const turns: (() => void)[] = [];
  const paced = new PacedDisposal(2, (run) => turns.push(run));
  const log: string[] = [];
  for (let i = 0; i < 5; i++) paced.add(fake(log, `i${i}`));
  assert.deepEqual(log, [], 'nothing is disposed when it is added');
  assert.equal(turns.length, 1, 'one turn asked for, however many wait');
  assert.equal(paced.pending, 5);
  const run = () => turns.shift()!();
  run();
  assert.deepEqual(log, ['i0', 'i1']);
  run();
  assert.deepEqual(log, ['i0', 'i1', 'i2', 'i3']);
  paced.add(fake(log, 'late'));
  assert.equal(turns.length, 1, 'a turn already asked for is not asked for again');
  run();
  assert.deepEqual(log, ['i0', 'i1', 'i2', 'i3', 'i4', 'late']);
  assert.equal(paced.pending, 0);
  assert.equal(turns.length, 0, 'no turn is asked for once the queue is empty');
  paced.add(fake(log, 'again'));
  assert.equal(turns.length, 1, 'the next isolate asks for a turn again');
  run();
  assert.deepEqual(log.at(-1), 'again');
});

test('an isolate already disposed, or whose dispose throws, does not stop the others', () => {
  const turns: (() => void)[] = [];
  const paced = new PacedDisposal(3, (run) => turns.push(run));
  const log: string[] = [];
  const gone = fake(log, 'gone');
  gone.dispose();
  paced.add(gone);
  paced.add(fake(log, 'throws', true));
  paced.add(fake(log, 'kept'));
  turns.shift()!();
  assert.deepEqual(log, ['gone', 'kept'], 'the disposed one is not disposed twice; the one after the throw is disposed');
});

test("real isolates: the process's queue disposes them on coming turns of the event loop", async () => {
  const paced = new PacedDisposal();
  const isolates = Array.from({ length: 2 * DISPOSED_PER_TURN + 1 }, () => new ivm.Isolate({ memoryLimit: 16 }));
  for (const isolate of isolates) paced.add(isolate);
  assert.equal(isolates.filter((i) => i.isDisposed).length, 0);
  await new Promise((r) => setImmediate(r));
  const afterOne = isolates.filter((i) => i.isDisposed).length;
  assert.ok(afterOne >= 1 && afterOne <= DISPOSED_PER_TURN, `${afterOne} disposed after one turn`);
  for (let i = 0; i < 10 && paced.pending > 0; i++) await new Promise((r) => setImmediate(r));
  assert.equal(isolates.filter((i) => i.isDisposed).length, isolates.length);
});
