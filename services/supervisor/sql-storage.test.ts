import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitStatements, WorkerDatabase } from './sql-storage.ts';

function open(quota?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-sql-'));
  return { dir, db: new WorkerDatabase(join(dir, 'db.sqlite'), quota) };
}

test('exec: statements, bindings on the last one, cursor data, rowsRead/rowsWritten', () => {
  const { db } = open();
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB); INSERT INTO t (name) VALUES (?)', ['a']);
  const w = db.exec('INSERT INTO t (name, data) VALUES (?, ?), (?, ?)', ['b', new Uint8Array([0, 255]), 'c', null]);
  assert.equal(w.rowsWritten, 2);
  const r = db.exec('SELECT id, name, data FROM t WHERE id >= ? ORDER BY id', [1]);
  assert.deepEqual(r.columnNames, ['id', 'name', 'data']);
  assert.equal(r.rows.length, 3);
  assert.equal(r.rowsRead, 3);
  assert.deepEqual([...(r.rows[1]![2] as Uint8Array)], [0, 255]);
  assert.ok(db.databaseSize > 0);
  db.close();
});

test('side doors are refused: ATTACH, VACUUM INTO, load_extension, PRAGMA writes, transactions, internals', () => {
  const { dir, db } = open();
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)', []);
  const refused: [string, RegExp][] = [
    [`ATTACH DATABASE '${join(dir, 'other.db')}' AS o`, /ATTACH/],
    [`VACUUM INTO '${join(dir, 'copy.db')}'`, /not authorized: .*VACUUM/],
    [`/* x */ -- y\n vacuum main INTO '${join(dir, 'copy.db')}'`, /not authorized: .*VACUUM/],
    ["SELECT load_extension('/lib/x.so')", /not authorized|load_extension|no such function/],
    ['PRAGMA journal_mode = DELETE', /PRAGMA journal_mode/],
    ['PRAGMA writable_schema = 1', /PRAGMA writable_schema/],
    ['PRAGMA max_page_count = 999999999', /PRAGMA max_page_count/],
    ['PRAGMA database_list', /PRAGMA database_list/],
    ['PRAGMA user_version = 7', /PRAGMA user_version/],
    ['BEGIN', /transactions are not allowed/],
    ['SAVEPOINT x', /transactions are not allowed/],
    ["UPDATE sqlite_master SET sql = 'x'", /./],
    ["INSERT INTO sqlite_sequence (name, seq) VALUES ('t', 5)", /writing sqlite_sequence/],
    ["INSERT INTO _cf_KV VALUES ('k', x'00')", /reserved for the KV API/],
    ['DROP TABLE _cf_KV', /reserved for the KV API/],
    ['CREATE VIRTUAL TABLE f USING fts5(x)', /virtual tables/],
  ];
  for (const [sql, why] of refused) assert.throws(() => db.exec(sql, []), why, sql);
  assert.equal(existsSync(join(dir, 'other.db')), false);
  assert.equal(existsSync(join(dir, 'copy.db')), false);
  // Safe introspection still works.
  assert.equal(db.exec('PRAGMA table_info(t)', []).rows.length, 2);
  db.close();
});

test('transactionSync: commit keeps, rollback discards; a failing multi-statement exec writes nothing', () => {
  const { db } = open();
  db.exec('CREATE TABLE t (v INTEGER UNIQUE)', []);
  db.begin();
  db.exec('INSERT INTO t VALUES (1)', []);
  db.commit();
  db.begin();
  db.exec('INSERT INTO t VALUES (2)', []);
  db.rollback();
  assert.throws(() => db.exec('INSERT INTO t VALUES (3); INSERT INTO t VALUES (1)', []), /UNIQUE/);
  assert.deepEqual(db.exec('SELECT v FROM t ORDER BY v', []).rows, [[1]]);
  db.close();
});

test('limits: statement size, bound parameters, value size, and the database quota lose nothing committed', () => {
  const { db } = open(256 * 1024);
  assert.throws(() => db.exec('SELECT 1 -- ' + 'x'.repeat(101 * 1024), []), /longer than/);
  assert.throws(() => db.exec('SELECT ' + Array(101).fill('?').join(','), Array(101).fill(1)), /too many bound parameters/);
  assert.throws(() => db.exec('SELECT ?', ['x'.repeat(2 * 1024 * 1024 + 1)]), /larger than/);
  db.exec('CREATE TABLE big (v BLOB)', []);
  db.exec('INSERT INTO big VALUES (?)', [new Uint8Array(1000)]);
  assert.throws(() => {
    for (let i = 0; i < 1000; i++) db.exec('INSERT INTO big VALUES (?)', [new Uint8Array(100_000)]);
  }, /quota/);
  const rows = db.exec('SELECT count(*) FROM big', []).rows[0]![0] as number;
  assert.ok(rows >= 1, 'what was committed before the quota is still there');
  db.close();
});

test('KV: put/get/delete/list with prefix and limit (prefix with LIKE metacharacters)', () => {
  const { db } = open();
  const enc = (s: string) => new TextEncoder().encode(s);
  db.kvPut('a%1', enc('x'));
  db.kvPut('a%2', enc('y'));
  db.kvPut('ab', enc('z'));
  assert.deepEqual(
    db.kvList('a%', 10).map(([k]) => k),
    ['a%1', 'a%2'],
  );
  assert.deepEqual(
    db.kvList('', 2).map(([k]) => k),
    ['a%1', 'a%2'],
  );
  assert.equal(new TextDecoder().decode(db.kvGet('ab')), 'z');
  assert.equal(db.kvDelete('ab'), true);
  assert.equal(db.kvGet('ab'), undefined);
  db.close();
});

test('splitStatements honours quotes and comments', () => {
  assert.deepEqual(splitStatements('SELECT \';\'; SELECT 2 -- ; x\n; /* ; */ SELECT "a;b";'), ["SELECT ';'", 'SELECT 2 -- ; x', '/* ; */ SELECT "a;b"']);
  assert.deepEqual(splitStatements("SELECT 'it''s;'; SELECT 1"), ["SELECT 'it''s;'", 'SELECT 1']);
  assert.deepEqual(splitStatements(' ; -- only a comment'), []);
});

test('a result larger than RPC may carry is refused to its caller, counted as it will be encoded; the database stays usable', () => {
  const { db } = open();
  assert.throws(() => db.exec('SELECT zeroblob(3000000) FROM (VALUES (1), (2), (3), (4))', []), /query result is larger than 8 MiB; select fewer rows/);
  // 2 MB of control characters is 12 MB of JSON escapes.
  assert.throws(
    () => db.exec("SELECT replace(hex(zeroblob(1000000)), '00', char(1)) AS a, replace(hex(zeroblob(1000000)), '00', char(1)) AS b", []),
    /larger than 8 MiB/,
  );
  assert.equal(db.exec('SELECT zeroblob(3000000) FROM (VALUES (1), (2))', []).rows.length, 2);
  for (let i = 0; i < 5; i++) db.kvPut(`k${i}`, new Uint8Array(2_000_000));
  assert.throws(() => db.kvList('', 10), /list result is larger than 8 MiB; ask for fewer entries/);
  assert.equal(db.kvList('k', 2).length, 2);
  db.exec('CREATE TABLE t (v)', []);
  db.exec('INSERT INTO t VALUES (1)', []);
  assert.deepEqual(db.exec('SELECT v FROM t', []).rows, [[1]]);
  db.close();
});

test("copyFrom (ctx.facets.clone): the database becomes a copy of another's tenant data, schema and keys; what it had goes", () => {
  const dir = mkdtempSync(join(tmpdir(), 'sql-copy-'));
  const src = new WorkerDatabase(join(dir, 'src.sqlite'));
  const dst = new WorkerDatabase(join(dir, 'dst.sqlite'));
  src.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE log (v TEXT); CREATE INDEX t_v ON t (v)', []);
  src.exec('CREATE VIEW vs AS SELECT v FROM t', []);
  src.exec("INSERT INTO t (v) VALUES ('a'), ('b'); INSERT INTO log VALUES ('added a'), ('added b')", []);
  src.kvPut('k', new Uint8Array([1, 2]));
  dst.exec("CREATE TABLE old (x); INSERT INTO old VALUES ('gone')", []);
  dst.kvPut('old', new Uint8Array([9]));
  dst.copyFrom(join(dir, 'src.sqlite'));
  assert.deepEqual(dst.exec('SELECT v FROM vs ORDER BY v', []).rows, [['a'], ['b']]);
  assert.deepEqual(dst.exec('SELECT v FROM log ORDER BY v', []).rows, [['added a'], ['added b']]);
  assert.deepEqual(dst.exec("SELECT name FROM sqlite_master WHERE type = 'index'", []).rows, [['t_v']]);
  assert.throws(() => dst.exec('SELECT * FROM old', []), /no such table: old/);
  assert.deepEqual([...(dst.kvGet('k') ?? [])], [1, 2]);
  assert.equal(dst.kvGet('old'), undefined);
  assert.deepEqual(src.exec('SELECT count(*) FROM t', []).rows, [[2]], 'the source is untouched');
  // The source is not attached afterwards: tenant SQL cannot reach it.
  assert.throws(() => dst.exec('SELECT * FROM cordon_src.t', []), /no such table|not authorized/);
  src.close();
  dst.close();
});
