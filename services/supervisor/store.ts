/**
 * The code store: workers, their immutable content-addressed versions, code keys and routes, in one
 * SQLite database (WAL, synchronous=FULL: a deploy that was acknowledged survives kill -9).
 * A version is the SHA-256 of its bundle; the bundle is stored sealed with its worker's own key
 * (sealing.ts) and recorded in the tenant's git history (history.ts). Handing code out checks all
 * three: the sealed bytes are the blob the version's commit recorded, they open with the worker's key,
 * and what they open to hashes to the version.
 * A code key is 32 random bytes. Lookups go through its SHA-256 (`code_keys`); the current key is
 * also kept with its worker so routes can be re-sent to ingress after a restart.
 * Routes are kept in their normalised spelling, with the order they arrived in (ties go to the older);
 * host assignments sit beside them, so a deploy's route checks and its writes are one transaction.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { CordonError } from '../../lib/errors.ts';
import { open, seal, newWorkerKey, unwrapWorkerKey, SealError } from './sealing.ts';
import { blobOid, type History } from './history.ts';
import { Statements } from './statements.ts';
import type { Binding, EgressLists, Limits, VarValue, VersionSettings, WorkerBundle, WorkerModule } from '../../schemas/worker.ts';
import type { HostAssignment, RoutingTable } from '../../schemas/routes.ts';
import { normalizeHostPattern, normalizeRoutePattern } from '../../lib/routes.ts';
import { checkAssignment, checkRoutes, defaultRoutePattern, defaultRouting, type Deployer, type RoutedPattern } from './hosts.ts';
import type { WorkflowDecl } from '../../schemas/workflows.ts';
import type { QueueConsumerDecl } from '../../schemas/queues.ts';
import type { AssetManifest } from '../../schemas/assets.ts';
import { AssetStore } from './asset-store.ts';

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
  vars: Record<string, VarValue>;
  bindings: Binding[];
  origins: { origin: string; trusted: boolean }[];
  allowEval?: boolean;
  egress?: EgressLists;
  workflows?: WorkflowDecl[];
  crons?: string[];
  objectClasses?: string[];
  queueConsumers?: QueueConsumerDecl[];
  rpcCallers?: string[];
  loadedCordon?: string;
  /** Its static assets (every file already uploaded to `assets`). */
  assets?: AssetManifest;
  routes: string[];
  /** Whether the worker answers at its default route too (wrangler's `workers_dev`; on unless false). */
  workersDev?: boolean;
}

/** 500: the stored code is not what was stored, which is no caller's mistake. */
export class TamperedError extends CordonError {
  constructor(workerId: string, version: string, why: string) {
    super(`stored code of ${workerId} version ${version} failed its integrity check: ${why}`);
    this.name = 'TamperedError';
  }
}

export class UnknownVersionError extends CordonError {
  constructor(id: string, version: string) {
    super(`worker ${id} has no version ${version}`, { status: 404 });
    this.name = 'UnknownVersionError';
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * The SHA-256 of a worker's code alone (its modules and entry point, not its settings), so the same
 * code deployed under another name or with other vars or limits is recognisable (quarantine follows it).
 */
export function codeHash(mainModule: string, modules: WorkerModule[]): string {
  return sha256(JSON.stringify([mainModule, modules.map((m) => [m.name, m.type, m.content])]));
}

/** A version's assets as its history and settings show them: counted, not listed. */
function assetSummary(a: AssetManifest): NonNullable<VersionSettings['assets']> {
  return { files: a.files.length, bytes: a.files.reduce((n, f) => n + f.size, 0), routing: a.routing };
}

interface KeyRow {
  workerId: string;
  tenant: string;
  name: string;
  version: string;
  sealed: Buffer;
  commitOid: string;
  wrapped: Buffer;
  cordon: string;
}

export class CodeStore {
  readonly #db: Database.Database;
  /** Every query here, prepared once (workflow runs look workers up often). */
  readonly #sql: (sql: string) => Database.Statement;
  readonly #wrapKey: Buffer;
  readonly #history: History;
  /** Where every worker also answers (`<worker>.<tenant>.<domain>`); '' for no default routes. */
  readonly workersDomain: string;
  /** The bytes of the workers' static assets (a version's manifest names them). */
  readonly assets: AssetStore;

  constructor(file: string, wrapKey: Buffer, history: History, workersDomain = '', assetQuotaBytes = 1024 * 1024 * 1024) {
    this.#wrapKey = wrapKey;
    this.#history = history;
    this.workersDomain = workersDomain;
    this.#db = new Database(file);
    const statements = new Statements(this.#db);
    this.#sql = (sql) => statements.get(sql);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS workers (
        id TEXT PRIMARY KEY, tenant TEXT NOT NULL, name TEXT NOT NULL, cordon TEXT NOT NULL,
        version TEXT NOT NULL, code_key TEXT NOT NULL, wrapped_key BLOB NOT NULL, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS versions (
        worker_id TEXT NOT NULL, version TEXT NOT NULL, sealed BLOB NOT NULL, commit_oid TEXT NOT NULL, created_at INTEGER NOT NULL,
        PRIMARY KEY (worker_id, version));
      CREATE TABLE IF NOT EXISTS code_keys (
        key_hash TEXT PRIMARY KEY, worker_id TEXT NOT NULL, version TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS routes (pattern TEXT PRIMARY KEY, worker_id TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS hosts (host TEXT PRIMARY KEY, tenant TEXT NOT NULL, assigned_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS pinned_keys (key_hash TEXT PRIMARY KEY, worker_id TEXT NOT NULL, version TEXT NOT NULL);
      DELETE FROM pinned_keys;
    `);
    this.assets = new AssetStore(this.#db, this.#sql, wrapKey, assetQuotaBytes);
    // Arrival order settles ties between routes; a rowid would not survive VACUUM. Older stores lack it.
    if (!(this.#db.pragma('table_info(routes)') as { name: string }[]).some((c) => c.name === 'seq')) {
      this.#db.exec('ALTER TABLE routes ADD COLUMN seq INTEGER NOT NULL DEFAULT 0; UPDATE routes SET seq = rowid;');
    }
    // Like routes, a worker's setting rather than a version's: `workers_dev: false` takes it off its default route.
    if (!(this.#db.pragma('table_info(workers)') as { name: string }[]).some((c) => c.name === 'workers_dev')) {
      this.#db.exec('ALTER TABLE workers ADD COLUMN workers_dev INTEGER NOT NULL DEFAULT 1');
    }
  }

  readonly #pinned = new Map<string, string>();

  /**
   * A code key for one exact version (a workflow instance keeps running the version it was created
   * with, whatever is current). Not rotated by deploys; minted afresh by each supervisor process.
   */
  codeKeyForVersion(workerId: string, version: string): string | undefined {
    const k = `${workerId}@${version}`;
    const known = this.#pinned.get(k);
    if (known) return known;
    if (!this.#sql('SELECT 1 FROM versions v JOIN workers w ON w.id = v.worker_id WHERE v.worker_id = ? AND v.version = ?').get(workerId, version))
      return undefined;
    const codeKey = randomBytes(32).toString('base64url');
    this.#sql('INSERT INTO pinned_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), workerId, version);
    this.#pinned.set(k, codeKey);
    return codeKey;
  }

  close(): void {
    this.#db.close();
  }

  /**
   * Store a version (content-addressed: the same code and settings give the same version), record it
   * in the tenant's git history, make it current, and issue a fresh code key.
   */
  async deploy(input: VersionInput, deployer: Deployer): Promise<WorkerRecord> {
    const id = `${input.tenant}/${input.name}`;
    const routes = [...new Set(input.routes.map(normalizeRoutePattern))];
    const plain = JSON.stringify({
      mainModule: input.mainModule,
      modules: input.modules,
      limits: input.limits,
      vars: input.vars,
      bindings: input.bindings,
      origins: input.origins.filter((o) => o.trusted).map((o) => o.origin),
      allowEval: input.allowEval === true,
      egress: input.egress,
      ...(input.workflows?.length ? { workflows: input.workflows } : {}),
      ...(input.crons?.length ? { crons: input.crons } : {}),
      ...(input.objectClasses?.length ? { objectClasses: input.objectClasses } : {}),
      ...(input.queueConsumers?.length ? { queueConsumers: input.queueConsumers } : {}),
      ...(input.rpcCallers?.length ? { rpcCallers: input.rpcCallers } : {}),
      ...(input.loadedCordon ? { loadedCordon: input.loadedCordon } : {}),
      ...(input.assets ? { assets: input.assets } : {}),
    });
    const version = sha256(plain);
    this.#checkUploaded(id, input);
    checkRoutes(input.tenant, routes, deployer, this.hosts(), this.#routed(), this.workersDomain);
    const known = this.#sql('SELECT wrapped_key FROM workers WHERE id = ?').pluck().get(id) as Buffer | undefined;
    const wrapped = known ?? newWorkerKey(this.#wrapKey, id).wrapped;
    const key = unwrapWorkerKey(this.#wrapKey, wrapped, id);
    const stored = this.#sql('SELECT commit_oid FROM versions WHERE worker_id = ? AND version = ?').pluck().get(id, version) as string | undefined;
    let sealed: Buffer | undefined;
    let commit = stored;
    if (!commit) {
      sealed = seal(key, Buffer.from(plain), `${id}\0${version}`);
      const manifest = {
        worker: id,
        cordon: input.cordon,
        mainModule: input.mainModule,
        modules: input.modules.map((m) => ({ name: m.name, type: m.type, bytes: Buffer.byteLength(m.content), sha256: sha256(m.content) })),
        limits: input.limits,
        bindings: input.bindings,
        vars: Object.keys(input.vars),
        routes,
        origins: input.origins,
        workflows: input.workflows ?? [],
        crons: input.crons ?? [],
        ...(input.objectClasses?.length ? { objectClasses: input.objectClasses } : {}),
        queueConsumers: input.queueConsumers ?? [],
        rpcCallers: input.rpcCallers ?? [],
        ...(input.loadedCordon ? { loadedCordon: input.loadedCordon } : {}),
        ...(input.assets ? { assets: assetSummary(input.assets) } : {}),
      };
      commit = await this.#history.record(input.tenant, input.name, version, manifest, sealed, `deploy ${id} ${version.slice(0, 12)}`);
    }
    const codeKey = randomBytes(32).toString('base64url');
    const now = Date.now();
    this.#db.transaction(() => {
      // Again, inside the transaction: another deploy or assignment may have landed meanwhile.
      checkRoutes(input.tenant, routes, deployer, this.hosts(), this.#routed(), this.workersDomain);
      if (sealed)
        this.#sql('INSERT OR IGNORE INTO versions (worker_id, version, sealed, commit_oid, created_at) VALUES (?, ?, ?, ?, ?)').run(
          id,
          version,
          sealed,
          commit,
          now,
        );
      // Again, inside the transaction (an old upload may have been collected meanwhile); then its files
      // are kept from now on, whatever later versions list (a rollback needs them).
      this.#checkUploaded(id, input);
      if (input.assets)
        this.assets.markListed(
          id,
          input.assets.files.map((f) => f.hash),
        );
      // Keys rotate on every deploy: the previous key stops working at once.
      this.#sql('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#sql('INSERT INTO code_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), id, version);
      this.#sql(
        `INSERT INTO workers (id, tenant, name, cordon, version, code_key, wrapped_key, updated_at, workers_dev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(id) DO UPDATE SET cordon = excluded.cordon, version = excluded.version, code_key = excluded.code_key, updated_at = excluded.updated_at,
           workers_dev = excluded.workers_dev`,
      ).run(id, input.tenant, input.name, input.cordon, version, codeKey, wrapped, now, input.workersDev === false ? 0 : 1);
      // A pattern moving to another worker of the tenant keeps its place in the order.
      for (const pattern of routes) {
        this.#sql(
          'INSERT INTO routes (pattern, worker_id, seq) VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM routes)) ON CONFLICT(pattern) DO UPDATE SET worker_id = excluded.worker_id',
        ).run(pattern, id);
      }
    })();
    return this.worker(id)!;
  }

  /** Refuses a manifest naming files this worker has not uploaded. */
  #checkUploaded(id: string, input: VersionInput): void {
    if (!input.assets) return;
    const unsent = this.assets.missing(
      id,
      input.assets.files.map((f) => f.hash),
    );
    if (unsent.length)
      throw new CordonError(
        `${unsent.length} asset file(s) of the manifest were not uploaded (first: ${input.assets.files.find((f) => f.hash === unsent[0])!.path}); upload each with PUT /v1/workers/${input.tenant}/${input.name}/assets/<sha256> before deploying (cordon deploy does)`,
        { status: 400 },
      );
  }

  /** Every stored route that still parses, normalised (rows from before normalisation included), with its tenant. */
  #routed(): RoutedPattern[] {
    const rows = this.#sql('SELECT r.pattern, w.tenant, w.id AS workerId FROM routes r JOIN workers w ON w.id = r.worker_id').all() as RoutedPattern[];
    return rows.flatMap((r) => {
      try {
        return [{ ...r, pattern: normalizeRoutePattern(r.pattern) }];
      } catch {
        return []; // ingress ignores it too
      }
    });
  }

  hosts(tenant?: string): HostAssignment[] {
    const sql = 'SELECT host, tenant FROM hosts' + (tenant === undefined ? '' : ' WHERE tenant = ?') + ' ORDER BY host';
    return (tenant === undefined ? this.#sql(sql).all() : this.#sql(sql).all(tenant)) as HostAssignment[];
  }

  /**
   * Assign (or transfer) a host pattern to a tenant. Returns its previous owner, and the routes of
   * other tenants inside it, which from now on serve nothing.
   */
  assignHost(pattern: string, tenant: string): { host: string; previous: string | undefined; stranded: RoutedPattern[] } {
    const host = normalizeHostPattern(pattern);
    return this.#db.transaction(() => {
      const stranded = checkAssignment(host, tenant, this.hosts(), this.#routed(), this.workersDomain);
      const previous = this.#sql('SELECT tenant FROM hosts WHERE host = ?').pluck().get(host) as string | undefined;
      this.#sql(
        'INSERT INTO hosts (host, tenant, assigned_at) VALUES (?, ?, ?) ON CONFLICT(host) DO UPDATE SET tenant = excluded.tenant, assigned_at = excluded.assigned_at',
      ).run(host, tenant, Date.now());
      return { host, previous, stranded };
    })();
  }

  /** Take a host pattern back from its tenant; its routes stay, on a host only the operator routes on. */
  releaseHost(pattern: string): HostAssignment | undefined {
    const host = normalizeHostPattern(pattern);
    const tenant = this.#sql('SELECT tenant FROM hosts WHERE host = ?').pluck().get(host) as string | undefined;
    if (tenant === undefined) return undefined;
    this.#sql('DELETE FROM hosts WHERE host = ?').run(host);
    return { host, tenant };
  }

  /** Every version of every worker of a tenant, oldest first, opened (for `cordon export`). */
  exportTenant(tenant: string): { worker: string; version: string; createdAt: string; bundle: WorkerBundle }[] {
    const rows = this.#sql(
      `SELECT v.worker_id AS workerId, w.tenant, w.name, v.version, v.sealed, v.commit_oid AS commitOid, w.wrapped_key AS wrapped, w.cordon, v.created_at AS createdAt
         FROM versions v JOIN workers w ON w.id = v.worker_id WHERE w.tenant = ? ORDER BY v.created_at, v.rowid`,
    ).all(tenant) as (KeyRow & { createdAt: number })[];
    return rows.map((r) => ({ worker: r.name, version: r.version, createdAt: new Date(r.createdAt).toISOString(), bundle: this.#open(r) }));
  }

  /** The code hash of every stored version of a worker (versions that fail their integrity check are left out). */
  codeHashes(id: string): string[] {
    const rows = this.#sql(
      `SELECT v.worker_id AS workerId, w.tenant, w.name, v.version, v.sealed, v.commit_oid AS commitOid, w.wrapped_key AS wrapped, w.cordon
         FROM versions v JOIN workers w ON w.id = v.worker_id WHERE v.worker_id = ?`,
    ).all(id) as KeyRow[];
    const hashes = new Set<string>();
    for (const r of rows) {
      try {
        const b = this.#open(r);
        hashes.add(codeHash(b.mainModule, b.modules));
      } catch (e) {
        if (!(e instanceof TamperedError)) throw e;
      }
    }
    return [...hashes];
  }

  /** Every stored version of a worker, newest first. */
  versions(id: string): { version: string; createdAt: string; current: boolean; settings: VersionSettings | null }[] {
    const current = this.worker(id)?.version;
    const rows = this.#sql(
      `SELECT v.worker_id AS workerId, w.tenant, w.name, v.version, v.sealed, v.commit_oid AS commitOid, w.wrapped_key AS wrapped, w.cordon, v.created_at AS createdAt
         FROM versions v JOIN workers w ON w.id = v.worker_id WHERE v.worker_id = ? ORDER BY v.created_at DESC, v.rowid DESC`,
    ).all(id) as (KeyRow & { createdAt: number })[];
    return rows.map((r) => ({
      version: r.version,
      createdAt: new Date(r.createdAt).toISOString(),
      current: r.version === current,
      settings: this.#settings(r),
    }));
  }

  /** What a version sets, for comparing versions: var names but not their values, each module's size and hash but not its code. Null when it fails its integrity check. */
  #settings(row: KeyRow): VersionSettings | null {
    let b: WorkerBundle;
    try {
      b = this.#open(row);
    } catch (e) {
      if (e instanceof TamperedError) return null;
      throw e;
    }
    return {
      mainModule: b.mainModule,
      modules: b.modules.map((m) => ({ name: m.name, bytes: Buffer.byteLength(m.content), sha256: sha256(m.content) })),
      limits: b.limits,
      vars: Object.keys(b.vars).sort(),
      bindings: b.bindings,
      origins: b.origins ?? [],
      allowEval: b.allowEval === true,
      egress: b.egress ?? null,
      workflows: b.workflows ?? [],
      crons: b.crons ?? [],
      objectClasses: b.objectClasses ?? [],
      queueConsumers: b.queueConsumers ?? [],
      assets: b.assets ? assetSummary(b.assets) : null,
    };
  }

  /** Make an earlier version current again; like a deploy, it issues a fresh code key. */
  rollback(id: string, version: string): WorkerRecord {
    const exists = this.#sql('SELECT 1 FROM versions WHERE worker_id = ? AND version = ?').get(id, version);
    if (!exists) throw new UnknownVersionError(id, version);
    const codeKey = randomBytes(32).toString('base64url');
    this.#db.transaction(() => {
      this.#sql('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#sql('INSERT INTO code_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), id, version);
      this.#sql('UPDATE workers SET version = ?, code_key = ?, updated_at = ? WHERE id = ?').run(version, codeKey, Date.now(), id);
    })();
    return this.worker(id)!;
  }

  /** Move a worker to another cordon (quarantine, release); like a deploy, it issues a fresh code key. */
  setCordon(id: string, cordon: string): WorkerRecord | undefined {
    const w = this.worker(id);
    if (!w) return undefined;
    const codeKey = randomBytes(32).toString('base64url');
    this.#db.transaction(() => {
      this.#sql('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#sql('INSERT INTO code_keys (key_hash, worker_id, version) VALUES (?, ?, ?)').run(sha256(codeKey), id, w.version);
      this.#sql('UPDATE workers SET cordon = ?, code_key = ?, updated_at = ? WHERE id = ?').run(cordon, codeKey, Date.now(), id);
    })();
    return this.worker(id);
  }

  /** Remove a worker: its versions, keys and routes. (Its storage and directories stay on disk.) */
  delete(id: string): boolean {
    return this.#db.transaction(() => {
      this.#sql('DELETE FROM code_keys WHERE worker_id = ?').run(id);
      this.#sql('DELETE FROM pinned_keys WHERE worker_id = ?').run(id);
      for (const k of this.#pinned.keys()) if (k.startsWith(`${id}@`)) this.#pinned.delete(k);
      this.#sql('DELETE FROM routes WHERE worker_id = ?').run(id);
      this.#sql('DELETE FROM versions WHERE worker_id = ?').run(id);
      this.assets.deleteWorker(id);
      return this.#sql('DELETE FROM workers WHERE id = ?').run(id).changes === 1;
    })();
  }

  worker(id: string): WorkerRecord | undefined {
    const row = this.#sql('SELECT id, tenant, name, cordon, version, code_key AS codeKey FROM workers WHERE id = ?').get(id) as
      | Omit<WorkerRecord, 'routes'>
      | undefined;
    if (!row) return undefined;
    const routes = this.#sql('SELECT pattern FROM routes WHERE worker_id = ? ORDER BY pattern').pluck().all(id) as string[];
    return { ...row, routes };
  }

  /** Every worker (of `tenant`), in two queries rather than two per worker: cron and the queue consumers read them all on each change and tick. */
  workers(tenant?: string): WorkerRecord[] {
    const where = tenant === undefined ? '' : 'WHERE tenant = ?';
    const args = tenant === undefined ? [] : [tenant];
    const rows = this.#sql(`SELECT id, tenant, name, cordon, version, code_key AS codeKey FROM workers ${where} ORDER BY id`).all(...args) as Omit<
      WorkerRecord,
      'routes'
    >[];
    const routes = new Map<string, string[]>();
    const patterns = this.#sql(
      `SELECT worker_id AS id, pattern FROM routes ${tenant === undefined ? '' : 'WHERE worker_id IN (SELECT id FROM workers WHERE tenant = ?)'} ORDER BY pattern`,
    ).all(...args) as { id: string; pattern: string }[];
    for (const r of patterns) {
      const list = routes.get(r.id);
      if (list) list.push(r.pattern);
      else routes.set(r.id, [r.pattern]);
    }
    return rows.map((w) => ({ ...w, routes: routes.get(w.id) ?? [] }));
  }

  #keyRow(codeKey: string): KeyRow | undefined {
    return this.#sql(
      `SELECT k.worker_id AS workerId, w.tenant, w.name, k.version, v.sealed, v.commit_oid AS commitOid, w.wrapped_key AS wrapped, w.cordon
         FROM (SELECT key_hash, worker_id, version FROM code_keys UNION ALL SELECT key_hash, worker_id, version FROM pinned_keys) k JOIN versions v ON v.worker_id = k.worker_id AND v.version = k.version
         JOIN workers w ON w.id = k.worker_id WHERE k.key_hash = ?`,
    ).get(sha256(codeKey)) as KeyRow | undefined;
  }

  #open(row: KeyRow): WorkerBundle {
    let plain: Buffer;
    try {
      plain = open(unwrapWorkerKey(this.#wrapKey, row.wrapped, row.workerId), row.sealed, `${row.workerId}\0${row.version}`);
    } catch (e) {
      if (e instanceof SealError) throw new TamperedError(row.workerId, row.version, e.message);
      throw e;
    }
    if (sha256(plain.toString('utf8')) !== row.version) throw new TamperedError(row.workerId, row.version, 'the code does not hash to its version');
    const stored = JSON.parse(plain.toString('utf8')) as Omit<WorkerBundle, 'workerId' | 'version'>;
    return { workerId: row.workerId, version: row.version, ...stored, bindings: stored.bindings ?? [] };
  }

  /** The bundle a code key unlocks (opened and hash-checked), or undefined for a key that is unknown or rotated away. */
  bundleForKey(codeKey: string): { bundle: WorkerBundle; cordon: string } | undefined {
    const row = this.#keyRow(codeKey);
    return row && { bundle: this.#open(row), cordon: row.cordon };
  }

  /** As bundleForKey, and also checks the sealed bytes are exactly what the version's git commit recorded. */
  async verifiedBundleForKey(codeKey: string): Promise<{ bundle: WorkerBundle; cordon: string } | undefined> {
    const row = this.#keyRow(codeKey);
    if (!row) return undefined;
    const recorded = await this.#history.recordedBundle(row.tenant, row.name, row.commitOid);
    if (recorded !== blobOid(row.sealed))
      throw new TamperedError(row.workerId, row.version, recorded ? 'it differs from the bundle its git commit recorded' : 'its git commit is missing');
    return { bundle: this.#open(row), cordon: row.cordon };
  }

  /** What ingress routes by: routes oldest first, and the host assignments. */
  /** The routes and host assignments as they are now (`version` 0: the route hub counts its publications). */
  routingTable(): RoutingTable {
    type Row = { tenant: string; workerId: string; version: string; codeKey: string; cordon: string };
    const rows = this.#sql(
      'SELECT r.pattern, r.seq, w.tenant, w.id AS workerId, w.version, w.code_key AS codeKey, w.cordon FROM routes r JOIN workers w ON w.id = r.worker_id ORDER BY r.seq, r.pattern',
    ).all() as (Row & { pattern: string; seq: number })[];
    const route = (pattern: string, r: Row, order: [number, string]) => ({
      pattern,
      tenant: r.tenant,
      cordon: r.cordon,
      target: { workerId: r.workerId, version: r.version, codeKey: r.codeKey },
      order,
    });
    const workers = this.#sql(
      'SELECT tenant, name, id AS workerId, version, code_key AS codeKey, cordon FROM workers WHERE workers_dev = 1 ORDER BY id',
    ).all() as (Row & { name: string })[];
    const defaults = defaultRouting(workers, this.workersDomain);
    return {
      version: 0,
      routes: [
        ...rows.map((r) => route(r.pattern, r, [r.seq, r.pattern])),
        // After every declared route, as they were listed after them: a default route loses ties.
        ...defaults.routes.map((d) => route(d.pattern, d.worker, [Number.MAX_SAFE_INTEGER, d.worker.workerId])),
      ],
      hosts: [...this.hosts(), ...defaults.hosts],
    };
  }

  /** A worker's default route (`<worker>.<tenant>.<domain>/*`), if default routes are on and the worker did not opt out. */
  defaultRoute(tenant: string, name: string): string | undefined {
    if (this.workersDomain === '') return undefined;
    if (this.#sql('SELECT workers_dev FROM workers WHERE id = ?').pluck().get(`${tenant}/${name}`) === 0) return undefined;
    return defaultRoutePattern(tenant, name, this.workersDomain);
  }
}
