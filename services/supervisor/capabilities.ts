/**
 * The capabilities behind a worker's bindings. Each object is constructed with exactly one worker's
 * database or directory and nothing else, so no argument can reach another worker's data. Every
 * method checks its arguments here, at the boundary, and every refusal is audited. A worker's
 * grants sit in one membrane, so the supervisor can revoke them all at once.
 */
import { RpcTarget } from 'capnweb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { check, bytes, ValidationError } from '../../lib/rpc/validate.ts';
import { Membrane } from '../../lib/rpc/membrane.ts';
import { CACHE_HANDLE, FETCH_HANDLE, type CacheApi, type DirectoryApi, type FetcherApi, type FetchResponse, type SqlResult, type SqlValue, type StorageApi } from '../../schemas/capabilities.ts';
import type { RpcStub } from 'capnweb';
import type { EgressLink } from './ports.ts';
import type { WorkerBundle } from '../../schemas/worker.ts';
import type { AuditLog } from './audit.ts';
import type { WorkflowsApi } from '../../schemas/workflows.ts';
import { SqlError, WorkerDatabase, LIMITS } from './sql-storage.ts';
import { DirectoryError, WorkerDirectory } from './directory.ts';

const Query = z.string().max(LIMITS.statementBytes * 4);
const SqlBindings = z.array(z.union([z.string(), z.number(), z.null(), bytes(LIMITS.valueBytes)])).max(LIMITS.boundParameters);
const Key = z.string().min(1).max(2048);
const Prefix = z.string().max(2048);
const Limit = z.number().int().min(1).max(10_000);
const Value = bytes(LIMITS.valueBytes);

type Audit = (action: string, error: Error) => void;

/** Turn a refusal into a plain error for the tenant (no host stack) and audit it. */
async function guarded<T>(audit: Audit, action: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof SqlError || e instanceof DirectoryError || e instanceof ValidationError) {
      if (e instanceof ValidationError || /not authorized|EINVAL|ELOOP|quota|EDQUOT/.test(`${e.message} ${(e as DirectoryError).code ?? ''}`)) audit(action, e);
      throw new Error(e.message);
    }
    throw new Error(`${action} failed`);
  }
}

export class StorageCap extends RpcTarget implements StorageApi {
  readonly #db: WorkerDatabase;
  readonly #audit: Audit;
  constructor(db: WorkerDatabase, audit: Audit) {
    super();
    this.#db = db;
    this.#audit = audit;
  }
  exec(query: unknown, bindings: unknown): Promise<SqlResult> {
    return guarded(this.#audit, 'storage.exec', () => this.#db.exec(check(Query, query, 'query'), check(SqlBindings, bindings, 'bindings') as SqlValue[]));
  }
  databaseSize(): Promise<number> {
    return guarded(this.#audit, 'storage.size', () => this.#db.databaseSize);
  }
  begin(): Promise<void> {
    return guarded(this.#audit, 'storage.begin', () => this.#db.begin());
  }
  commit(): Promise<void> {
    return guarded(this.#audit, 'storage.commit', () => this.#db.commit());
  }
  rollback(): Promise<void> {
    return guarded(this.#audit, 'storage.rollback', () => this.#db.rollback());
  }
  kvGet(key: unknown): Promise<Uint8Array | null> {
    return guarded(this.#audit, 'kv.get', () => this.#db.kvGet(check(Key, key, 'key')) ?? null);
  }
  kvPut(key: unknown, value: unknown): Promise<void> {
    return guarded(this.#audit, 'kv.put', () => this.#db.kvPut(check(Key, key, 'key'), check(Value, value, 'value')));
  }
  kvDelete(key: unknown): Promise<boolean> {
    return guarded(this.#audit, 'kv.delete', () => this.#db.kvDelete(check(Key, key, 'key')));
  }
  kvList(prefix: unknown, limit: unknown): Promise<[string, Uint8Array][]> {
    return guarded(this.#audit, 'kv.list', () => this.#db.kvList(check(Prefix, prefix, 'prefix'), check(Limit, limit, 'limit')));
  }
}

export class DirectoryCap extends RpcTarget implements DirectoryApi {
  readonly #dir: WorkerDirectory;
  readonly #audit: Audit;
  constructor(dir: WorkerDirectory, audit: Audit) {
    super();
    this.#dir = dir;
    this.#audit = audit;
  }
  list(path?: unknown) {
    return guarded(this.#audit, 'dir.list', () => this.#dir.list(path ?? ''));
  }
  read(path: unknown) {
    return guarded(this.#audit, 'dir.read', () => this.#dir.read(path));
  }
  write(path: unknown, data: unknown) {
    return guarded(this.#audit, 'dir.write', () => this.#dir.write(path, data));
  }
  remove(path: unknown) {
    return guarded(this.#audit, 'dir.remove', () => this.#dir.remove(path));
  }
  stat(path: unknown) {
    return guarded(this.#audit, 'dir.stat', () => this.#dir.stat(path));
  }
  mkdir(path: unknown) {
    return guarded(this.#audit, 'dir.mkdir', () => this.#dir.mkdir(path));
  }
  rename(from: unknown, to: unknown) {
    return guarded(this.#audit, 'dir.rename', () => this.#dir.rename(from, to));
  }
  /** A capability for a subdirectory (the membrane that wrapped this one wraps it too). */
  directory(path: unknown): Promise<DirectoryApi> {
    return guarded(this.#audit, 'dir.directory', async () => new DirectoryCap(await this.#dir.directory(path), this.#audit));
  }
}

/** The worker's fetcher from egress (asked for again if egress restarts), behind a local object the membrane can revoke. */
export class FetchCap extends RpcTarget implements FetcherApi {
  readonly #fetcher: () => Promise<RpcStub<FetcherApi>>;
  constructor(fetcher: () => Promise<RpcStub<FetcherApi>>) {
    super();
    this.#fetcher = fetcher;
  }
  async fetch(request: unknown): Promise<FetchResponse> {
    return (await (await this.#fetcher()).fetch(request as never)) as FetchResponse;
  }
}

/** The worker's Cache API in egress (asked for again if egress restarts), behind a local object the membrane can revoke. */
export class CacheCap extends RpcTarget implements CacheApi {
  readonly #cache: () => Promise<RpcStub<CacheApi>>;
  constructor(cache: () => Promise<RpcStub<CacheApi>>) {
    super();
    this.#cache = cache;
  }
  async match(name: unknown, url: unknown, headers: unknown) {
    return (await (await this.#cache()).match(name as never, url as never, headers as never)) as Awaited<ReturnType<CacheApi['match']>>;
  }
  async put(name: unknown, url: unknown, headers: unknown, response: unknown): Promise<boolean> {
    return (await (await this.#cache()).put(name as never, url as never, headers as never, response as never)) as boolean;
  }
  async delete(name: unknown, url: unknown): Promise<boolean> {
    return (await (await this.#cache()).delete(name as never, url as never)) as boolean;
  }
}

export interface GrantOptions {
  storageQuotaBytes?: number;
  directoryQuotaBytes?: number;
  /** A worker's capability call was refused (a quarantine signal). */
  onRefused?: (workerId: string) => void;
  /** env.<BINDING> for a workflow of the worker's tenant. */
  workflow?: (tenant: string, workflow: string) => WorkflowsApi;
}

/** Opens each worker's resources once and hands out membrane-wrapped capabilities for them. */
export class Grants {
  readonly #root: string;
  readonly #auditLog: AuditLog;
  readonly #opts: Required<Omit<GrantOptions, 'onRefused' | 'workflow'>>;
  readonly #onRefused: (workerId: string) => void;
  readonly #workflow: GrantOptions['workflow'];
  readonly #membranes = new Map<string, Membrane>();
  readonly #databases = new Map<string, WorkerDatabase>();
  readonly #directories = new Map<string, Promise<WorkerDirectory>>();

  readonly #egress: EgressLink;

  constructor(root: string, audit: AuditLog, egress: EgressLink, opts: GrantOptions = {}) {
    this.#root = root;
    this.#egress = egress;
    this.#auditLog = audit;
    this.#opts = { storageQuotaBytes: opts.storageQuotaBytes ?? LIMITS.defaultQuotaBytes, directoryQuotaBytes: opts.directoryQuotaBytes ?? 1024 * 1024 * 1024 };
    this.#onRefused = opts.onRefused ?? (() => {});
    this.#workflow = opts.workflow;
  }

  /** `workerId` is `<tenant>/<name>`, both validated names, so the path below cannot leave the root. */
  async grant(bundle: WorkerBundle, actor: string): Promise<Record<string, StorageApi | DirectoryApi | FetcherApi | WorkflowsApi | CacheApi>> {
    const { workerId, bindings } = bundle;
    let membrane = this.#membranes.get(workerId);
    if (!membrane) this.#membranes.set(workerId, (membrane = new Membrane()));
    const audit: Audit = (action, error) => {
      this.#auditLog.append({ actor, action: `capability.${action}`, target: workerId, outcome: 'denied', detail: { reason: error.message.slice(0, 300) } });
      this.#onRefused(workerId);
    };
    const base = join(this.#root, ...workerId.split('/'));
    const out: Record<string, StorageApi | DirectoryApi | FetcherApi | WorkflowsApi | CacheApi> = {};
    // Every worker gets a fetcher bound to its own identity, and its Cache API, from whichever egress is connected.
    const policy = { origins: bundle.origins ?? [], allowHosts: bundle.egress?.allowHosts ?? [], denyHosts: bundle.egress?.denyHosts ?? [], denyCidrs: bundle.egress?.denyCidrs ?? [] };
    out[FETCH_HANDLE] = membrane.wrap(new FetchCap(this.#egress.lazy(async (e) => (await e.fetcherFor(workerId, policy)) as unknown as RpcStub<FetcherApi>)));
    out[CACHE_HANDLE] = membrane.wrap(new CacheCap(this.#egress.lazy(async (e) => (await e.cacheFor(workerId)) as unknown as RpcStub<CacheApi>)));
    for (const b of bindings) {
      const id = `${workerId}:${b.type}:${b.name}`;
      if (b.type === 'workflow') {
        if (this.#workflow) out[b.name] = membrane.wrap(this.#workflow(workerId.split('/')[0]!, b.workflow!) as never);
      } else if (b.type === 'storage') {
        let db = this.#databases.get(id);
        if (!db) {
          mkdirSync(join(base, 'storage'), { recursive: true, mode: 0o700 });
          this.#databases.set(id, (db = new WorkerDatabase(join(base, 'storage', `${b.name}.sqlite`), this.#opts.storageQuotaBytes)));
        }
        out[b.name] = membrane.wrap(new StorageCap(db, audit));
      } else {
        let dir = this.#directories.get(id);
        if (!dir) this.#directories.set(id, (dir = WorkerDirectory.open(join(base, 'directories', b.name), this.#opts.directoryQuotaBytes)));
        out[b.name] = membrane.wrap(new DirectoryCap(await dir, audit));
      }
    }
    this.#auditLog.append({ actor, action: 'capability.grant', target: workerId, outcome: 'ok', detail: { bindings: bindings.map((b) => `${b.type}:${b.name}`), fetch: true } });
    return out;
  }

  /** Revoke every capability handed out for a worker (delete, quarantine). */
  revoke(workerId: string, reason: string): void {
    this.#membranes.get(workerId)?.revoke(reason);
    this.#membranes.delete(workerId);
  }

  close(): void {
    for (const db of this.#databases.values()) db.close();
  }
}
