import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForwardedCapabilities } from './capabilities.ts';

test("a storage call carries the sandbox's time left, never one the worker put among its arguments", async () => {
  const seen: unknown[][] = [];
  const stub = new Proxy({}, { get: () => async (...args: unknown[]) => void seen.push(args) });
  const caps = new ForwardedCapabilities({ DB: stub }, [{ type: 'storage', name: 'DB' }]);
  await caps.call('DB', 'exec', ['SELECT ?', [1], 99_999_999, 'more'], 1234);
  await caps.call('DB', 'kvGet', [], 50);
  await caps.call('DB', 'begin', [3_600_000]);
  assert.deepEqual(seen, [
    ['SELECT ?', [1], 1234],
    [undefined, 50],
    [undefined],
  ]);
});
