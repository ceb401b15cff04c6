/**
 * The code store: workers, their immutable content-addressed versions, code keys and routes, in one
 * SQLite database (WAL, synchronous=FULL: a deploy that was acknowledged survives kill -9).
 * A code key is 32 random bytes. Lookups go through its SHA-256 (`code_keys`); the current key is
 * also kept with its worker so routes can be re-sent to ingress after a restart.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import type { Binding, Limits, WorkerBundle, WorkerModule } from '../../schemas/worker.ts';
import type { Route } from '../../schemas/routes.ts';

export interface WorkerRecord {
  id: string;
  tenant: string;
  name: string;
  cordon: string;
  version: string;
  codeKey: string;
  routes: string[];
}

export interface VersionInput {
  tenant: string;
  name: string;
  cordon: string;
  mainModule: string;
  modules: WorkerModule[];
  limits: Limits;
  vars: Record<string, string>;
  bindings: Binding[];
  routes: string[];
}

export class RouteConflictError extends Error {
  constructor(pattern: string) {
    super(`route ${pattern} is already served by another tenant's worker`);
    this.name = 'RouteConflictError';
  }
}

export class UnknownVersionError extends Error {
  constructor(id: string, version: string) {
    super(`worker ${id} has no version ${version}`);
    this.name = 'UnknownVersionError';
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class CodeStore {
  readonly #db: Database.Database;

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS workers (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, cordon TEXT NOT NULL,
        version TEXT NOT NULL, code_key TEXT NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS versions (
        worker_id TEXT NOT NULL, version TEXT NOT NULL, bundle TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (worker_id, version));
      CREATE TABLE IF NOT EXISTS code_keys (
        key_hash TEXT PRIMARY KEY, worker_id TEXT NOT NULL, version TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS routes (pattern TEXT PRIMARY KEY, worker_id TEXT NOT NULL);
    `);
  }

  close(): void {
    this.#db.close();
  }

  /** Store a version (content-addressed: the same code and settings give the same version), make it current, issue a fresh code key. */
  deploy(input: VersionInput): WorkerRecord {
    const id = `${input.tenant}/${input.name}`;
    const bundle = JSON.stringify({ mainModule: input.mainModule, modules: input.modules, limits: input.limits, vars: input.vars, bindings: input.bindings });
    const version = sha256(bundle);
    const codeKey = randomBytes(32).toString('base64url');
    const now = Date.now();
    const tx = this.#db.transaction(() => {
      for (const pattern of input.routes) {
        const owner = this.#db.prepare('SELECT worker_id FROM routes WHERE pattern = ?').pluck().get(pattern) as string | undefined;
        if (owner && owner.split('/')[0] !== input.tenant) throw new RouteConflictError(pattern);
      }
      this.#db.prepare('INSERT OR IGNORE INTO versions (worker_id, version, bundle, created_at) VALUES (?, ?, ?, ?)').run(id, version, bundle, now);
      // Keys rotate on every deploy: the previous key stops working at once.
      this.#db.prepare('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#db.prepare('INSERT INTO code_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), id, version);
      this.#db
        .prepare(
          `INSERT INTO workers (id, tenant, name, cordon, version, code_key, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET cordon = excluded.cordon, version = excluded.version, code_key = excluded.code_key, updated_at = excluded.updated_at`,
        )
        .run(id, input.tenant, input.name, input.cordon, version, codeKey, now);
      for (const pattern of input.routes) this.#db.prepare('INSERT OR REPLACE INTO routes (pattern, worker_id) VALUES (?, ?)').run(pattern, id);
    });
    tx();
    return this.worker(id)!;
  }

  /** Every stored version of a worker, newest first. */
  versions(id: string): { version: string; createdAt: string; current: boolean }[] {
    const current = this.worker(id)?.version;
    const rows = this.#db.prepare('SELECT version, created_at FROM versions WHERE worker_id = ? ORDER BY created_at DESC, rowid DESC').all(id) as { version: string; created_at: number }[];
    return rows.map((r) => ({ version: r.version, createdAt: new Date(r.created_at).toISOString(), current: r.version === current }));
  }

  /** Make an earlier version current again; like a deploy, it issues a fresh code key. */
  rollback(id: string, version: string): WorkerRecord {
    const exists = this.#db.prepare('SELECT 1 FROM versions WHERE worker_id = ? AND version = ?').get(id, version);
    if (!exists) throw new UnknownVersionError(id, version);
    const codeKey = randomBytes(32).toString('base64url');
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#db.prepare('INSERT INTO code_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), id, version);
      this.#db.prepare('UPDATE workers SET version = ?, code_key = ?, updated_at = ? WHERE id = ?').run(version, codeKey, Date.now(), id);
    })();
    return this.worker(id)!;
  }

  /** Remove a worker: its versions, keys and routes. (Its storage and directories stay on disk.) */
  delete(id: string): boolean {
    return this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#db.prepare('DELETE FROM routes WHERE worker_id = ?').run(id);
      this.#db.prepare('DELETE FROM versions WHERE worker_id = ?').run(id);
      return this.#db.prepare('DELETE FROM workers WHERE id = ?').run(id).changes === 1;
    })();
  }

  worker(id: string): WorkerRecord | undefined {
    const row = this.#db.prepare('SELECT id, tenant, name, cordon, version, code_key AS codeKey FROM workers WHERE id = ?').get(id) as
      | Omit<WorkerRecord, 'routes'>
      | undefined;
    if (!row) return undefined;
    const routes = this.#db.prepare('SELECT pattern FROM routes WHERE worker_id = ? ORDER BY pattern').pluck().all(id) as string[];
    return { ...row, routes };
  }

  workers(tenant?: string): WorkerRecord[] {
    const ids = (
      tenant
        ? this.#db.prepare('SELECT id FROM workers WHERE tenant = ? ORDER BY id').pluck().all(tenant)
        : this.#db.prepare('SELECT id FROM workers ORDER BY id').pluck().all()
    ) as string[];
    return ids.map((id) => this.worker(id)!);
  }

  /** The bundle a code key unlocks, or undefined for a key that is unknown or rotated away. */
  bundleForKey(codeKey: string): { bundle: WorkerBundle; cordon: string } | undefined {
    const row = this.#db
      .prepare(
        `SELECT k.worker_id AS workerId, k.version, v.bundle, w.cordon FROM code_keys k
         JOIN versions v ON v.worker_id = k.worker_id AND v.version = k.version
         JOIN workers w ON w.id = k.worker_id WHERE k.key_hash = ?`,
      )
      .get(sha256(codeKey)) as { workerId: string; version: string; bundle: string; cordon: string } | undefined;
    if (!row) return undefined;
    const stored = JSON.parse(row.bundle) as Omit<WorkerBundle, 'workerId' | 'version'>;
    return { bundle: { workerId: row.workerId, version: row.version, ...stored, bindings: stored.bindings ?? [] }, cordon: row.cordon };
  }

  routes(): Route[] {
    const rows = this.#db
      .prepare('SELECT r.pattern, w.id AS workerId, w.version, w.code_key AS codeKey, w.cordon FROM routes r JOIN workers w ON w.id = r.worker_id ORDER BY r.pattern')
      .all() as { pattern: string; workerId: string; version: string; codeKey: string; cordon: string }[];
    return rows.map((r) => ({ pattern: r.pattern, cordon: r.cordon, target: { workerId: r.workerId, version: r.version, codeKey: r.codeKey } }));
  }
}
