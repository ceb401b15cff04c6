/**
 * Static asset bytes (docs/static-assets.md), beside the code store in its database: per worker,
 * content-addressed by SHA-256, each file sealed in parts of 4 MiB with a key of the worker's own
 * (AES-256-GCM, wrapped under the master key as worker keys are), every part bound to its worker, hash
 * and index, so a part moved to another worker, file or place does not open. A version names its
 * assets in its manifest (inside the sealed bundle); a file stored once serves every version that
 * lists it, so a rollback finds its bytes. A file is marked listed when a version naming it is stored,
 * and versions are only ever removed with their worker, so a listed file is kept until then; uploads
 * no version lists are collected once they are an hour old. What a worker stores is bounded by a quota,
 * counted as files come and go (no scan per upload).
 */
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { CordonError } from '../../lib/errors.ts';
import { ASSET_LIMITS, partCount } from '../../schemas/assets.ts';
import { newWorkerKey, open, seal, SealError, unwrapWorkerKey } from './sealing.ts';

/** How long an upload no version lists is kept (a deploy uploads first, then names its files). */
const UNLISTED_GRACE_MS = 60 * 60 * 1000;

export class AssetStore {
  readonly #db: Database.Database;
  readonly #sql: (sql: string) => Database.Statement;
  readonly #wrapKey: Buffer;
  readonly #quotaBytes: number;

  constructor(db: Database.Database, sql: (sql: string) => Database.Statement, wrapKey: Buffer, quotaBytes: number) {
    this.#db = db;
    this.#sql = sql;
    this.#wrapKey = wrapKey;
    this.#quotaBytes = quotaBytes;
    db.exec(`
      CREATE TABLE IF NOT EXISTS asset_workers (worker_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, bytes INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE IF NOT EXISTS assets (
        worker_id TEXT NOT NULL, hash TEXT NOT NULL, size INTEGER NOT NULL, stored_at INTEGER NOT NULL, listed INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (worker_id, hash));
      CREATE TABLE IF NOT EXISTS asset_parts (
        worker_id TEXT NOT NULL, hash TEXT NOT NULL, part INTEGER NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (worker_id, hash, part));
    `);
  }

  #key(workerId: string, create: boolean): Buffer | undefined {
    let wrapped = this.#sql('SELECT wrapped FROM asset_workers WHERE worker_id = ?').pluck().get(workerId) as Buffer | undefined;
    if (!wrapped && create) {
      wrapped = newWorkerKey(this.#wrapKey, `assets:${workerId}`).wrapped;
      this.#sql('INSERT OR IGNORE INTO asset_workers (worker_id, wrapped) VALUES (?, ?)').run(workerId, wrapped);
      wrapped = this.#sql('SELECT wrapped FROM asset_workers WHERE worker_id = ?').pluck().get(workerId) as Buffer;
    }
    return wrapped && unwrapWorkerKey(this.#wrapKey, wrapped, `assets:${workerId}`);
  }

  /** Of `hashes`, those this worker has not stored (what a deploy must upload). */
  missing(workerId: string, hashes: string[]): string[] {
    const has = this.#sql('SELECT 1 FROM assets WHERE worker_id = ? AND hash = ?');
    return [...new Set(hashes)].filter((h) => !has.get(workerId, h));
  }

  /** Bytes this worker's assets hold, every version's together. */
  storedBytes(workerId: string): number {
    return (this.#sql('SELECT bytes FROM asset_workers WHERE worker_id = ?').pluck().get(workerId) as number | undefined) ?? 0;
  }

  /** Store one file under its hash (checked here); a file already stored is kept as it is. */
  put(workerId: string, hash: string, bytes: Buffer): void {
    if (bytes.length > ASSET_LIMITS.fileBytes)
      throw new CordonError(`an asset is ${bytes.length} bytes; the limit is ${ASSET_LIMITS.fileBytes} (25 MiB) per file`, { status: 413 });
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== hash) throw new CordonError(`the uploaded bytes hash to ${actual}, not ${hash}`, { status: 400 });
    if (!this.missing(workerId, [hash]).length) return;
    const used = this.storedBytes(workerId);
    if (used + bytes.length > this.#quotaBytes)
      throw new CordonError(
        `worker ${workerId} would store ${used + bytes.length} bytes of assets; the limit is ${this.#quotaBytes} (CORDON_ASSETS_QUOTA_MB), every version's files together`,
        { status: 413 },
      );
    const key = this.#key(workerId, true)!;
    const parts = partCount(bytes.length);
    this.#db.transaction(() => {
      for (let i = 0; i < parts; i++) {
        const chunk = bytes.subarray(i * ASSET_LIMITS.partBytes, (i + 1) * ASSET_LIMITS.partBytes);
        this.#sql('INSERT OR REPLACE INTO asset_parts (worker_id, hash, part, sealed) VALUES (?, ?, ?, ?)').run(
          workerId,
          hash,
          i,
          seal(key, chunk, `${workerId}\0${hash}\0${i}`),
        );
      }
      if (
        this.#sql('INSERT OR IGNORE INTO assets (worker_id, hash, size, stored_at) VALUES (?, ?, ?, ?)').run(workerId, hash, bytes.length, Date.now()).changes
      )
        this.#sql('UPDATE asset_workers SET bytes = bytes + ? WHERE worker_id = ?').run(bytes.length, workerId);
    })();
  }

  /** Part `index` of a stored file, opened (a part that fails to open is a 500: the store was tampered with). */
  part(workerId: string, hash: string, index: number): Uint8Array {
    const sealed = this.#sql('SELECT sealed FROM asset_parts WHERE worker_id = ? AND hash = ? AND part = ?').pluck().get(workerId, hash, index) as
      | Buffer
      | undefined;
    const key = sealed && this.#key(workerId, false);
    if (!sealed || !key) throw new CordonError(`asset ${hash} of ${workerId} has no part ${index}`, { status: 404 });
    try {
      return new Uint8Array(open(key, sealed, `${workerId}\0${hash}\0${index}`));
    } catch (e) {
      if (e instanceof SealError) throw new CordonError(`stored asset ${hash} of ${workerId} failed its integrity check: ${e.message}`);
      throw e;
    }
  }

  /** Files a stored version lists: kept from now on (called in the code store's deploy transaction). */
  markListed(workerId: string, hashes: string[]): void {
    const mark = this.#sql('UPDATE assets SET listed = 1 WHERE worker_id = ? AND hash = ? AND listed = 0');
    for (const h of new Set(hashes)) mark.run(workerId, h);
  }

  /** Drop the uploads no version lists that are more than an hour old. */
  collect(workerId: string, now = Date.now()): void {
    const stale = this.#sql('SELECT hash, size FROM assets WHERE worker_id = ? AND listed = 0 AND stored_at < ?').all(workerId, now - UNLISTED_GRACE_MS) as {
      hash: string;
      size: number;
    }[];
    if (!stale.length) return;
    this.#db.transaction(() => {
      for (const { hash, size } of stale) {
        this.#sql('DELETE FROM asset_parts WHERE worker_id = ? AND hash = ?').run(workerId, hash);
        this.#sql('DELETE FROM assets WHERE worker_id = ? AND hash = ?').run(workerId, hash);
        this.#sql('UPDATE asset_workers SET bytes = bytes - ? WHERE worker_id = ?').run(size, workerId);
      }
    })();
  }

  /** Everything of a deleted worker (called inside the code store's delete transaction). */
  deleteWorker(workerId: string): void {
    this.#sql('DELETE FROM asset_parts WHERE worker_id = ?').run(workerId);
    this.#sql('DELETE FROM assets WHERE worker_id = ?').run(workerId);
    this.#sql('DELETE FROM asset_workers WHERE worker_id = ?').run(workerId);
  }
}
