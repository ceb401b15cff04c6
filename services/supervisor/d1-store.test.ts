/** D1's calls on a database file alone: meta as D1 reports it, batch all-or-nothing, results bounded together, exec. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerDatabase, LIMITS } from './sql-storage.ts';
import { d1Calls } from './d1-store.ts';
import type { D1Result } from '../../schemas/d1.ts';

test('D1 store: meta, an all-or-nothing batch, a batch whose results are too large, exec and the authorizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-d1-'));
  try {
    const db = new WorkerDatabase(join(dir, 'd1.sqlite'));
    const ran = d1Calls.exec!(db, ['CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t (v)']) as { count: number; duration: number };
    assert.equal(ran.count, 2);
    const insert = d1Calls.query!(db, ['INSERT INTO t (v) VALUES (?), (?) RETURNING id', ['a', 'b']]) as D1Result;
    assert.deepEqual(insert.rows, [[1], [2]]);
    assert.equal(insert.meta.changes, 2, 'RETURNING statements count their changes');
    assert.equal(insert.meta.last_row_id, 2);
    assert.equal(insert.meta.changed_db, true);
    assert.equal(insert.meta.served_by, 'cordon');
    const read = d1Calls.query!(db, ['SELECT v FROM t', []]) as D1Result;
    assert.equal(read.meta.changes, 0);
    assert.equal(read.meta.rows_read, 2);
    assert.throws(
      () =>
        d1Calls.batch!(db, [
          [
            ['INSERT INTO t (v) VALUES (?)', ['c']],
            ['INSERT INTO nowhere VALUES (1)', []],
          ],
        ]),
      /no such table: nowhere/,
    );
    assert.equal((d1Calls.query!(db, ['SELECT count(*) FROM t', []]) as D1Result).rows[0]![0], 2, 'the batch was rolled back');
    // Each statement's result is under the bound, together they are not: refused, and rolled back.
    const half = 'x'.repeat(Math.floor(LIMITS.valueBytes / 2));
    const big = Array.from({ length: 4 }, (): [string, string[]] => ['INSERT INTO t (v) VALUES (?) RETURNING v', [half + half]]);
    assert.throws(() => d1Calls.batch!(db, [[...big, ...big, ['INSERT INTO t (v) VALUES (1)', []]]]), /batch result is larger than 8 MiB/);
    assert.equal((d1Calls.query!(db, ['SELECT count(*) FROM t', []]) as D1Result).rows[0]![0], 2);
    assert.throws(() => d1Calls.query!(db, ["ATTACH DATABASE 'x' AS y", []]), /not authorized/);
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
