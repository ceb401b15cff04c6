/**
 * One SQLite database per tenant for its workflow instances (WAL, synchronous=FULL: a commit is on
 * disk before anyone is told). Writes are group-committed: every write asked for in the same turn of
 * the event loop goes into one transaction, one fsync for all of them, and each writer is answered
 * only after that commit. Each write runs in its own savepoint, so one failing write fails alone.
 * The statements over these tables are instance-store.ts.
 */
import Database from 'better-sqlite3';
import { Statements } from '../statements.ts';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS workflows (name TEXT PRIMARY KEY, worker TEXT NOT NULL, class_name TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS instances (
    workflow TEXT NOT NULL, id TEXT NOT NULL, worker TEXT NOT NULL, version TEXT NOT NULL, class_name TEXT NOT NULL,
    status TEXT NOT NULL, params TEXT, output TEXT, error_name TEXT, error_message TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, wake_at INTEGER,
    PRIMARY KEY (workflow, id));
  CREATE INDEX IF NOT EXISTS instances_status ON instances (status, workflow);
  CREATE TABLE IF NOT EXISTS steps (
    workflow TEXT NOT NULL, instance TEXT NOT NULL, name TEXT NOT NULL, count INTEGER NOT NULL, type TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, value TEXT, error_name TEXT, error_message TEXT,
    started_at INTEGER, ended_at INTEGER, wake_at INTEGER, event_type TEXT, seq INTEGER NOT NULL,
    PRIMARY KEY (workflow, instance, name, count));
  CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, workflow TEXT NOT NULL, instance TEXT NOT NULL, type TEXT NOT NULL,
    payload TEXT, sent_at INTEGER NOT NULL, consumed INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX IF NOT EXISTS events_waiting ON events (workflow, instance, type, consumed);
`;

export class TenantDb {
  readonly #db: Database.Database;
  readonly #statements: Statements;
  #queue: { fn: () => void; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #scheduled = false;
  readonly #group: (run: () => void) => void;

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
    this.#statements = new Statements(this.#db);
    this.#group = this.#db.transaction((run: () => void) => run());
  }

  /** A prepared statement, prepared once (preparing is most of the cost of a small query). */
  prepare(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  /** Run `fn` (synchronous SQLite writes) in the next group commit; resolves once it is durable. */
  write(fn: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ fn, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const failed = new Map<number, unknown>();
    try {
      this.#group(() => {
        batch.forEach((w, i) => {
          this.prepare('SAVEPOINT write').run();
          try {
            w.fn();
            this.prepare('RELEASE write').run();
          } catch (e) {
            this.prepare('ROLLBACK TO write').run();
            this.prepare('RELEASE write').run();
            failed.set(i, e);
          }
        });
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
      return;
    }
    batch.forEach((w, i) => (failed.has(i) ? w.reject(failed.get(i)) : w.resolve()));
  }

  close(): void {
    this.#db.close();
  }
}
