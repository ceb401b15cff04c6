/**
 * Crash attribution and quarantine. A sandbox reports the workers that were running when its
 * cordon's previous process died; a worker blamed for `threshold` crashes within `windowMs` is moved
 * into a cordon of its own (a dedicated sandbox process, `q-<hash>`), its capabilities are revoked
 * (the new process gets fresh ones), and the move is audited. The launcher runs a process for every
 * cordon listed in `<data>/cordons.json`; this module keeps that file.
 */
import type Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import type { AuditLog } from './audit.ts';
import type { CodeStore } from './store.ts';

export interface QuarantineEntry {
  worker: string;
  cordon: string;
  previousCordon: string;
  since: string;
  reason: string;
}

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
  readonly #crashes = new Map<string, number[]>();
  readonly #windowMs: number;
  readonly #threshold: number;

  constructor(db: Database.Database, store: CodeStore, audit: AuditLog, cordonsFile: string, hooks: QuarantineHooks, opts: { windowMs?: number; threshold?: number } = {}) {
    this.#db = db;
    this.#store = store;
    this.#audit = audit;
    this.#file = cordonsFile;
    this.#hooks = hooks;
    this.#windowMs = opts.windowMs ?? 10 * 60_000;
    this.#threshold = opts.threshold ?? 2;
    db.exec(`CREATE TABLE IF NOT EXISTS quarantine (
      worker_id TEXT PRIMARY KEY, cordon TEXT NOT NULL, previous_cordon TEXT NOT NULL, since INTEGER NOT NULL, reason TEXT NOT NULL)`);
    this.#writeCordons();
  }

  static cordonFor(workerId: string): string {
    return `q-${createHash('sha256').update(workerId).digest('hex').slice(0, 12)}`;
  }

  /** The cordon a quarantined worker must stay in (a redeploy does not release it). */
  cordonOf(workerId: string): string | undefined {
    return (this.#db.prepare('SELECT cordon FROM quarantine WHERE worker_id = ?').pluck().get(workerId) as string | undefined) ?? undefined;
  }

  /** The sandbox of `cordon` says these workers were running when its predecessor died. */
  crashed(cordon: string, workerIds: string[]): void {
    const now = Date.now();
    for (const id of new Set(workerIds)) {
      // A sandbox can only blame workers of its own cordon.
      if (this.#store.worker(id)?.cordon !== cordon) continue;
      const times = (this.#crashes.get(id) ?? []).filter((t) => now - t < this.#windowMs);
      times.push(now);
      this.#crashes.set(id, times);
      this.#audit.append({ actor: `sandbox:${cordon}`, action: 'worker.crash', target: id, outcome: 'error', detail: { crashesInWindow: times.length } });
      if (times.length >= this.#threshold && !cordon.startsWith('q-')) this.quarantine(id, `${times.length} sandbox crashes within ${this.#windowMs / 1000} s`);
    }
  }

  quarantine(workerId: string, reason: string): void {
    const worker = this.#store.worker(workerId);
    if (!worker || this.cordonOf(workerId)) return;
    const cordon = Quarantine.cordonFor(workerId);
    this.#db.prepare('INSERT INTO quarantine (worker_id, cordon, previous_cordon, since, reason) VALUES (?, ?, ?, ?, ?)').run(workerId, cordon, worker.cordon, Date.now(), reason);
    this.#store.setCordon(workerId, cordon);
    this.#writeCordons();
    this.#audit.append({ actor: 'supervisor', action: 'worker.quarantined', target: workerId, outcome: 'ok', detail: { cordon, from: worker.cordon, reason } });
    this.#hooks.moved(workerId);
  }

  release(workerId: string): boolean {
    const row = this.#db.prepare('SELECT previous_cordon FROM quarantine WHERE worker_id = ?').pluck().get(workerId) as string | undefined;
    if (!row) return false;
    this.#db.prepare('DELETE FROM quarantine WHERE worker_id = ?').run(workerId);
    this.#crashes.delete(workerId);
    if (this.#store.worker(workerId)) this.#store.setCordon(workerId, row);
    this.#writeCordons();
    this.#audit.append({ actor: 'supervisor', action: 'worker.released', target: workerId, outcome: 'ok', detail: { cordon: row } });
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
    return rows.map((r) => ({ worker: r.worker_id, cordon: r.cordon, previousCordon: r.previous_cordon, since: new Date(r.since).toISOString(), reason: r.reason }));
  }

  /** The launcher reads this file and runs one sandbox per listed cordon. */
  #writeCordons(): void {
    const tmp = `${this.#file}.tmp`;
    writeFileSync(tmp, JSON.stringify({ dynamic: this.list().map((e) => e.cordon) }) + '\n');
    renameSync(tmp, this.#file);
  }
}
