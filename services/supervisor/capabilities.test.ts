import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StorageCap } from './capabilities.ts';
import type { PooledDatabase } from './sql-pool.ts';

test("a storage call's deadline is what the sandbox says is left, never more than the worker's wall limit", async () => {
  const deadlines: number[] = [];
  const db: PooledDatabase = { call: async (_method, _args, deadline) => void deadlines.push(deadline - Date.now()) };
  const refused: string[] = [];
  const cap = new StorageCap(db, (action) => refused.push(action), 2000);
  await cap.kvGet('k', 500);
  await cap.kvGet('k', 3_600_000); // a sandbox asking for an hour
  await cap.kvGet('k'); // or for nothing
  assert.ok(deadlines[0]! <= 500 && deadlines[0]! > 0, String(deadlines[0]));
  assert.ok(deadlines[1]! <= 2000 && deadlines[1]! > 1000, String(deadlines[1]));
  assert.ok(deadlines[2]! <= 2000 && deadlines[2]! > 1000, String(deadlines[2]));
  for (const bad of [-1, 1.5, '100', Infinity]) await assert.rejects(cap.kvGet('k', bad), /timeLeftMs/);
  assert.deepEqual(refused, ['kv.get', 'kv.get', 'kv.get', 'kv.get'], 'a malformed deadline is a refused call, audited');
});
