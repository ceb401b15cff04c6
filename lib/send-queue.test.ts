import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendQueue } from './send-queue.ts';

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
