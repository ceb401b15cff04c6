import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimits } from './port.ts';

test('a worker may burst to twice its rate, then is refused until the bucket refills; workers do not share', async () => {
  const limits = new RateLimits(10);
  let granted = 0;
  while (limits.take('t/a')) granted++;
  assert.equal(granted, 20, 'a burst of twice the rate');
  assert.equal(limits.take('t/a'), false);
  assert.equal(limits.take('t/b'), true, 'another worker has its own bucket');
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(limits.take('t/a'), true, 'refilled at the rate (10/s: two and a half tokens in 250 ms)');
});
