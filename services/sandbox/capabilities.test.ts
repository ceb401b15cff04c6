import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForwardedCapabilities, MAX_CALL_BYTES } from './capabilities.ts';
import { logBatches } from './port.ts';
import { wireSize } from '../../lib/rpc/wire-size.ts';
import type { LogEntry } from '../../schemas/services.ts';

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

test('a call whose arguments are too large for one message is refused before it is sent, with both sizes', async () => {
  const sent: unknown[][] = [];
  const stub = { exec: async (...args: unknown[]) => (sent.push(args), { rows: [] }) };
  const caps = new ForwardedCapabilities({ DB: stub }, [{ type: 'storage', name: 'DB' }]);
  const nine = Array.from({ length: 9 }, () => new Uint8Array(2 * 1024 * 1024));
  await assert.rejects(caps.call('DB', 'exec', ['INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?)', nine]), /^RangeError: DB\.exec arguments are 24\.0 MiB as sent; the limit for one call is 12\.0 MiB$/);
  assert.equal(sent.length, 0, 'nothing was sent');
  assert.deepEqual(await caps.call('DB', 'exec', ['SELECT 1', [new Uint8Array(2 * 1024 * 1024)]]), { rows: [] });
  assert.equal(sent.length, 1);
  assert.ok(MAX_CALL_BYTES < 16 * 1024 * 1024);
});

test('log entries are cut into batches of at most 1 MiB, in order, none lost', () => {
  const entries: LogEntry[] = Array.from({ length: 1000 }, (_, i) => ({ level: 'log', message: `${i} ${'y'.repeat(65536)}`, time: i }));
  const batches = logBatches(entries);
  assert.ok(batches.length > 1);
  for (const b of batches) assert.ok(wireSize(b) <= 1024 * 1024 + 16, `a batch of ${wireSize(b)} bytes`);
  assert.deepEqual(batches.flat(), entries);
});
