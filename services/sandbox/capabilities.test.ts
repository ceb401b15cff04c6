import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ForwardedCapabilities, MAX_CALL_BYTES, MAX_CALLS_IN_FLIGHT } from './capabilities.ts';
import { CallGate } from './call-gate.ts';
import { logBatches } from './port.ts';
import { wireSize } from '../../lib/rpc/wire-size.ts';
import type { LogEntry } from '../../schemas/services.ts';

test("a storage call carries the sandbox's time left, never one the worker put among its arguments", async () => {
  const seen: unknown[][] = [];
  const stub = new Proxy(
    {},
    {
      get:
        () =>
        async (...args: unknown[]) =>
          void seen.push(args),
    },
  );
  const caps = new ForwardedCapabilities({ DB: stub }, [{ type: 'storage', name: 'DB' }]);
  await caps.call('DB', 'exec', ['SELECT ?', [1], 99_999_999, 'more'], 1234);
  await caps.call('DB', 'kvGet', [], 50);
  await caps.call('DB', 'begin', [3_600_000]);
  assert.deepEqual(seen, [['SELECT ?', [1], 1234], [undefined, 50], [undefined]]);
});

test('a call whose arguments are too large for one message is refused before it is sent, with both sizes', async () => {
  const sent: unknown[][] = [];
  const stub = { exec: async (...args: unknown[]) => (sent.push(args), { rows: [] }) };
  const caps = new ForwardedCapabilities({ DB: stub }, [{ type: 'storage', name: 'DB' }]);
  const nine = Array.from({ length: 9 }, () => new Uint8Array(2 * 1024 * 1024));
  await assert.rejects(
    caps.call('DB', 'exec', ['INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?)', nine]),
    /^RangeError: DB\.exec arguments are 24\.0 MiB as sent; the limit for one call is 12\.0 MiB$/,
  );
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

test('one worker may have a bounded number of calls in flight; past it its calls are refused, not queued', async () => {
  const pending: (() => void)[] = [];
  const stub = { match: () => new Promise<null>((resolve) => pending.push(() => resolve(null))) };
  const caps = new ForwardedCapabilities({ $cache: stub }, []);
  const calls = Array.from({ length: MAX_CALLS_IN_FLIGHT }, () => caps.call('$cache', 'match', ['default', 'https://x.example/', []]));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(
    caps.call('$cache', 'match', ['default', 'https://x.example/', []]),
    /too many capability calls in flight: a worker may have 64 at once/,
  );
  pending.shift()!();
  await calls[0];
  const again = caps.call('$cache', 'match', ['default', 'https://x.example/', []]);
  await new Promise((r) => setImmediate(r));
  for (const release of pending.splice(0)) release();
  await Promise.all([...calls, again]);
});

test('the gate lets a bounded number of calls run at once; the rest wait their turn, in order', async () => {
  const gate = new CallGate(2);
  const started: number[] = [];
  const finish: (() => void)[] = [];
  const runs = [0, 1, 2, 3].map((i) => gate.run(() => new Promise<number>((resolve) => (started.push(i), finish.push(() => resolve(i))))));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1]);
  finish[0]!();
  await runs[0];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2]);
  finish[1]!();
  finish[2]!();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, [0, 1, 2, 3]);
  finish[3]!();
  assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3]);
});
