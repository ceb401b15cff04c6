/**
 * The supervisor's index of Durable Objects (`objects.db`): every object ever called, with its name if
 * it has one, its fencing counter and its alarm; and each worker's count of objects created. Each
 * object's data is in a database of its own (Grants.objectDatabase); this file only indexes them, so
 * `cordon objects list` and the alarm scheduler need no tenant database opened. `synchronous=FULL`:
 * a fence handed out, or an alarm set, is on disk before anyone sees it.
 */
import Database from 'better-sqlite3';

export interface ObjectRow {
  workerId: string;
  className: string;
  id: string;
  name: string | null;
  createdAt: number;
  alarm: number | null;
}

export class ObjectRegistry {
  readonly #db: Database.Database;
  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS objects (
        worker_id TEXT NOT NULL, class TEXT NOT NULL, id TEXT NOT NULL, name TEXT,
        created_at INTEGER NOT NULL, fence INTEGER NOT NULL DEFAULT 0,
        alarm INTEGER, alarm_retries INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (worker_id, class, id)) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS objects_alarm ON objects (alarm) WHERE alarm IS NOT NULL;
      CREATE TABLE IF NOT EXISTS object_counts (worker_id TEXT PRIMARY KEY, created INTEGER NOT NULL) WITHOUT ROWID;`);
  }

  /**
   * The next fencing token of an object, recorded before it is handed out (so a restarted supervisor
   * never hands out one again); the object is indexed on its first grant. `created`: it was new.
   */
  grant(workerId: string, className: string, id: string): { fence: number; created: boolean } {
    return this.#db.transaction(() => {
      const created =
        this.#db.prepare('INSERT OR IGNORE INTO objects (worker_id, class, id, created_at) VALUES (?, ?, ?, ?)').run(workerId, className, id, Date.now())
          .changes > 0;
      if (created)
        this.#db
          .prepare('INSERT INTO object_counts (worker_id, created) VALUES (?, 1) ON CONFLICT(worker_id) DO UPDATE SET created = created + 1')
          .run(workerId);
      const fence = this.#db
        .prepare('UPDATE objects SET fence = fence + 1 WHERE worker_id = ? AND class = ? AND id = ? RETURNING fence')
        .pluck()
        .get(workerId, className, id) as number;
      return { fence, created };
    })();
  }

  /** The name an object was made from (idFromName), for listing. */
  name(workerId: string, className: string, id: string, name: string): void {
    this.#db.prepare('UPDATE objects SET name = ? WHERE worker_id = ? AND class = ? AND id = ? AND name IS NULL').run(name, workerId, className, id);
  }

  list(workerId: string, limit = 1000, after = ''): ObjectRow[] {
    return this.#db
      .prepare(
        `SELECT worker_id AS workerId, class AS className, id, name, created_at AS createdAt, alarm FROM objects
          WHERE worker_id = ? AND (class || ':' || id) > ? ORDER BY class, id LIMIT ?`,
      )
      .all(workerId, after, limit) as ObjectRow[];
  }

  /** Objects created by a worker since it was first deployed (deletions do not lower it). */
  created(workerId: string): number {
    return (this.#db.prepare('SELECT created FROM object_counts WHERE worker_id = ?').pluck().get(workerId) as number | undefined) ?? 0;
  }

  exists(workerId: string, className: string, id: string): boolean {
    return this.#db.prepare('SELECT 1 FROM objects WHERE worker_id = ? AND class = ? AND id = ?').get(workerId, className, id) !== undefined;
  }

  delete(workerId: string, className: string, id: string): boolean {
    return this.#db.prepare('DELETE FROM objects WHERE worker_id = ? AND class = ? AND id = ?').run(workerId, className, id).changes > 0;
  }

  getAlarm(workerId: string, className: string, id: string): number | null {
    return (
      (this.#db.prepare('SELECT alarm FROM objects WHERE worker_id = ? AND class = ? AND id = ?').pluck().get(workerId, className, id) as number | null) ?? null
    );
  }

  /** Set (or, with null, clear) an object's alarm; a new time starts its retries afresh. */
  setAlarm(workerId: string, className: string, id: string, time: number | null): void {
    this.#db.prepare('UPDATE objects SET alarm = ?, alarm_retries = 0 WHERE worker_id = ? AND class = ? AND id = ?').run(time, workerId, className, id);
  }

  /** After a failed alarm(): the next attempt's time and the retries so far. */
  retryAlarm(workerId: string, className: string, id: string, time: number, retries: number): void {
    this.#db
      .prepare('UPDATE objects SET alarm = ?, alarm_retries = ? WHERE worker_id = ? AND class = ? AND id = ?')
      .run(time, retries, workerId, className, id);
  }

  /** Alarms due by `now`, earliest first. */
  due(now: number, limit: number): (ObjectRow & { retries: number })[] {
    return this.#db
      .prepare(
        `SELECT worker_id AS workerId, class AS className, id, name, created_at AS createdAt, alarm, alarm_retries AS retries FROM objects
          WHERE alarm IS NOT NULL AND alarm <= ? ORDER BY alarm LIMIT ?`,
      )
      .all(now, limit) as (ObjectRow & { retries: number })[];
  }

  /** The earliest alarm set, if any. */
  nextAlarm(): number | undefined {
    return (this.#db.prepare('SELECT MIN(alarm) FROM objects WHERE alarm IS NOT NULL').pluck().get() as number | null) ?? undefined;
  }

  close(): void {
    this.#db.close();
  }
}
