import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchQueue, SendQueue } from './send-queue.ts';

test('sends in order with at most `limit` in flight, and reports each item, failures included', async () => {
  let inFlight = 0;
  let most = 0;
  const started: number[] = [];
  const settled: [number, string | undefined][] = [];
  const q = new SendQueue<number>(
    3,
    async (n) => {
      started.push(n);
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      if (n === 4) throw new Error('four');
    },
    (n, e) => settled.push([n, (e as Error | undefined)?.message]),
  );
  for (let i = 0; i < 10; i++) q.push(i);
  assert.equal(q.size, 10);
  assert.equal(inFlight, 3, 'only three started at once');
  while (q.size) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(most, 3);
  assert.deepEqual(
    settled.find(([n]) => n === 4),
    [4, 'four'],
  );
  assert.equal(settled.length, 10);
});

test('clear drops what has not started', async () => {
  const sent: number[] = [];
  const q = new SendQueue<number>(1, async (n) => void sent.push(n));
  for (let i = 0; i < 5; i++) q.push(i);
  q.clear();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(sent, [0]);
  assert.equal(q.size, 0);
});

test('a batch queue sends what one tick pushed in one call, cut at its bounds, in order, and reports each call', async () => {
  const calls: string[][] = [];
  const settled: string[][] = [];
  const q = new BatchQueue<string>(
    { limit: 1, maxItems: 3, maxBytes: 5, sizeOf: (s) => s.length },
    async (items) => void calls.push(items),
    (items) => settled.push(items),
  );
  for (const s of ['a', 'b', 'c', 'd', 'eeee', 'ffffff', 'g']) q.push(s);
  assert.equal(q.size, 7, 'gathered until the tick ends');
  while (q.size) await new Promise((r) => setImmediate(r));
  // Three items at most a call, five bytes at most (an item over five goes alone).
  assert.deepEqual(calls, [['a', 'b', 'c'], ['d', 'eeee'], ['ffffff'], ['g']]);
  assert.deepEqual(settled, calls, 'each call is reported once it has finished');
  q.push('h');
  q.clear();
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, 4, 'a cleared item is not sent');
});
