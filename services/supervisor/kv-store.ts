/**
 * A KV namespace's SQLite file, opened in the SQL processes (sql-process.ts). One row per key, with
 * its expiration (seconds since the epoch, as KV counts) and metadata (JSON text). An expired row is
 * never returned: every read filters on the time the supervisor sends; expired rows are deleted a
 * few at a time on writes. Arguments were checked by the capability (kv.ts) before they got here.
 */
import { ResourceDb } from './resource-db.ts';
import { SqlError } from './sql-storage.ts';

/** A value as read: bytes, metadata JSON, expiration (s). */
export type KvEntry = [Uint8Array | null, string | null, number | null];
/** A key as listed: name, expiration (s), metadata JSON. */
export type KvListedKey = [string, number | null, string | null];

/** Expired rows deleted per write, so cleaning never makes one write slow. */
const PURGE_PER_WRITE = 64;

export class KvStore extends ResourceDb {
  constructor(file: string, quota: number) {
    super(file, quota, 'CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expiration INTEGER, metadata TEXT) WITHOUT ROWID');
  }

  /** Each key's live entry (or nulls); `maxBytes` bounds the values together, as KV bounds a bulk get. */
  get(keys: string[], now: number, maxBytes: number): KvEntry[] {
    const stmt = this.stmt('SELECT value, metadata, expiration FROM kv WHERE key = ? AND (expiration IS NULL OR expiration > ?)');
    let total = 0;
    return keys.map((key) => {
      const row = stmt.get(key, now) as { value: Uint8Array; metadata: string | null; expiration: number | null } | undefined;
      if (!row) return [null, null, null];
      total += row.value.byteLength;
      if (total > maxBytes) throw new SqlError(`KV GET failed: 413 Total size of request exceeds the limit of ${maxBytes / 1024 / 1024}MB`);
      return [row.value, row.metadata, row.expiration];
    });
  }

  put(key: string, value: Uint8Array, expiration: number | null, metadata: string | null, now: number): void {
    try {
      this.stmt('DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expiration <= ? LIMIT ?)').run(now, PURGE_PER_WRITE);
      this.stmt(
        'INSERT INTO kv (key, value, expiration, metadata) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expiration = excluded.expiration, metadata = excluded.metadata',
      ).run(key, value, expiration, metadata);
    } catch (e) {
      if (/database or disk is full/i.test((e as Error).message))
        throw new SqlError(`KV PUT failed: 413 the namespace's storage quota of ${this.quota} bytes is used up; delete keys first`, true);
      throw e;
    }
  }

  delete(key: string): void {
    this.stmt('DELETE FROM kv WHERE key = ?').run(key);
  }

  /** Keys after `cursor` (the last key of the previous page) starting with `prefix`, in order. */
  list(prefix: string, limit: number, cursor: string | null, now: number): { keys: KvListedKey[]; cursor: string | null } {
    // Range scan rather than LIKE: a prefix may hold % or _. U+10FFFF sorts after every key's next character.
    const from = cursor !== null && cursor >= prefix ? cursor : prefix;
    const rows = this.stmt(
      `SELECT key, expiration, metadata FROM kv WHERE key ${cursor !== null && cursor >= prefix ? '>' : '>='} ? AND key < ? AND (expiration IS NULL OR expiration > ?) ORDER BY key LIMIT ?`,
    ).all(from, `${prefix}\u{10FFFF}`, now, limit + 1) as { key: string; expiration: number | null; metadata: string | null }[];
    const more = rows.length > limit;
    const page = rows.slice(0, limit);
    return { keys: page.map((r) => [r.key, r.expiration, r.metadata]), cursor: more ? page.at(-1)!.key : null };
  }
}

export const kvCalls: Record<string, (db: KvStore, args: any[]) => unknown> = {
  get: (db, [keys, now, maxBytes]) => db.get(keys, now, maxBytes),
  put: (db, [key, value, expiration, metadata, now]) => db.put(key, value, expiration, metadata, now),
  delete: (db, [key]) => db.delete(key),
  list: (db, [prefix, limit, cursor, now]) => db.list(prefix, limit, cursor, now),
};
