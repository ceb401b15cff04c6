import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TenantDb } from './tenant-db.ts';

test('group commit: writes of one turn share a transaction; a failing write fails alone, with nothing of it kept', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-tdb-')), 't.db');
  const db = new TenantDb(file);
  const insert = (id: string) => db.prepare("INSERT INTO workflows (name, worker, class_name) VALUES (?, 'w', 'C')").run(id);
  const results = await Promise.allSettled([
    db.write(() => void insert('a')),
    db.write(() => {
      insert('half');
      throw new Error('this write fails');
    }),
    db.write(() => void insert('a')), // a constraint violation: fails alone too
    db.write(() => void insert('b')),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'rejected', 'fulfilled'],
  );
  db.close();
  const again = new TenantDb(file);
  assert.deepEqual(again.prepare('SELECT name FROM workflows ORDER BY name').pluck().all(), ['a', 'b'], 'durable, and nothing of the failed writes');
  again.close();
});
