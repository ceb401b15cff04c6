/**
 * One worker's SQLite database, as the Workers Durable Object storage API sees it (`ctx.storage.sql`
 * plus the synchronous KV API). The file is opened only in the supervisor's SQL processes
 * (sql-pool.ts), never by a sandbox.
 *
 * Uses Node's built-in `node:sqlite` rather than better-sqlite3 because only it exposes SQLite's
 * authorizer (`setAuthorizer`), which is what keeps tenant SQL inside its own file: ATTACH/DETACH,
 * load_extension, transactions outside `transactionSync`, virtual tables, PRAGMAs outside a small
 * read-only list and writes to `sqlite_*` internals are refused before a statement runs. Defensive
 * mode (SQLITE_DBCONFIG_DEFENSIVE) additionally blocks writable_schema tricks and direct schema edits.
 */
import { DatabaseSync, constants as C, type StatementSync } from 'node:sqlite';
import { statSync } from 'node:fs';
import type { SqlResult, SqlValue } from '../../schemas/capabilities.ts';
import { CordonError } from '../../lib/errors.ts';

export const LIMITS = {
  statementBytes: 100 * 1024,
  boundParameters: 100,
  valueBytes: 2 * 1024 * 1024,
  /**
   * One call's result, as it will cross RPC: a reply past the mesh's 16 MiB frame limit would end the
   * sandbox's whole session (every co-tenant's calls with it), so a larger result is refused to its caller.
   */
  resultBytes: 8 * 1024 * 1024,
  defaultQuotaBytes: 1024 * 1024 * 1024,
};

export type { SqlValue };
export type ExecResult = SqlResult;

/**
 * What tenant SQL or the pool refused or failed with; the message is for the tenant. `refusal`: the
 * authorizer denied the statement or the quota stopped it (audited); a failing query is not one.
 */
export class SqlError extends CordonError {
  constructor(message: string, refusal = false) {
    super(message, { status: refusal ? 403 : 400, refusal });
    this.name = 'SqlError';
  }
}

/**
 * PRAGMAs a tenant may run: introspection that has no setter form (the authorizer cannot tell
 * `PRAGMA x(arg)` from `PRAGMA x = arg`, so nothing assignable is on the list).
 */
const SAFE_PRAGMAS = new Set([
  'table_info',
  'table_xinfo',
  'table_list',
  'index_list',
  'index_info',
  'index_xinfo',
  'foreign_key_list',
  'foreign_key_check',
  'integrity_check',
  'quick_check',
  'page_count',
  'freelist_count',
]);
/** Schema tables SQLite itself writes during CREATE/DROP; defensive mode stops tenants writing them directly. */
const SCHEMA_TABLES = new Set(['sqlite_master', 'sqlite_schema', 'sqlite_temp_master', 'sqlite_temp_schema']);
const KV_TABLE = '_cf_KV';

export class WorkerDatabase {
  readonly #db: DatabaseSync;
  readonly #file: string;
  readonly #quotaBytes: number;
  /** While true our own statements run (KV, transactions); the authorizer lets them through. */
  #internal = false;
  #inTransaction = false;
  #denied: string | undefined;
  readonly #cache = new Map<string, StatementSync>();

  constructor(file: string, quotaBytes = LIMITS.defaultQuotaBytes) {
    this.#file = file;
    this.#quotaBytes = quotaBytes;
    this.#db = new DatabaseSync(file, { defensive: true, allowExtension: false, enableDoubleQuotedStringLiterals: false, timeout: 5000 });
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS ${KV_TABLE} (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID`);
    this.#applyQuota();
    this.#db.setAuthorizer((action, a, b) => this.#authorize(action, a, b));
  }

  close(): void {
    this.#db.close();
  }

  /** Whether a `transactionSync` transaction is open (SQLite may have ended it itself, e.g. on SQLITE_FULL). */
  get inTransaction(): boolean {
    return this.#inTransaction;
  }

  get databaseSize(): number {
    const pages = this.#internalRun(() => (this.#db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count);
    const size = this.#internalRun(() => (this.#db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size);
    return pages * size;
  }

  /** `sql.exec(query, ...bindings)`: runs every statement of `query`; bindings apply to the last; the result is the last statement's. */
  exec(query: string, bindings: SqlValue[]): ExecResult {
    if (typeof query !== 'string') throw new SqlError('query must be a string');
    if (Buffer.byteLength(query) > LIMITS.statementBytes) throw new SqlError(`SQL statement is longer than ${LIMITS.statementBytes} bytes`);
    if (bindings.length > LIMITS.boundParameters) throw new SqlError(`too many bound parameters (${bindings.length}); the limit is ${LIMITS.boundParameters}`);
    for (const v of bindings) {
      if (!(v === null || typeof v === 'string' || typeof v === 'number' || v instanceof Uint8Array))
        throw new SqlError('bindings must be strings, numbers, null or bytes');
      if ((typeof v === 'string' ? Buffer.byteLength(v) : v instanceof Uint8Array ? v.byteLength : 0) > LIMITS.valueBytes) {
        throw new SqlError(`a bound value is larger than ${LIMITS.valueBytes} bytes`);
      }
    }
    const statements = splitStatements(query);
    if (statements.length === 0) throw new SqlError('empty query');
    let result: ExecResult = { columnNames: [], rows: [], rowsRead: 0, rowsWritten: 0 };
    // Without an explicit transactionSync, each exec is atomic on its own.
    const own = !this.#inTransaction;
    if (own) this.#internalRun(() => this.#db.exec('SAVEPOINT cordon_exec'));
    try {
      for (let i = 0; i < statements.length; i++) {
        const last = i === statements.length - 1;
        result = this.#run(statements[i]!, last ? bindings : [], result);
      }
      if (own) this.#internalRun(() => this.#db.exec('RELEASE cordon_exec'));
    } catch (e) {
      // Some errors (SQLITE_FULL) make SQLite roll back the whole transaction itself.
      if (!this.#db.isTransaction) this.#inTransaction = false;
      else if (own) this.#internalRun(() => this.#db.exec('ROLLBACK TO cordon_exec; RELEASE cordon_exec'));
      throw this.#explain(e);
    }
    return result;
  }

  /**
   * Run `fn` (tenant statements through exec) as one unit: all it wrote is kept, or nothing (D1's
   * batch). A savepoint, so it nests inside an open transaction too.
   */
  atomic<T>(fn: () => T): T {
    this.#internalRun(() => this.#db.exec('SAVEPOINT cordon_atomic'));
    try {
      const out = fn();
      this.#internalRun(() => this.#db.exec('RELEASE cordon_atomic'));
      return out;
    } catch (e) {
      if (this.#db.isTransaction) this.#internalRun(() => this.#db.exec('ROLLBACK TO cordon_atomic; RELEASE cordon_atomic'));
      else this.#inTransaction = false;
      throw e;
    }
  }

  /**
   * Rows of a read of our own, past the authorizer (the schema table, PRAGMA table_info): for exports
   * the runtime makes, never for tenant SQL. One row at a time, so a caller can stop early.
   */
  *ownRows(sql: string): Generator<Record<string, SqlValue>> {
    const it = this.#internalRun(() => this.#db.prepare(sql).iterate());
    for (;;) {
      const next = this.#internalRun(() => it.next());
      if (next.done) return;
      yield next.value as Record<string, SqlValue>;
    }
  }

  /** Rows changed since the connection opened and the last inserted rowid, as SQLite counts them (for D1's `meta`). */
  get counters(): { totalChanges: number; lastRowId: number } {
    const r = this.#internalRun(() => this.#stmt('SELECT total_changes() AS c, last_insert_rowid() AS r').get()) as { c: number; r: number };
    return { totalChanges: Number(r.c), lastRowId: Number(r.r) };
  }

  /** Begin / commit / roll back the transaction `transactionSync(fn)` wraps around `fn`. */
  begin(): void {
    if (this.#inTransaction) throw new SqlError('transactionSync cannot be nested');
    this.#internalRun(() => this.#db.exec('BEGIN IMMEDIATE'));
    this.#inTransaction = true;
  }

  commit(): void {
    if (!this.#inTransaction) throw new SqlError('no transaction is open');
    this.#inTransaction = false;
    this.#internalRun(() => this.#db.exec('COMMIT'));
  }

  rollback(): void {
    if (!this.#inTransaction) return;
    this.#inTransaction = false;
    if (this.#db.isTransaction) this.#internalRun(() => this.#db.exec('ROLLBACK'));
  }

  kvGet(key: string): Uint8Array | undefined {
    const row = this.#internalRun(() => this.#stmt(`SELECT value FROM ${KV_TABLE} WHERE key = ?`).get(key)) as { value: Uint8Array } | undefined;
    return row?.value;
  }

  kvPut(key: string, value: Uint8Array): void {
    if (Buffer.byteLength(key) + value.byteLength > LIMITS.valueBytes) throw new SqlError(`key and value together exceed ${LIMITS.valueBytes} bytes`);
    this.#write(() => this.#stmt(`INSERT INTO ${KV_TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(key, value));
  }

  kvDelete(key: string): boolean {
    return this.#write(() => Number(this.#stmt(`DELETE FROM ${KV_TABLE} WHERE key = ?`).run(key).changes) > 0);
  }

  kvList(prefix: string, limit: number): [string, Uint8Array][] {
    return this.#internalRun(() => {
      // Range scan rather than LIKE: a prefix may hold % or _.
      const rows = prefix
        ? this.#stmt(`SELECT key, value FROM ${KV_TABLE} WHERE key >= ? AND key < ? ORDER BY key LIMIT ?`).iterate(prefix, prefix + '\uffff', limit)
        : this.#stmt(`SELECT key, value FROM ${KV_TABLE} ORDER BY key LIMIT ?`).iterate(limit);
      const out: [string, Uint8Array][] = [];
      const size = resultSize('list result', 'ask for fewer entries (limit)');
      for (const r of rows as Iterable<{ key: string; value: Uint8Array }>) {
        const entry: [string, Uint8Array] = [r.key, r.value];
        size.add(entry);
        out.push(entry);
      }
      return out;
    });
  }

  /**
   * The async KV API's list(): keys in [start, end) (either open), starting with `prefix`, ascending or
   * (`reverse`) descending, at most `limit`. Keys compare as SQLite's BINARY collation does (UTF-8 bytes).
   */
  kvScan(start: string | null, end: string | null, prefix: string, reverse: boolean, limit: number): [string, Uint8Array][] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (start !== null) {
      where.push('key >= ?');
      args.push(start);
    }
    if (end !== null) {
      where.push('key < ?');
      args.push(end);
    }
    if (prefix) {
      where.push('substr(key, 1, length(?)) = ?');
      args.push(prefix, prefix);
    }
    const sql = `SELECT key, value FROM ${KV_TABLE}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY key ${reverse ? 'DESC' : 'ASC'} LIMIT ?`;
    return this.#internalRun(() => {
      const out: [string, Uint8Array][] = [];
      const size = resultSize('list result', 'ask for fewer entries (limit)');
      for (const r of this.#stmt(sql).iterate(...args, limit) as Iterable<{ key: string; value: Uint8Array }>) {
        const entry: [string, Uint8Array] = [r.key, r.value];
        size.add(entry);
        out.push(entry);
      }
      return out;
    });
  }

  /** `storage.deleteAll()`: every table, view and KV entry of the tenant's, atomically. */
  deleteAll(): void {
    this.#write(() => {
      const own = !this.#inTransaction;
      if (own) this.#db.exec('SAVEPOINT cordon_delete_all');
      try {
        this.#wipe();
        if (own) this.#db.exec('RELEASE cordon_delete_all');
      } catch (e) {
        if (own && this.#db.isTransaction) this.#db.exec('ROLLBACK TO cordon_delete_all; RELEASE cordon_delete_all');
        throw e;
      }
      this.#cache.clear();
    });
  }

  #wipe(): void {
    const items = this.#db
      .prepare(`SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view') AND substr(name, 1, 7) <> 'sqlite_' AND name <> ?`)
      .all(KV_TABLE) as { type: string; name: string }[];
    // Views first: a view may name a table.
    for (const it of items.sort((a, b) => (a.type === b.type ? 0 : a.type === 'view' ? -1 : 1)))
      this.#db.exec(`DROP ${it.type === 'view' ? 'VIEW' : 'TABLE'} IF EXISTS "${it.name.replaceAll('"', '""')}"`);
    this.#db.exec(`DELETE FROM ${KV_TABLE}`);
  }

  /**
   * `ctx.facets.clone()`: this database becomes a copy of the tenant data of `file` (another database
   * of the same object, named by the supervisor), atomically: tables with their rows first, then
   * indexes, views and triggers (so no trigger fires on the copy), and the KV entries. The quota holds.
   */
  copyFrom(file: string): void {
    if (this.#inTransaction) throw new SqlError('a facet cannot be cloned while a transaction is open');
    this.#write(() => {
      this.#db.exec(`ATTACH DATABASE '${file.replaceAll("'", "''")}' AS cordon_src`);
      try {
        this.#db.exec('SAVEPOINT cordon_copy');
        try {
          this.#wipe();
          const items = this.#db
            .prepare(
              `SELECT type, name, sql FROM cordon_src.sqlite_schema WHERE sql IS NOT NULL AND substr(name, 1, 7) <> 'sqlite_' AND name <> ?
                ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END`,
            )
            .all(KV_TABLE) as { type: string; name: string; sql: string }[];
          for (const it of items) {
            this.#db.exec(it.sql);
            const name = `"${it.name.replaceAll('"', '""')}"`;
            if (it.type === 'table') this.#db.exec(`INSERT INTO main.${name} SELECT * FROM cordon_src.${name}`);
          }
          this.#db.exec(`INSERT INTO main.${KV_TABLE} SELECT * FROM cordon_src.${KV_TABLE}`);
          this.#db.exec('RELEASE cordon_copy');
        } catch (e) {
          if (this.#db.isTransaction) this.#db.exec('ROLLBACK TO cordon_copy; RELEASE cordon_copy');
          throw e;
        }
      } finally {
        this.#db.exec('DETACH DATABASE cordon_src');
      }
      this.#cache.clear();
    });
  }

  #write<T>(fn: () => T): T {
    return this.#internalRun(() => {
      try {
        return fn();
      } catch (e) {
        throw this.#explain(e);
      }
    });
  }

  #stmt(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) this.#cache.set(sql, (s = this.#db.prepare(sql)));
    return s;
  }

  #run(sql: string, bindings: SqlValue[], previous: ExecResult): ExecResult {
    this.#denied = undefined;
    // Preparing VACUUM consults no authorizer action, so the ATTACH rule above would only see it
    // running: refuse it here, as the authorizer would, before it can write a copy anywhere.
    if (/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?(?:\*\/|$))*VACUUM\b/i.test(sql))
      throw new SqlError('not authorized: ATTACH, DETACH and VACUUM are not allowed', true);
    const stmt = this.#db.prepare(sql);
    const columns = stmt.columns().map((c) => c.name);
    if (columns.length > 0) {
      stmt.setReturnArrays(true);
      // As workerd: an integer beyond 2^53 reads as the nearest number (node:sqlite would throw instead).
      stmt.setReadBigInts(true);
      const rows: SqlValue[][] = [];
      const size = resultSize('query result', 'select fewer rows or columns (LIMIT/OFFSET)');
      for (const row of stmt.iterate(...bindings) as unknown as Iterable<SqlValue[]>) {
        for (let i = 0; i < row.length; i++) if (typeof row[i] === 'bigint') row[i] = Number(row[i]);
        size.add(row);
        rows.push(row);
      }
      return { columnNames: columns, rows, rowsRead: previous.rowsRead + rows.length, rowsWritten: previous.rowsWritten };
    }
    const info = stmt.run(...bindings);
    return { columnNames: [], rows: [], rowsRead: previous.rowsRead, rowsWritten: previous.rowsWritten + Number(info.changes) };
  }

  #internalRun<T>(fn: () => T): T {
    const was = this.#internal;
    this.#internal = true;
    try {
      return fn();
    } finally {
      this.#internal = was;
    }
  }

  #applyQuota(): void {
    const pageSize = (this.#db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
    this.#db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(this.#quotaBytes / pageSize))}`);
  }

  #authorize(action: number, a: string | null, b: string | null): number {
    if (this.#internal) return C.SQLITE_OK;
    const deny = (why: string) => {
      this.#denied = why;
      return C.SQLITE_DENY;
    };
    switch (action) {
      case C.SQLITE_ATTACH:
      case C.SQLITE_DETACH:
        // VACUUM (INTO a file) reaches the authorizer only as the ATTACH of its target, once it runs.
        return deny('ATTACH, DETACH and VACUUM are not allowed');
      case C.SQLITE_TRANSACTION:
      case C.SQLITE_SAVEPOINT:
        return deny('transactions are not allowed in exec(); use transactionSync()');
      case C.SQLITE_CREATE_VTABLE:
      case C.SQLITE_DROP_VTABLE:
        return deny('virtual tables are not allowed');
      case C.SQLITE_PRAGMA: {
        const name = (a ?? '').toLowerCase();
        if (!SAFE_PRAGMAS.has(name)) return deny(`PRAGMA ${name} is not allowed`);
        return C.SQLITE_OK;
      }
      case C.SQLITE_FUNCTION:
        if ((b ?? '').toLowerCase() === 'load_extension') return deny('load_extension is not allowed');
        return C.SQLITE_OK;
      case C.SQLITE_INSERT:
      case C.SQLITE_UPDATE:
      case C.SQLITE_DELETE: {
        const table = (a ?? '').toLowerCase();
        if (table === KV_TABLE.toLowerCase()) return deny(`${KV_TABLE} is reserved for the KV API`);
        if (table.startsWith('sqlite_') && !SCHEMA_TABLES.has(table)) return deny(`writing ${table} is not allowed`);
        return C.SQLITE_OK;
      }
      case C.SQLITE_DROP_TABLE:
      case C.SQLITE_ALTER_TABLE:
        if ((a ?? '').toLowerCase() === KV_TABLE.toLowerCase() || (b ?? '').toLowerCase() === KV_TABLE.toLowerCase())
          return deny(`${KV_TABLE} is reserved for the KV API`);
        return C.SQLITE_OK;
      default:
        return C.SQLITE_OK;
    }
  }

  #explain(e: unknown): SqlError {
    const msg = (e as Error)?.message ?? String(e);
    if (this.#denied) return new SqlError(`not authorized: ${this.#denied}`, true);
    if (/database or disk is full/i.test(msg))
      return new SqlError(`database quota of ${this.#quotaBytes} bytes exceeded; nothing of this statement was written`, true);
    return new SqlError(msg.replace(/^Error: /, ''));
  }

  /** Bytes on disk (database + WAL), for the quota report. */
  fileBytes(): number {
    let n = 0;
    for (const f of [this.#file, `${this.#file}-wal`]) {
      try {
        n += statSync(f).size;
      } catch {
        // absent
      }
    }
    return n;
  }
}

/** Counts a result's size as RPC will encode it (JSON text, bytes as base64) and refuses it past LIMITS.resultBytes. */
export function resultSize(what: string, advice: string): { add(values: SqlValue[]): void } {
  let bytes = 0;
  return {
    add(values) {
      for (const v of values) {
        bytes += 8 + (typeof v === 'string' ? Buffer.byteLength(JSON.stringify(v)) : v instanceof Uint8Array ? Math.ceil(v.byteLength / 3) * 4 : 16);
      }
      if (bytes > LIMITS.resultBytes) throw new SqlError(`${what} is larger than ${LIMITS.resultBytes / (1024 * 1024)} MiB; ${advice}`);
    },
  };
}

/**
 * Split a query into statements at top-level semicolons, honouring quotes and comments.
 * Hand-written: node:sqlite offers no "prepare the next statement and tell me the tail" API.
 */
export function splitStatements(query: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  while (i < query.length) {
    const c = query[i]!;
    if (c === "'" || c === '"' || c === '`') {
      const end = query.indexOf(c, i + 1);
      i = end < 0 ? query.length : end + 1;
      // a doubled quote inside a string is the same quote again
      while (i < query.length && query[i] === c) i = query.indexOf(c, i + 1) + 1 || query.length;
      continue;
    }
    if (c === '[') {
      const end = query.indexOf(']', i + 1);
      i = end < 0 ? query.length : end + 1;
      continue;
    }
    if (c === '-' && query[i + 1] === '-') {
      const end = query.indexOf('\n', i);
      i = end < 0 ? query.length : end + 1;
      continue;
    }
    if (c === '/' && query[i + 1] === '*') {
      const end = query.indexOf('*/', i + 2);
      i = end < 0 ? query.length : end + 2;
      continue;
    }
    if (c === ';') {
      out.push(query.slice(start, i));
      start = i + 1;
    }
    i++;
  }
  out.push(query.slice(start));
  return out.map((s) => s.trim()).filter((s) => s.length > 0 && !/^(--[^\n]*\n?|\/\*[\s\S]*?\*\/|\s)*$/.test(s));
}
