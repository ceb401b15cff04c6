import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS, latencyBucket, MAX_WORKERS_PER_REPORT, p99, RequestTally } from './request-stats.ts';

test('latencies fall in their bucket; p99 is the bucket bound at the 99th request', () => {
  assert.equal(latencyBucket(0.4), 0);
  assert.equal(latencyBucket(1), 0);
  assert.equal(latencyBucket(1.1), 1);
  assert.equal(latencyBucket(10 * 60_000), LATENCY_BUCKETS - 1);
  const counts = new Array<number>(LATENCY_BUCKETS).fill(0);
  assert.equal(p99(counts), null);
  counts[latencyBucket(4)] = 99;
  counts[latencyBucket(700)] = 1;
  assert.equal(p99(counts), 5, '99 of 100 under 5 ms');
  counts[latencyBucket(700)] = 2;
  assert.equal(p99(counts), 800);
});

test('a tally counts requests and 5xx per worker, drains, and names at most MAX_WORKERS_PER_REPORT workers', () => {
  const t = new RequestTally();
  t.record('a/x', 200, 3);
  t.record('a/x', 503, 40);
  t.record('a/x', 404, 2);
  const [x] = t.drain();
  assert.deepEqual([x!.workerId, x!.requests, x!.errors], ['a/x', 3, 1]);
  assert.equal(
    x!.latency.reduce((a, b) => a + b),
    3,
  );
  assert.deepEqual(t.drain(), []);
  for (let i = 0; i < MAX_WORKERS_PER_REPORT + 10; i++) t.record(`a/w${i}`, 200, 1);
  assert.equal(t.drain().length, MAX_WORKERS_PER_REPORT);
});
