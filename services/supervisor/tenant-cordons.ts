/**
 * Which cordons (trust levels) each tenant may deploy to: the operator's decision, not the deployer's.
 * An admin token not bound to a tenant sets a tenant's list (audited); a tenant nobody set a list for
 * may use only the least trusted configured cordon (the last of CORDON_CORDONS). Lists are kept in the
 * supervisor's admin database; a cordon no longer configured simply drops out of them.
 */
import type Database from 'better-sqlite3';
import { CordonError } from '../../lib/errors.ts';

export class TenantCordons {
  readonly #db: Database.Database;
  /** The configured cordons, most trusted first. */
  readonly #configured: string[];

  constructor(db: Database.Database, configured: string[]) {
    if (configured.length === 0) throw new Error('no cordons are configured (CORDON_CORDONS)');
    this.#db = db;
    this.#configured = configured;
    db.exec('CREATE TABLE IF NOT EXISTS tenant_cordons (tenant TEXT PRIMARY KEY, cordons TEXT NOT NULL, updated_at INTEGER NOT NULL)');
  }

  /** The least trusted configured cordon: every tenant's default. */
  get leastTrusted(): string {
    return this.#configured.at(-1)!;
  }

  /** The cordons `tenant` may use, most trusted first, and whether an admin granted them (else the default). */
  allowed(tenant: string): { cordons: string[]; granted: boolean } {
    const row = this.#db.prepare('SELECT cordons FROM tenant_cordons WHERE tenant = ?').pluck().get(tenant) as string | undefined;
    const granted = row === undefined ? [] : (JSON.parse(row) as string[]).filter((c) => this.#configured.includes(c));
    if (granted.length === 0) return { cordons: [this.leastTrusted], granted: false };
    return { cordons: this.#configured.filter((c) => granted.includes(c)), granted: true };
  }

  /** Replace `tenant`'s list; every name must be a configured cordon. */
  set(tenant: string, cordons: string[]): string[] {
    const unknown = cordons.filter((c) => !this.#configured.includes(c));
    if (unknown.length) throw new UnknownCordonError(unknown, this.#configured);
    this.#db
      .prepare(
        'INSERT INTO tenant_cordons (tenant, cordons, updated_at) VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET cordons = excluded.cordons, updated_at = excluded.updated_at',
      )
      .run(tenant, JSON.stringify([...new Set(cordons)]), Date.now());
    return this.allowed(tenant).cordons;
  }
}

export class UnknownCordonError extends CordonError {
  constructor(unknown: string[], configured: string[]) {
    super(`unknown cordon ${unknown.join(', ')}; this mesh runs: ${configured.join(', ')}`, { status: 400 });
    this.name = 'UnknownCordonError';
  }
}
