/**
 * A queue's SQLite file, opened in the SQL processes (sql-process.ts). A message is a row from the
 * moment `send` is answered (WAL with synchronous=FULL: the row is on disk before the answer leaves)
 * until its consumer acknowledges it, so a `kill -9` of the supervisor or the sandbox loses nothing
 * sent: a message claimed for a batch carries a lease, and a lease that ends without an outcome
 * (the delivery was lost with a process) makes it visible again — at-least-once, as Queues delivers.
 */
import { ResourceDb } from './resource-db.ts';
import type { QueueContentType } from '../../schemas/queues.ts';
import { SqlError } from './sql-storage.ts';

/** A message as sent: id, timestamp (ms), content type, body, visible from (ms). */
export type StoredSend = [string, number, QueueContentType, Uint8Array, number];

export interface ClaimedMessage {
  id: string;
  timestamp: number;
  contentType: QueueContentType;
  body: Uint8Array;
  /** Deliveries so far, this one included (1 on the first). */
  attempts: number;
}

export interface Backlog {
  /** Messages visible now and not claimed. */
  ready: number;
  /** When the oldest of those became visible (ms), or null. */
  oldest: number | null;
  /** When the next message not visible yet becomes visible (ms), or null. */
  next: number | null;
}

export class QueueStore extends ResourceDb {
  constructor(file: string, quota: number) {
    super(
      file,
      quota,
      `CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      timestamp INTEGER NOT NULL,
      content_type TEXT NOT NULL,
      body BLOB NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      visible_at INTEGER NOT NULL,
      lease_until INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS messages_visible ON messages (visible_at, seq);`,
    );
  }

  #tx<T>(fn: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const out = fn();
      this.db.exec('COMMIT');
      return out;
    } catch (e) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw e;
    }
  }

  /** Store messages, all or none (a message already stored under its id — a dead-letter copy sent again — is kept once). */
  send(messages: StoredSend[]): void {
    const insert = this.stmt('INSERT OR IGNORE INTO messages (id, timestamp, content_type, body, visible_at) VALUES (?, ?, ?, ?, ?)');
    try {
      this.#tx(() => {
        for (const [id, timestamp, contentType, body, visibleAt] of messages) insert.run(id, timestamp, contentType, body, visibleAt);
      });
    } catch (e) {
      if (/database or disk is full/i.test((e as Error).message))
        throw new SqlError(
          `Queue send failed: the queue's backlog is at its quota of ${this.quota} bytes; nothing was sent (the consumer must catch up)`,
          true,
        );
      throw e;
    }
  }

  /** What is waiting, for the dispatcher to decide whether a batch is due. */
  backlog(now: number): Backlog {
    const ready = this.stmt('SELECT count(*) AS n, min(visible_at) AS oldest FROM messages WHERE visible_at <= ? AND lease_until <= ?').get(now, now) as {
      n: number;
      oldest: number | null;
    };
    const next = this.stmt('SELECT min(visible_at) AS t FROM messages WHERE visible_at > ?').get(now) as { t: number | null };
    return { ready: Number(ready.n), oldest: ready.oldest, next: next.t };
  }

  /**
   * Lease up to `max` visible messages, and at most `maxBytes` of bodies (at least one message), until
   * `leaseUntil`, oldest first, counting the delivery. The byte bound keeps a batch within one message
   * of the mesh: 100 messages of 128 KB would not fit, and the consumer's sandbox session is shared.
   */
  claim(now: number, max: number, leaseUntil: number, maxBytes: number): ClaimedMessage[] {
    return this.#tx(() => {
      const candidates = this.stmt(
        'SELECT seq, length(body) AS bytes FROM messages WHERE visible_at <= ? AND lease_until <= ? ORDER BY visible_at, seq LIMIT ?',
      ).all(now, now, max) as { seq: number; bytes: number }[];
      const take: number[] = [];
      let total = 0;
      for (const c of candidates) {
        if (take.length > 0 && total + c.bytes > maxBytes) break;
        total += c.bytes;
        take.push(c.seq);
      }
      const lease = this.stmt(
        'UPDATE messages SET attempts = attempts + 1, lease_until = ? WHERE seq = ? RETURNING id, timestamp, content_type, body, attempts',
      );
      return take.map((seq) => {
        const r = lease.get(leaseUntil, seq) as { id: string; timestamp: number; content_type: QueueContentType; body: Uint8Array; attempts: number };
        return { id: r.id, timestamp: r.timestamp, contentType: r.content_type, body: r.body, attempts: r.attempts };
      });
    });
  }

  /** A batch's outcome: `done` deleted (acknowledged, or handed to the dead-letter queue), `retry` visible again at its time. */
  settle(done: string[], retry: [string, number][]): void {
    this.#tx(() => {
      const del = this.stmt('DELETE FROM messages WHERE id = ?');
      for (const id of done) del.run(id);
      const again = this.stmt('UPDATE messages SET lease_until = 0, visible_at = ? WHERE id = ?');
      for (const [id, at] of retry) again.run(at, id);
    });
  }

  /** End every lease: after a supervisor restart no delivery it made can still answer. */
  release(): void {
    this.stmt('UPDATE messages SET lease_until = 0 WHERE lease_until > 0').run();
  }

  /** Messages stored, for operators and tests. */
  count(): number {
    return Number((this.stmt('SELECT count(*) AS n FROM messages').get() as { n: number }).n);
  }
}

export const queueCalls: Record<string, (db: QueueStore, args: any[]) => unknown> = {
  send: (db, [messages]) => db.send(messages),
  backlog: (db, [now]) => db.backlog(now),
  claim: (db, [now, max, leaseUntil, maxBytes]) => db.claim(now, max, leaseUntil, maxBytes),
  settle: (db, [done, retry]) => db.settle(done, retry),
  release: (db) => db.release(),
  count: (db) => db.count(),
};
