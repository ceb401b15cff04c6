/**
 * Crash attribution and quarantine. The supervisor counts, per worker over a sliding window
 * (`windowMs`), the signals of a worker that harms or probes its neighbours: sandbox crashes while
 * it ran (its cordon's next process reports them), CPU-limit hits and memory-limit kills (its
 * sandbox reports them), refused capability calls and egress refusals. A worker that reaches a
 * signal's threshold is moved into a cordon of its own (a dedicated sandbox process, `q-<hash>`), its
 * capabilities are revoked (the new process gets fresh ones), and the move is audited. The launcher
 * runs a process for every cordon listed in `<data>/cordons.json`; this module keeps that file.
 * A debug session (`cordon debug`) is the same move on request, into `d-<hash>`, whose process alone
 * has the V8 inspector on, opened by a one-time token (the file holds only its SHA-256).
 *
 * Quarantine follows the tenant's code, not only the worker's name: quarantining a worker records the
 * code hash (store.codeHash) of each of its stored versions, and a deploy by the same tenant of any of
 * that code, under any name, lands in the quarantined worker's cordon. An admin may also quarantine a
 * whole tenant: its workers, and every later deploy of it, share one quarantine cordon until released.
 */
import type Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import type { AuditLog } from './audit.ts';
import type { CodeStore } from './store.ts';
import type { DedicatedCordons } from '../../schemas/services.ts';

export interface QuarantineEntry {
  worker: string;
  cordon: string;
  previousCordon: string;
  since: string;
  reason: string;
}

/** Where a deploy must land because of a quarantine, and why (no reason: the worker is already recorded there). */
export interface Placement {
  cordon: string;
  reason?: string;
}

export interface TenantQuarantine {
  tenant: string;
  cordon: string;
  since: string;
  reason: string;
}

export type Signal = 'crash' | 'memory' | 'cpu' | 'capability' | 'egress';

/** How many of each signal within the window move a worker: a crash costs neighbours most. */
export const DEFAULT_THRESHOLDS: Record<Signal, number> = { crash: 2, memory: 5, cpu: 20, capability: 20, egress: 50 };
const LABEL: Record<Signal, string> = {
  crash: 'sandbox crashes',
  memory: 'memory-limit kills',
  cpu: 'CPU-limit hits',
  capability: 'refused capability calls',
  egress: 'egress refusals',
};

export interface QuarantineHooks {
  /** Routes changed (the worker moved): tell ingress. */
  moved(workerId: string): void;
}

export class Quarantine {
  readonly #db: Database.Database;
  readonly #store: CodeStore;
  readonly #audit: AuditLog;
  readonly #file: string;
  readonly #hooks: QuarantineHooks;
  /** Per worker, per signal: the times of the last `threshold` signals. */
  readonly #signals = new Map<string, Map<Signal, number[]>>();
  readonly #windowMs: number;
  readonly #thresholds: Record<Signal, number>;

  constructor(
    db: Database.Database,
    store: CodeStore,
    audit: AuditLog,
    cordonsFile: string,
    hooks: QuarantineHooks,
    opts: { windowMs?: number; thresholds?: Partial<Record<Signal, number>> } = {},
  ) {
    this.#db = db;
    this.#store = store;
    this.#audit = audit;
    this.#file = cordonsFile;
    this.#hooks = hooks;
    this.#windowMs = opts.windowMs ?? 10 * 60_000;
    this.#thresholds = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
    db.exec(`CREATE TABLE IF NOT EXISTS quarantine (
      worker_id TEXT PRIMARY KEY, cordon TEXT NOT NULL, previous_cordon TEXT NOT NULL, since INTEGER NOT NULL, reason TEXT NOT NULL)`);
    // Added with debug sessions; a database from before has no such column yet.
    if (!db.prepare("SELECT 1 FROM pragma_table_info('quarantine') WHERE name = 'inspector_token_sha256'").get())
      db.exec('ALTER TABLE quarantine ADD COLUMN inspector_token_sha256 TEXT');
    db.exec(`CREATE TABLE IF NOT EXISTS quarantined_code (
      tenant TEXT NOT NULL, code_sha256 TEXT NOT NULL, worker_id TEXT NOT NULL, PRIMARY KEY (tenant, code_sha256));
      CREATE TABLE IF NOT EXISTS quarantined_tenants (tenant TEXT PRIMARY KEY, cordon TEXT NOT NULL, since INTEGER NOT NULL, reason TEXT NOT NULL)`);
    this.#writeCordons();
  }

  /** The dedicated cordon of a worker: `q-…` when quarantined, `d-…` for a debug session. */
  static cordonFor(workerId: string, kind: 'q' | 'd' = 'q'): string {
    return `${kind}-${createHash('sha256').update(workerId).digest('hex').slice(0, 12)}`;
  }

  /** The cordon a quarantined worker must stay in (a redeploy does not release it). */
  cordonOf(workerId: string): string | undefined {
    return (this.#db.prepare('SELECT cordon FROM quarantine WHERE worker_id = ?').pluck().get(workerId) as string | undefined) ?? undefined;
  }

  /** Whether `cordon` is a dedicated (quarantine or debug) cordon a worker is in now. */
  hosts(cordon: string): boolean {
    return this.#db.prepare('SELECT 1 FROM quarantine WHERE cordon = ?').get(cordon) !== undefined;
  }

  /**
   * Where a deploy of `workerId` (tenant `tenant`, code `codeSha256`) must land instead of the cordon it
   * asked for: the cordon it is already held in, its tenant's quarantine cordon, or the cordon of a
   * quarantined worker of the same tenant with the same code. Undefined when nothing holds it.
   */
  placement(workerId: string, tenant: string, codeSha256: string): Placement | undefined {
    const held = this.cordonOf(workerId);
    if (held) return { cordon: held };
    const t = this.#tenant(tenant);
    if (t) return { cordon: t.cordon, reason: `tenant ${tenant} is quarantined: ${t.reason}` };
    const original = this.#db.prepare('SELECT worker_id FROM quarantined_code WHERE tenant = ? AND code_sha256 = ?').pluck().get(tenant, codeSha256) as
      | string
      | undefined;
    if (original) return { cordon: this.cordonOf(original) ?? Quarantine.cordonFor(workerId), reason: `the same code as quarantined ${original}` };
    return undefined;
  }

  /** A deploy landed where placement() said: record it as quarantined (it came from `from`), audited. */
  admitted(workerId: string, from: string, placement: Placement): void {
    if (!placement.reason || this.cordonOf(workerId)) return;
    this.#db
      .prepare('INSERT INTO quarantine (worker_id, cordon, previous_cordon, since, reason, inspector_token_sha256) VALUES (?, ?, ?, ?, ?, NULL)')
      .run(workerId, placement.cordon, from, Date.now(), placement.reason);
    this.#writeCordons();
    this.#audit.append({
      actor: 'supervisor',
      action: 'worker.quarantined',
      target: workerId,
      outcome: 'ok',
      detail: { cordon: placement.cordon, from, reason: placement.reason },
    });
  }

  #tenant(tenant: string): { cordon: string; reason: string } | undefined {
    return this.#db.prepare('SELECT cordon, reason FROM quarantined_tenants WHERE tenant = ?').get(tenant) as { cordon: string; reason: string } | undefined;
  }

  /** Quarantine every worker of `tenant`, and every later deploy of it, into one cordon of the tenant's own. */
  quarantineTenant(tenant: string, reason: string, actor: string): string {
    const known = this.#tenant(tenant);
    if (known) return known.cordon;
    const cordon = Quarantine.cordonFor(`tenant:${tenant}`);
    this.#db.prepare('INSERT INTO quarantined_tenants (tenant, cordon, since, reason) VALUES (?, ?, ?, ?)').run(tenant, cordon, Date.now(), reason);
    this.#audit.append({ actor, action: 'tenant.quarantined', target: tenant, outcome: 'ok', detail: { cordon, reason } });
    for (const w of this.#store.workers(tenant)) {
      if (this.cordonOf(w.id)) continue; // already on its own (quarantined or debugged); it joins on release
      this.#move(w.id, w.cordon, cordon, `tenant ${tenant} is quarantined: ${reason}`, null);
      this.#audit.append({
        actor: 'supervisor',
        action: 'worker.quarantined',
        target: w.id,
        outcome: 'ok',
        detail: { cordon, from: w.cordon, reason: `tenant ${tenant} is quarantined` },
      });
    }
    this.#writeCordons();
    return cordon;
  }

  /** Lift a tenant's quarantine: the workers it held go back to their cordons (others stay as they are). */
  releaseTenant(tenant: string, actor: string): boolean {
    const t = this.#tenant(tenant);
    if (!t) return false;
    this.#db.prepare('DELETE FROM quarantined_tenants WHERE tenant = ?').run(tenant);
    this.#audit.append({ actor, action: 'tenant.released', target: tenant, outcome: 'ok' });
    const held = this.#db.prepare('SELECT worker_id FROM quarantine WHERE cordon = ?').pluck().all(t.cordon) as string[];
    for (const id of held) this.release(id);
    this.#writeCordons();
    return true;
  }

  tenants(): TenantQuarantine[] {
    const rows = this.#db.prepare('SELECT tenant, cordon, since, reason FROM quarantined_tenants ORDER BY since').all() as {
      tenant: string;
      cordon: string;
      since: number;
      reason: string;
    }[];
    return rows.map((r) => ({ tenant: r.tenant, cordon: r.cordon, since: new Date(r.since).toISOString(), reason: r.reason }));
  }

  /**
   * The sandbox of `cordon` (as its key proved) says these workers were running when its
   * predecessor died. It can only blame workers of its own cordon: a name of any other worker is
   * refused, never counted, and the refusal audited (once per call, however many names it holds).
   */
  crashed(cordon: string, workerIds: string[]): void {
    const refused: string[] = [];
    for (const id of new Set(workerIds)) {
      if (this.#store.worker(id)?.cordon !== cordon) {
        refused.push(id);
        continue;
      }
      const n = this.#count(id, 'crash');
      this.#audit.append({ actor: `sandbox:${cordon}`, action: 'worker.crash', target: id, outcome: 'error', detail: { crashesInWindow: n } });
      this.#judge(id, 'crash', n);
    }
    if (refused.length) {
      this.#audit.append({
        actor: `sandbox:${cordon}`,
        action: 'worker.crash.refused',
        outcome: 'denied',
        detail: { reason: 'not a worker of this cordon', workers: refused.slice(0, 10), count: refused.length },
      });
    }
  }

  /** One more signal against a worker (callers have established that it is that worker's). */
  signal(workerId: string, kind: Exclude<Signal, 'crash'>): void {
    if (!this.#store.worker(workerId)) return;
    this.#judge(workerId, kind, this.#count(workerId, kind));
  }

  /** Records a signal now; how many of its kind fall within the window. */
  #count(workerId: string, kind: Signal): number {
    const now = Date.now();
    let byKind = this.#signals.get(workerId);
    if (!byKind) this.#signals.set(workerId, (byKind = new Map()));
    const times = (byKind.get(kind) ?? []).filter((t) => now - t < this.#windowMs).slice(-(this.#thresholds[kind] - 1));
    times.push(now);
    byKind.set(kind, times);
    return times.length;
  }

  #judge(workerId: string, kind: Signal, n: number): void {
    if (n < this.#thresholds[kind] || this.cordonOf(workerId)) return;
    this.quarantine(workerId, `${n} ${LABEL[kind]} within ${this.#windowMs / 1000} s`);
  }

  quarantine(workerId: string, reason: string): void {
    const worker = this.#store.worker(workerId);
    if (!worker || this.cordonOf(workerId)) return;
    const cordon = Quarantine.cordonFor(workerId);
    // Its code stays suspect under any name: every stored version's, as the tenant could redeploy an older one.
    const record = this.#db.prepare('INSERT OR IGNORE INTO quarantined_code (tenant, code_sha256, worker_id) VALUES (?, ?, ?)');
    for (const hash of this.#store.codeHashes(workerId)) record.run(worker.tenant, hash, workerId);
    this.#move(workerId, worker.cordon, cordon, reason, null);
    this.#audit.append({ actor: 'supervisor', action: 'worker.quarantined', target: workerId, outcome: 'ok', detail: { cordon, from: worker.cordon, reason } });
  }

  /**
   * Moves a worker into a debug sandbox of its own with the inspector on. Returns the cordon and the
   * one-time token that opens its inspector, or undefined if the worker is unknown or already moved.
   */
  debug(workerId: string, actor: string): { cordon: string; token: string } | undefined {
    const worker = this.#store.worker(workerId);
    if (!worker || this.cordonOf(workerId)) return undefined;
    const cordon = Quarantine.cordonFor(workerId, 'd');
    const token = randomBytes(32).toString('base64url');
    this.#move(workerId, worker.cordon, cordon, 'debug session', createHash('sha256').update(token).digest('hex'));
    this.#audit.append({ actor, action: 'worker.debug.start', target: workerId, outcome: 'ok', detail: { cordon, from: worker.cordon } });
    return { cordon, token };
  }

  /** Whether the worker is in a debug session (rather than quarantined). */
  debugging(workerId: string): boolean {
    return this.cordonOf(workerId)?.startsWith('d-') ?? false;
  }

  #move(workerId: string, from: string, cordon: string, reason: string, tokenSha256: string | null): void {
    this.#db
      .prepare('INSERT INTO quarantine (worker_id, cordon, previous_cordon, since, reason, inspector_token_sha256) VALUES (?, ?, ?, ?, ?, ?)')
      .run(workerId, cordon, from, Date.now(), reason, tokenSha256);
    this.#store.setCordon(workerId, cordon);
    this.#writeCordons();
    this.#hooks.moved(workerId);
  }

  /**
   * Send a worker back to the cordon it came from, and forget its code as quarantined. A worker of a
   * quarantined tenant goes to the tenant's quarantine cordon instead (releaseTenant lifts that).
   */
  release(workerId: string): boolean {
    const row = this.#db.prepare('SELECT previous_cordon FROM quarantine WHERE worker_id = ?').pluck().get(workerId) as string | undefined;
    if (!row) return false;
    const action = this.debugging(workerId) ? 'worker.debug.end' : 'worker.released';
    this.#db.prepare('DELETE FROM quarantine WHERE worker_id = ?').run(workerId);
    this.#db.prepare('DELETE FROM quarantined_code WHERE worker_id = ?').run(workerId);
    this.#signals.delete(workerId);
    const tenant = this.#tenant(workerId.split('/')[0]!);
    if (tenant && this.#store.worker(workerId)) {
      this.#move(workerId, row, tenant.cordon, `tenant ${workerId.split('/')[0]} is quarantined: ${tenant.reason}`, null);
      this.#audit.append({ actor: 'supervisor', action, target: workerId, outcome: 'ok', detail: { cordon: tenant.cordon, heldBy: 'tenant quarantine' } });
      return true;
    }
    if (this.#store.worker(workerId)) this.#store.setCordon(workerId, row);
    this.#writeCordons();
    this.#audit.append({ actor: 'supervisor', action, target: workerId, outcome: 'ok', detail: { cordon: row } });
    this.#hooks.moved(workerId);
    return true;
  }

  list(): QuarantineEntry[] {
    const rows = this.#db.prepare('SELECT worker_id, cordon, previous_cordon, since, reason FROM quarantine ORDER BY since').all() as {
      worker_id: string;
      cordon: string;
      previous_cordon: string;
      since: number;
      reason: string;
    }[];
    return rows.map((r) => ({
      worker: r.worker_id,
      cordon: r.cordon,
      previousCordon: r.previous_cordon,
      since: new Date(r.since).toISOString(),
      reason: r.reason,
    }));
  }

  /** The dedicated cordons that must each have a process now (with the inspector where a token is given). */
  dedicated(): DedicatedCordons {
    const inspector = Object.fromEntries(
      (
        this.#db.prepare('SELECT cordon, inspector_token_sha256 FROM quarantine WHERE inspector_token_sha256 IS NOT NULL').all() as {
          cordon: string;
          inspector_token_sha256: string;
        }[]
      ).map((r) => [r.cordon, r.inspector_token_sha256]),
    );
    // Workers held for the same code or the same tenant share a cordon: one process for them all.
    return { dynamic: [...new Set(this.list().map((e) => e.cordon))], inspector };
  }

  /** `cordon start`'s launcher reads this file; in a cluster the agent asks for the same list over the mesh. */
  #writeCordons(): void {
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.dedicated()) + '\n', { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
}
