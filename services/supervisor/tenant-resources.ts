/**
 * The resources a tenant owns apart from any one worker: KV namespaces, D1 databases and queues.
 * Each is a file under `<root>/<tenant>/`, in a folder no worker name can take (`_kv`, `_d1`,
 * `_queues`: worker names have no `_`), named by the id or name the tenant declared. The tenant is
 * always the one of the worker asking, never an argument, so a name one tenant declares opens its
 * own resource of that name and never another tenant's. One pool handle per file, so two workers of
 * a tenant sharing a namespace share its ordering too.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { CordonError } from '../../lib/errors.ts';
import { join } from 'node:path';
import { ResourceName } from '../../schemas/resources.ts';
import { TenantName } from '../../schemas/worker.ts';
import type { PooledDatabase, SqlPool } from './sql-pool.ts';
import type { SqlKind } from './sql-process.ts';

const FOLDERS = { kv: '_kv', d1: '_d1', queue: '_queues' } as const satisfies Partial<Record<SqlKind, string>>;
export type TenantResourceKind = keyof typeof FOLDERS;
const WHAT: Record<TenantResourceKind, string> = { kv: 'KV namespaces', d1: 'D1 databases', queue: 'queues' };

export interface TenantResourceLimits {
  /** Bytes one resource's file may hold. */
  quotaBytes: number;
  /** Resources of each kind one tenant may have. */
  perTenant: number;
}

export class TenantResources {
  readonly #root: string;
  readonly #pool: SqlPool;
  readonly #limits: TenantResourceLimits;
  readonly #open = new Map<string, PooledDatabase>();

  constructor(root: string, pool: SqlPool, limits: TenantResourceLimits) {
    this.#root = root;
    this.#pool = pool;
    this.#limits = limits;
  }

  #dir(kind: TenantResourceKind, tenant: string): string {
    TenantName.parse(tenant);
    return join(this.#root, tenant, FOLDERS[kind]);
  }

  /** The names the tenant has of that kind. */
  names(kind: TenantResourceKind, tenant: string): string[] {
    const dir = this.#dir(kind, tenant);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((f) => f.endsWith('.sqlite'))
      .map((f) => f.slice(0, -'.sqlite'.length));
  }

  /** Refuse a deploy that would give the tenant more resources of a kind than it may have (those it has count once). */
  checkDeclared(tenant: string, declared: { kind: TenantResourceKind; name: string }[]): void {
    for (const kind of Object.keys(FOLDERS) as TenantResourceKind[]) {
      const all = new Set([...this.names(kind, tenant), ...declared.filter((d) => d.kind === kind).map((d) => d.name)]);
      if (all.size > this.#limits.perTenant)
        // A 403 the deployer reads, and a refusal the capabilities audit.
        throw new CordonError(
          `tenant ${tenant} would have ${all.size} ${WHAT[kind]}; the limit is ${this.#limits.perTenant} (CORDON_RESOURCES_PER_TENANT): reuse one, or ask the operator`,
          { status: 403, refusal: true },
        );
    }
  }

  /** The tenant's resource of that kind and name, created on first use. Both names are checked again here: they become a path. */
  open(kind: TenantResourceKind, tenant: string, name: string): PooledDatabase {
    ResourceName.parse(name);
    const dir = this.#dir(kind, tenant);
    const file = join(dir, `${name}.sqlite`);
    let db = this.#open.get(file);
    if (!db) {
      // Checked at deploy too; here for what was deployed before the limit was lowered.
      if (!existsSync(file)) this.checkDeclared(tenant, [{ kind, name }]);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#open.set(file, (db = this.#pool.database(file, this.#limits.quotaBytes, tenant, kind)));
    }
    return db;
  }
}
