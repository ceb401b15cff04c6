/**
 * What the SQLite file of one tenant resource kept by the SQL processes (a KV namespace, a queue) has
 * in common: opened defensive and without extensions, durable (WAL with synchronous=FULL, so a row is
 * on disk before its write is answered), capped at its quota by page count, statements prepared once.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';

export abstract class ResourceDb {
  protected readonly db: DatabaseSync;
  protected readonly quota: number;
  readonly #cache = new Map<string, StatementSync>();
  /** The SQL processes ask every open file this; a resource runs each call in its own transaction. */
  readonly inTransaction = false;

  /** `schema` is the resource's CREATE … IF NOT EXISTS statements. */
  constructor(file: string, quota: number, schema: string) {
    this.quota = quota;
    this.db = new DatabaseSync(file, { defensive: true, allowExtension: false, timeout: 5000 });
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;');
    this.db.exec(schema);
    const pageSize = (this.db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
    this.db.exec(`PRAGMA max_page_count = ${Math.max(8, Math.floor(quota / pageSize))}`);
  }

  close(): void {
    this.db.close();
  }

  protected stmt(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) this.#cache.set(sql, (s = this.db.prepare(sql)));
    return s;
  }
}
