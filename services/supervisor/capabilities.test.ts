import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryCap, StorageCap } from './capabilities.ts';
import { WorkerDirectory } from './directory.ts';
import { SqlPool, type PooledDatabase } from './sql-pool.ts';

test("a storage call's deadline is what the sandbox says is left, never more than the worker's wall limit", async () => {
  const deadlines: number[] = [];
  const db: PooledDatabase = { call: async (_method, _args, deadline) => void deadlines.push(deadline - Date.now()) };
  const refused: string[] = [];
  const cap = new StorageCap(db, (action) => refused.push(action), 2000, 'acme/w');
  await cap.kvGet('k', 500);
  await cap.kvGet('k', 3_600_000); // a sandbox asking for an hour
  await cap.kvGet('k'); // or for nothing
  assert.ok(deadlines[0]! <= 500 && deadlines[0]! > 0, String(deadlines[0]));
  assert.ok(deadlines[1]! <= 2000 && deadlines[1]! > 1000, String(deadlines[1]));
  assert.ok(deadlines[2]! <= 2000 && deadlines[2]! > 1000, String(deadlines[2]));
  for (const bad of [-1, 1.5, '100', Infinity]) await assert.rejects(cap.kvGet('k', bad), /timeLeftMs/);
  assert.deepEqual(refused, ['kv.get', 'kv.get', 'kv.get', 'kv.get'], 'a malformed deadline is a refused call, audited');
});

test('refusals are audited by the flag their error carries, not by its words, across the SQL process too', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cordon-caps-'));
  const refused: string[] = [];
  const audit = (action: string, e: Error) => refused.push(`${action}: ${e.message}`);
  const dir = new DirectoryCap(await WorkerDirectory.open(join(root, 'dir'), 16), audit);
  await assert.rejects(dir.read('quota.txt'), /quota\.txt does not exist/);
  await assert.rejects(dir.read('../escape'), /"\.\." segments are not allowed/);
  await assert.rejects(dir.write('big', new Uint8Array(17)), /quota of 16 bytes exceeded/);
  const pool = new SqlPool({ processes: 1 });
  try {
    const sql = new StorageCap(pool.database(join(root, 'db.sqlite'), 1024 * 1024, 'acme'), audit, 10_000, 'acme/w');
    await assert.rejects(sql.exec('SELECT * FROM quota', []), /no such table: quota/);
    await assert.rejects(sql.exec("ATTACH DATABASE '/tmp/x' AS x", []), /not authorized/);
  } finally {
    await pool.close();
  }
  assert.deepEqual(
    refused.map((r) => r.split(':')[0]),
    ['dir.read', 'dir.write', 'storage.exec'],
    `a missing file or table is not a refusal, whatever it is called: ${JSON.stringify(refused)}`,
  );
});
