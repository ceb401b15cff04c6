import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LATENCY_BUCKETS, latencyBucket } from '../../lib/request-stats.ts';
import { MAX_TRACKED, RequestMetrics } from './request-metrics.ts';

const latency = (ms: number, n: number) => {
  const l = new Array<number>(LATENCY_BUCKETS).fill(0);
  l[latencyBucket(ms)] = n;
  return l;
};

test('reports add up per minute over the last hour; older minutes fall out', () => {
  let now = 10 * 60 * 60_000;
  const m = new RequestMetrics(
    (id) => id.startsWith('acme/'),
    () => now,
  );
  m.add([{ workerId: 'acme/api', requests: 10, errors: 1, latency: latency(4, 10) }]);
  m.add([{ workerId: 'acme/api', requests: 5, errors: 0, latency: latency(700, 5) }]);
  let hour = m.lastHour('acme/api');
  assert.equal(hour.length, 60);
  assert.deepEqual(hour.at(-1), { minute: now, requests: 15, errors: 1, p99Ms: 800 });
  now += 30 * 60_000;
  hour = m.lastHour('acme/api');
  assert.equal(hour.at(-31)!.requests, 15, 'half an hour ago');
  now += 31 * 60_000;
  assert.ok(
    m.lastHour('acme/api').every((x) => x.requests === 0),
    'an hour later it is gone',
  );
  m.add([{ workerId: 'acme/api', requests: 1, errors: 0, latency: latency(1, 1) }]);
  assert.equal(m.lastHour('acme/api').at(-1)!.requests, 1, 'a reused slot starts from zero');
});

test('unknown workers are skipped, malformed reports refused, and at most MAX_TRACKED workers kept', () => {
  const m = new RequestMetrics((id) => id.startsWith('acme/'));
  m.add([{ workerId: 'other/x', requests: 1, errors: 0, latency: latency(1, 1) }]);
  assert.equal(m.tracked, 0);
  for (const bad of [
    [{ workerId: 'acme/a', requests: 1, errors: 2, latency: latency(1, 1) }],
    [{ workerId: 'acme/a', requests: -1, errors: 0, latency: latency(1, 1) }],
    [{ workerId: 'acme/a', requests: 1, errors: 0, latency: [1] }],
    [{ workerId: 'acme/a', requests: 1e12, errors: 0, latency: latency(1, 1) }],
    'not a list',
  ])
    assert.throws(() => m.add(bad), /request stats/);
  for (let i = 0; i < MAX_TRACKED + 50; i += 500)
    m.add(Array.from({ length: 500 }, (_, j) => ({ workerId: `acme/w${i + j}`, requests: 1, errors: 0, latency: latency(1, 1) })));
  assert.equal(m.tracked, MAX_TRACKED);
  assert.equal(m.lastHour('acme/w0').at(-1)!.requests, 0, 'the least recently reported went first');
});
