import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSql } from './d1-export.ts';
import { LIMITS, WorkerDatabase } from './sql-storage.ts';

function filled(): WorkerDatabase {
  const db = new WorkerDatabase(join(mkdtempSync(join(tmpdir(), 'cordon-d1x-')), 'db.sqlite'));
  db.exec('CREATE TABLE "odd ""name""" (id INTEGER PRIMARY KEY AUTOINCREMENT, "te""xt" TEXT, n REAL, b BLOB)', []);
  db.exec('INSERT INTO "odd ""name""" ("te""xt", n, b) VALUES (?, ?, ?), (?, ?, ?)', ["it's; -- not a comment", 1.5, new Uint8Array([0, 255]), null, -3, null]);
  db.exec('CREATE TABLE plain (k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID', []);
  db.exec('INSERT INTO plain VALUES (?, ?)', ['a', 1]);
  db.exec('CREATE INDEX plain_v ON plain (v)', []);
  db.exec('CREATE VIEW both_ AS SELECT k FROM plain', []);
  db.kvPut('internal', new Uint8Array([1]));
  return db;
}

test("the export rebuilds the same schema and rows in a fresh SQLite, in Cloudflare's export form; _cf_ tables stay out", () => {
  const db = filled();
  const sql = exportSql(db);
  const lines = sql.split('\n');
  assert.equal(lines[0], 'PRAGMA defer_foreign_keys=TRUE;');
  assert.ok(lines.includes('CREATE TABLE IF NOT EXISTS "odd ""name""" (id INTEGER PRIMARY KEY AUTOINCREMENT, "te""xt" TEXT, n REAL, b BLOB);'));
  assert.ok(lines.includes(`INSERT INTO "odd ""name""" ("id","te""xt","n","b") VALUES(1,'it''s; -- not a comment',1.5,X'00ff');`));
  assert.ok(lines.includes('DELETE FROM sqlite_sequence;'));
  assert.doesNotMatch(sql, /_cf_KV|internal/);
  const copy = new DatabaseSync(':memory:');
  copy.exec(sql);
  const rows = (d: { prepare(s: string): { all(): unknown[] } }) => [
    d
      .prepare('SELECT id, "te""xt" AS t, n, hex(b) AS b FROM "odd ""name""" ORDER BY id')
      .all()
      .map((r) => ({ ...(r as object) })),
    d
      .prepare('SELECT k, v FROM plain')
      .all()
      .map((r) => ({ ...(r as object) })),
    d
      .prepare("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name")
      .all()
      .map((r) => ({ ...(r as object) })),
  ];
  assert.deepEqual(rows(copy)[2], [
    { type: 'view', name: 'both_' },
    { type: 'table', name: 'odd "name"' },
    { type: 'table', name: 'plain' },
    { type: 'index', name: 'plain_v' },
  ]);
  assert.deepEqual(rows(copy)[0], [
    { id: 1, t: "it's; -- not a comment", n: 1.5, b: '00FF' },
    { id: 2, t: null, n: -3, b: '' },
  ]);
  assert.deepEqual(rows(copy)[1], [{ k: 'a', v: 1 }]);
  db.close();
});

test('--table, --no-data and --no-schema; an export over the bound is refused', () => {
  const db = filled();
  const only = exportSql(db, { tables: ['plain'] });
  assert.doesNotMatch(only, /odd/);
  assert.match(only, /INSERT INTO "plain"/);
  assert.doesNotMatch(exportSql(db, { noData: true }), /INSERT/);
  assert.doesNotMatch(exportSql(db, { noSchema: true }), /CREATE/);
  db.exec('CREATE TABLE big (v TEXT)', []);
  const chunk = 'x'.repeat(LIMITS.valueBytes > 1024 * 1024 ? 1024 * 1024 : LIMITS.valueBytes);
  for (let i = 0; i < Math.ceil(LIMITS.resultBytes / chunk.length) + 1; i++) db.exec('INSERT INTO big VALUES (?)', [chunk]);
  assert.throws(() => exportSql(db, { tables: ['big'] }), /larger than 8 MiB; export fewer tables/);
  db.close();
});
