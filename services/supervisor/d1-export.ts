/**
 * D1's export (`wrangler d1 export`, and what D1 has instead of `dump()`, which Cloudflare keeps only for
 * its deprecated alpha databases): the database as SQL statements that rebuild it, in the order and form
 * Cloudflare's own export writes them (miniflare's dumpSql): `PRAGMA defer_foreign_keys=TRUE;`, each table's
 * `CREATE TABLE IF NOT EXISTS` and its rows as `INSERT INTO "t" ("a","b") VALUES(...)`, then the indexes,
 * triggers and views. The runtime's own tables (`_cf_*`) are left out. The text is bounded as one result
 * is (it crosses the mesh as one reply).
 */
import { LIMITS, SqlError, type SqlValue, type WorkerDatabase } from './sql-storage.ts';

export interface ExportOptions {
  tables?: string[];
  noSchema?: boolean;
  noData?: boolean;
}

const id = (name: string) => `"${name.replace(/"/g, '""')}"`;

function literal(v: SqlValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `'${v.replace(/'/g, "''")}'`;
  return `X'${Buffer.from(v).toString('hex')}'`;
}

export function exportSql(db: WorkerDatabase, options: ExportOptions = {}): string {
  const only = new Set(options.tables ?? []);
  const out: string[] = [];
  let bytes = 0;
  const emit = (line: string) => {
    bytes += Buffer.byteLength(line) + 1;
    if (bytes > LIMITS.resultBytes) {
      throw new SqlError(
        `the export is larger than ${LIMITS.resultBytes / (1024 * 1024)} MiB; export fewer tables at a time (--table), or the schema alone (--no-data)`,
      );
    }
    out.push(line);
  };
  emit('PRAGMA defer_foreign_keys=TRUE;');
  const tables = [...db.ownRows("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql NOT NULL ORDER BY tbl_name = 'sqlite_sequence', rowid")];
  for (const t of tables) {
    const table = String(t.name);
    const sql = String(t.sql);
    if (only.size && !only.has(table)) continue;
    if (table === 'sqlite_sequence') {
      if (!options.noSchema) emit('DELETE FROM sqlite_sequence;');
    } else if (/^sqlite_stat./.test(table)) {
      if (!options.noSchema) emit('ANALYZE sqlite_schema;');
    } else {
      if (sql.startsWith('CREATE VIRTUAL TABLE')) throw new SqlError('D1 Export error: cannot export databases with Virtual Tables (fts5)');
      if (table.startsWith('_cf_') || table.startsWith('sqlite_')) continue;
      if (!options.noSchema) emit(/^CREATE TABLE ['"]/.test(sql) ? `CREATE TABLE IF NOT EXISTS ${sql.slice(13)};` : `${sql};`);
    }
    if (options.noData) continue;
    const columns = [...db.ownRows(`PRAGMA table_info(${id(table)})`)].map((c) => String(c.name));
    const names = columns.map(id).join(',');
    for (const row of db.ownRows(`SELECT ${columns.map(id).join(', ')} FROM ${id(table)}`)) {
      emit(`INSERT INTO ${id(table)} (${names}) VALUES(${columns.map((c) => literal(row[c] as SqlValue)).join(',')});`);
    }
  }
  if (!options.noSchema) {
    for (const o of db.ownRows(
      "SELECT name, sql FROM sqlite_schema WHERE sql NOT NULL AND type IN ('index', 'trigger', 'view') ORDER BY type COLLATE NOCASE",
    )) {
      if (only.size && !only.has(String(o.name))) continue;
      emit(`${String(o.sql)};`);
    }
  }
  return out.join('\n');
}
