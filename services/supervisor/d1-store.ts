/**
 * D1's calls on a tenant database, run in the SQL processes (sql-process.ts). A D1 database is the
 * same SQLite file type as a worker's storage (`WorkerDatabase`): the same authorizer, quota and
 * defensive mode. What D1 adds is its result shape (`meta`) and `batch`, all-or-nothing.
 */
import { performance } from 'node:perf_hooks';
import type { D1Meta, D1Result } from '../../schemas/d1.ts';
import { exportSql, type ExportOptions } from './d1-export.ts';
import { resultSize, type SqlValue, splitStatements, type WorkerDatabase } from './sql-storage.ts';

/** One statement with D1's meta: changes counted as the difference in SQLite's total, so RETURNING and triggers count too. */
function query(db: WorkerDatabase, sql: string, bindings: SqlValue[]): D1Result {
  const start = performance.now();
  const before = db.counters.totalChanges;
  const r = db.exec(sql, bindings);
  const after = db.counters;
  const changes = after.totalChanges - before;
  const meta: D1Meta = {
    served_by: 'cordon',
    duration: performance.now() - start,
    changes,
    last_row_id: after.lastRowId,
    changed_db: changes > 0,
    size_after: db.databaseSize,
    rows_read: r.rowsRead,
    rows_written: Math.max(r.rowsWritten, changes),
  };
  return { columnNames: r.columnNames, rows: r.rows, meta };
}

export const d1Calls: Record<string, (db: WorkerDatabase, args: any[]) => unknown> = {
  query: (db, [sql, bindings]) => query(db, sql, bindings),
  /**
   * D1's batch: the statements in order, in one transaction; one failing rolls back them all. The
   * results together are bounded as one statement's are (they cross the mesh as one reply), and a
   * batch whose results are too large is rolled back too.
   */
  batch: (db, [statements]) =>
    db.atomic(() => {
      const size = resultSize('batch result', 'split the batch, or select fewer rows');
      return (statements as [string, SqlValue[]][]).map(([sql, bindings]) => {
        const r = query(db, sql, bindings);
        for (const row of r.rows) size.add(row);
        return r;
      });
    }),
  /** D1's export (wrangler d1 export): the database as the SQL that rebuilds it; for operators only (the admin API). */
  export: (db, [options]) => exportSql(db, options as ExportOptions),
  /** D1's exec: each statement of the text on its own (no bindings), as D1 runs them; answers how many ran. */
  exec: (db, [sql]) => {
    const start = performance.now();
    const statements = splitStatements(sql);
    for (const s of statements) db.exec(s, []);
    return { count: statements.length, duration: performance.now() - start };
  },
};
