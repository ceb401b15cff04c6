/**
 * The resources a tenant owns apart from any one worker: KV namespaces, D1 databases and queues.
 * Each is a file under `<root>/<tenant>/`, in a folder no worker name can take (`_kv`, `_d1`,
 * `_queues`: worker names have no `_`), named by the id or name the tenant declared. The tenant is
 * always the one of the worker asking, never an argument, so a name one tenant declares opens its
 * own resource of that name and never another tenant's. One pool handle per file, so two workers of
 * a tenant sharing a namespace share its ordering too.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ResourceName } from '../../schemas/resources.ts';
import { TenantName } from '../../schemas/worker.ts';
import type { PooledDatabase, SqlPool } from './sql-pool.ts';
import type { SqlKind } from './sql-process.ts';

const FOLDERS = { kv: '_kv', d1: '_d1', queue: '_queues' } as const satisfies Partial<Record<SqlKind, string>>;
export type TenantResourceKind = keyof typeof FOLDERS;

export class TenantResources {
  readonly #root: string;
  readonly #pool: SqlPool;
  readonly #quotaBytes: number;
  readonly #open = new Map<string, PooledDatabase>();

  constructor(root: string, pool: SqlPool, quotaBytes: number) {
    this.#root = root;
    this.#pool = pool;
    this.#quotaBytes = quotaBytes;
  }

  /** The tenant's resource of that kind and name, created on first use. Both names are checked again here: they become a path. */
  open(kind: TenantResourceKind, tenant: string, name: string): PooledDatabase {
    TenantName.parse(tenant);
    ResourceName.parse(name);
    const dir = join(this.#root, tenant, FOLDERS[kind]);
    const file = join(dir, `${name}.sqlite`);
    let db = this.#open.get(file);
    if (!db) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#open.set(file, (db = this.#pool.database(file, this.#quotaBytes, tenant, kind)));
    }
    return db;
  }
}
