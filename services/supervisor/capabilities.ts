/**
 * The capabilities behind a worker's bindings. Each object is constructed with exactly one worker's
 * database or directory and nothing else, so no argument can reach another worker's data. Every
 * method checks its arguments here, at the boundary, and every refusal is audited. A worker's
 * grants sit in one membrane, so the supervisor can revoke them all at once.
 */
import { RpcTarget } from 'capnweb';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { check, bytes } from '../../lib/rpc/validate.ts';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, traceAttributes } from '../../lib/telemetry.ts';
import { Membrane } from '../../lib/rpc/membrane.ts';
import {
  CACHE_HANDLE,
  FETCH_HANDLE,
  type CacheApi,
  type DirectoryApi,
  type StorageMethod,
  type FetcherApi,
  type FetchResponse,
  type OpenedSocket,
  type SocketApi,
  type SqlResult,
  type StorageApi,
} from '../../schemas/capabilities.ts';
import type { RpcStub } from 'capnweb';
import type { EgressLink } from './ports.ts';
import type { CoreBinding, WorkerBundle } from '../../schemas/worker.ts';
import type { ServiceBindingApi } from '../../schemas/service-bindings.ts';
import type { LoaderApi } from '../../schemas/loaded-cordon.ts';
import type { GrantedCapability } from '../../schemas/services.ts';
import type { AuditLog } from './audit.ts';
import type { WorkflowsApi } from '../../schemas/workflows.ts';
import type { DurableObjectNamespaceApi } from '../../schemas/durable-objects.ts';
import { LIMITS } from './sql-storage.ts';
import { SqlPool, type PooledDatabase } from './sql-pool.ts';
import { WorkerDirectory } from './directory.ts';
import { type Audit, guarded, PooledDbCap } from './guarded.ts';
import { TenantResources, type TenantResourceLimits } from './tenant-resources.ts';
import { KvCap } from './kv.ts';
import { facetSuffixes, objectBytes } from './objects/facets.ts';
import { D1Cap } from './d1.ts';
import { QueueCap } from './queues.ts';
import { ASSETS_HANDLE, type AssetPartsApi } from '../../schemas/assets.ts';

const Query = z.string().max(LIMITS.statementBytes * 4);
const SqlBindings = z.array(z.union([z.string(), z.number(), z.null(), bytes(LIMITS.valueBytes)])).max(LIMITS.boundParameters);
const Key = z.string().min(1).max(2048);
const Prefix = z.string().max(2048);
const Limit = z.number().int().min(1).max(10_000);
const Value = bytes(LIMITS.valueBytes);

/** `timeLeftMs` as the sandbox sends it; the worker's own wall-time limit bounds it (see StorageCap). */
const TimeLeft = z.number().int().min(0).optional();

/**
 * One worker's database. Its calls run in the SQL pool, each with a deadline: the time the sandbox
 * says the worker has left, never more than `maxMs` (the worker's wall-time limit), so a sandbox
 * that asks for hours, or says nothing, still gets a statement interrupted within one wall limit.
 */
export class StorageCap extends PooledDbCap implements StorageApi {
  readonly #guard: () => void;
  /** `guard` runs before every call and throws to refuse it (a Durable Object's lease fence). */
  constructor(db: PooledDatabase, audit: Audit, maxMs: number, workerId: string, guard: () => void = () => {}) {
    super(db, audit, maxMs, workerId);
    this.#guard = guard;
  }
  #call<T>(action: string, method: StorageMethod, args: () => unknown[], timeLeftMs: unknown): Promise<T> {
    // The span names the operation only: never the query, key or value.
    return this.run(action, (call) => {
      this.#guard();
      return call(method, args(), check(TimeLeft, timeLeftMs, 'timeLeftMs')) as Promise<T>;
    });
  }
  exec(query: unknown, bindings: unknown, timeLeftMs?: unknown): Promise<SqlResult> {
    return this.#call('storage.exec', 'exec', () => [check(Query, query, 'query'), check(SqlBindings, bindings, 'bindings')], timeLeftMs);
  }
  databaseSize(timeLeftMs?: unknown): Promise<number> {
    return this.#call('storage.size', 'databaseSize', () => [], timeLeftMs);
  }
  begin(timeLeftMs?: unknown): Promise<void> {
    return this.#call('storage.begin', 'begin', () => [], timeLeftMs);
  }
  commit(timeLeftMs?: unknown): Promise<void> {
    return this.#call('storage.commit', 'commit', () => [], timeLeftMs);
  }
  rollback(timeLeftMs?: unknown): Promise<void> {
    return this.#call('storage.rollback', 'rollback', () => [], timeLeftMs);
  }
  kvGet(key: unknown, timeLeftMs?: unknown): Promise<Uint8Array | null> {
    return this.#call('kv.get', 'kvGet', () => [check(Key, key, 'key')], timeLeftMs);
  }
  kvPut(key: unknown, value: unknown, timeLeftMs?: unknown): Promise<void> {
    return this.#call('kv.put', 'kvPut', () => [check(Key, key, 'key'), check(Value, value, 'value')], timeLeftMs);
  }
  kvDelete(key: unknown, timeLeftMs?: unknown): Promise<boolean> {
    return this.#call('kv.delete', 'kvDelete', () => [check(Key, key, 'key')], timeLeftMs);
  }
  kvList(prefix: unknown, limit: unknown, timeLeftMs?: unknown): Promise<[string, Uint8Array][]> {
    return this.#call('kv.list', 'kvList', () => [check(Prefix, prefix, 'prefix'), check(Limit, limit, 'limit')], timeLeftMs);
  }
  kvScan(start: unknown, end: unknown, prefix: unknown, reverse: unknown, limit: unknown, timeLeftMs?: unknown): Promise<[string, Uint8Array][]> {
    return this.#call(
      'kv.list',
      'kvScan',
      () => [
        check(Prefix.nullable(), start, 'start'),
        check(Prefix.nullable(), end, 'end'),
        check(Prefix, prefix, 'prefix'),
        check(z.boolean(), reverse, 'reverse'),
        check(Limit, limit, 'limit'),
      ],
      timeLeftMs,
    );
  }
  deleteAll(timeLeftMs?: unknown): Promise<void> {
    return this.#call('storage.deleteAll', 'deleteAll', () => [], timeLeftMs);
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
  fetch(request: unknown): Promise<FetchResponse> {
    // The span is the parent of egress's: the URL stays out of it (it can carry a tenant's tokens).
    return inSpan('fetch', SpanKind.CLIENT, {}, async (span) => {
      const response = (await (await this.#fetcher()).fetch(request as never)) as FetchResponse;
      span.setAttributes(traceAttributes({ status: response.status }));
      return response;
    });
  }
  connect(target: unknown, options: unknown): Promise<OpenedSocket> {
    // As for fetch: the span names no destination.
    return inSpan('connect', SpanKind.CLIENT, {}, async () =>
      relayed((await (await this.#fetcher()).connect(target as never, options as never)) as OpenedSocket),
    );
  }
}

/** A socket egress opened, handed on to the sandbox with its stub behind a relay of ours (startTls's answer relayed again). */
function relayed(opened: OpenedSocket): OpenedSocket {
  return { ...opened, socket: new SocketRelay(opened.socket as RpcStub<SocketApi>) };
}

/**
 * The sandbox's end of a socket in egress. A relay rather than egress's stub passed through: what
 * startTls() answers holds a stream, and capnweb hands a stream on only from a value a method
 * returns, not from a result it forwards.
 */
class SocketRelay extends RpcTarget implements SocketApi {
  readonly #socket: RpcStub<SocketApi>;
  constructor(socket: RpcStub<SocketApi>) {
    super();
    this.#socket = socket;
  }
  async write(data: unknown): Promise<void> {
    await this.#socket.write(data as never);
  }
  async end(): Promise<void> {
    await this.#socket.end();
  }
  async close(): Promise<void> {
    await this.#socket.close();
  }
  async startTls(expectedServerHostname: unknown): Promise<OpenedSocket> {
    return relayed((await this.#socket.startTls(expectedServerHostname as never)) as OpenedSocket);
  }
  [Symbol.dispose](): void {
    this.#socket[Symbol.dispose]();
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
  /** What one Durable Object's database may hold (the storage quota unless given). */
  objectQuotaBytes?: number;
  directoryQuotaBytes?: number;
  /** A worker's capability call was refused (a quarantine signal). */
  onRefused?: (workerId: string) => void;
  /** env.<BINDING> for a workflow of the worker's tenant. */
  workflow?: (tenant: string, workflow: string) => WorkflowsApi;
  /** env.<BINDING> for the Durable Objects of one class of the worker. */
  objects?: (workerId: string, className: string, audit: Audit) => DurableObjectNamespaceApi;
  /** Processes that run tenant SQL at most (see sql-pool.ts). */
  sqlProcesses: number;
  /** bubblewrap, to confine those processes to the tenants' databases (unset: they run unconfined). */
  sqlBwrap?: string;
  /** KV namespaces, D1 databases and queues: each one's quota, and how many a tenant may have. */
  resources?: TenantResourceLimits;
  /** A producer stored messages in a queue of `tenant` (the consumer dispatcher looks at once). */
  queueSent?: (tenant: string, queue: string) => void;
  /** env.<BINDING> for a service binding (service-bindings.ts). */
  service?: (caller: WorkerBundle, binding: CoreBinding, audit: Audit) => ServiceBindingApi;
  /**
   * env.<BINDING> for a worker loader whose Workers run in a loaded cordon (loaded-cordon.ts); undefined:
   * they run in the worker's own process, which serves the binding itself. `wrap`: the worker's membrane.
   */
  loader?: (parent: WorkerBundle, binding: string, fetch: FetcherApi, audit: Audit, wrap: <T extends object>(target: T) => T) => LoaderApi | undefined;
  /** `$assets` for a version with static assets (assets.ts): the bytes its manifest lists. */
  assets?: (bundle: WorkerBundle) => AssetPartsApi;
}

/** A facet's database may always hold this much, whatever its object's other files use (a few pages: its schema). */
const MIN_FACET_QUOTA = 256 * 1024;

/** Opens each worker's resources once and hands out membrane-wrapped capabilities for them. */
export class Grants {
  readonly #root: string;
  readonly #auditLog: AuditLog;
  readonly #opts: Required<
    Omit<GrantOptions, 'onRefused' | 'workflow' | 'objects' | 'sqlProcesses' | 'sqlBwrap' | 'queueSent' | 'resources' | 'service' | 'loader' | 'assets'>
  >;
  /** Set after construction (the objects service needs Grants for its databases). */
  objects: GrantOptions['objects'];
  readonly #queueSent: NonNullable<GrantOptions['queueSent']>;
  readonly #service: GrantOptions['service'];
  readonly #loader: GrantOptions['loader'];
  readonly #assets: GrantOptions['assets'];
  /** KV namespaces, D1 databases and queues: the tenant's, whichever of its workers binds them. */
  readonly resources: TenantResources;
  readonly #onRefused: (workerId: string) => void;
  readonly #workflow: GrantOptions['workflow'];
  readonly #membranes = new Map<string, Membrane>();
  readonly #sql: SqlPool;
  readonly #databases = new Map<string, PooledDatabase>();
  readonly #directories = new Map<string, Promise<WorkerDirectory>>();

  readonly #egress: EgressLink;

  constructor(root: string, audit: AuditLog, egress: EgressLink, opts: GrantOptions) {
    this.#root = root;
    this.#egress = egress;
    this.#auditLog = audit;
    const storageQuotaBytes = opts.storageQuotaBytes ?? LIMITS.defaultQuotaBytes;
    this.#opts = {
      storageQuotaBytes,
      objectQuotaBytes: opts.objectQuotaBytes ?? storageQuotaBytes,
      directoryQuotaBytes: opts.directoryQuotaBytes ?? 1024 * 1024 * 1024,
    };
    this.#onRefused = opts.onRefused ?? (() => {});
    this.#workflow = opts.workflow;
    this.objects = opts.objects;
    this.#service = opts.service;
    this.#loader = opts.loader;
    this.#assets = opts.assets;
    // Every database a tenant has lives under `root`: the one directory its SQL processes may write.
    this.#sql = new SqlPool({ processes: opts.sqlProcesses, confine: opts.sqlBwrap ? { bwrap: opts.sqlBwrap, writable: [root] } : undefined });
    this.#queueSent = opts.queueSent ?? (() => {});
    this.resources = new TenantResources(root, this.#sql, opts.resources ?? { quotaBytes: this.#opts.storageQuotaBytes, perTenant: 100 });
  }

  /** `workerId` is `<tenant>/<name>`, both validated names, so the path below cannot leave the root. */
  async grant(bundle: WorkerBundle, actor: string): Promise<Record<string, GrantedCapability>> {
    const { workerId, bindings } = bundle;
    let membrane = this.#membranes.get(workerId);
    if (!membrane) this.#membranes.set(workerId, (membrane = new Membrane()));
    const audit: Audit = (action, error) => {
      this.#auditLog.append({ actor, action: `capability.${action}`, target: workerId, outcome: 'denied', detail: { reason: error.message.slice(0, 300) } });
      this.#onRefused(workerId);
    };
    const base = join(this.#root, ...workerId.split('/'));
    const out: Record<string, GrantedCapability> = {};
    // Every worker gets a fetcher bound to its own identity, and its Cache API, from whichever egress is connected.
    const policy = {
      origins: bundle.origins ?? [],
      allowHosts: bundle.egress?.allowHosts ?? [],
      denyHosts: bundle.egress?.denyHosts ?? [],
      denyCidrs: bundle.egress?.denyCidrs ?? [],
    };
    const fetch = new FetchCap(this.#egress.lazy(async (e) => (await e.fetcherFor(workerId, policy)) as unknown as RpcStub<FetcherApi>));
    out[FETCH_HANDLE] = membrane.wrap(fetch);
    out[CACHE_HANDLE] = membrane.wrap(new CacheCap(this.#egress.lazy(async (e) => (await e.cacheFor(workerId)) as unknown as RpcStub<CacheApi>)));
    if (bundle.assets && this.#assets) out[ASSETS_HANDLE] = membrane.wrap(this.#assets(bundle) as never);
    const tenant = workerId.split('/')[0]!;
    for (const b of bindings) {
      const id = `${workerId}:${b.type}:${b.name}`;
      // env.ASSETS is served by the sandbox, from `$assets` above.
      if (b.type === 'assets') continue;
      if (b.type === 'loader') {
        // Unless its Workers run in a loaded cordon, the sandbox serves it (services/sandbox/runtime/worker-loader.ts).
        const m = membrane;
        const loader = this.#loader?.(bundle, b.name, fetch, audit, (target) => m.wrap(target));
        if (loader) out[b.name] = membrane.wrap(loader as never);
        continue;
      }
      if (b.type === 'durable_object') {
        if (this.objects) out[b.name] = membrane.wrap(this.objects(workerId, b.className, audit) as never);
      } else if (b.type === 'kv') out[b.name] = membrane.wrap(new KvCap(this.resources.open('kv', tenant, b.resource!), audit, bundle.limits.wallMs, workerId));
      else if (b.type === 'd1') out[b.name] = membrane.wrap(new D1Cap(this.resources.open('d1', tenant, b.resource!), audit, bundle.limits.wallMs, workerId));
      else if (b.type === 'queue')
        out[b.name] = membrane.wrap(
          new QueueCap(
            this.resources.open('queue', tenant, b.resource!),
            audit,
            bundle.limits.wallMs,
            b.deliveryDelay ?? 0,
            () => this.#queueSent(tenant, b.resource!),
            workerId,
          ),
        );
      else if (b.type === 'workflow') {
        if (this.#workflow) out[b.name] = membrane.wrap(this.#workflow(workerId.split('/')[0]!, b.workflow!) as never);
      } else if (b.type === 'service') {
        if (this.#service) out[b.name] = membrane.wrap(this.#service(bundle, b, audit) as never);
      } else if (b.type === 'storage') {
        let db = this.#databases.get(id);
        if (!db) {
          mkdirSync(join(base, 'storage'), { recursive: true, mode: 0o700 });
          this.#databases.set(id, (db = this.#sql.database(join(base, 'storage', `${b.name}.sqlite`), this.#opts.storageQuotaBytes, workerId.split('/')[0]!)));
        }
        out[b.name] = membrane.wrap(new StorageCap(db, audit, bundle.limits.wallMs, workerId));
      } else {
        let dir = this.#directories.get(id);
        if (!dir) this.#directories.set(id, (dir = WorkerDirectory.open(join(base, 'directories', b.name), this.#opts.directoryQuotaBytes)));
        out[b.name] = membrane.wrap(new DirectoryCap(await dir, audit));
      }
    }
    this.#auditLog.append({
      actor,
      action: 'capability.grant',
      target: workerId,
      outcome: 'ok',
      detail: { bindings: bindings.map((b) => `${b.type}:${b.name}`), fetch: true },
    });
    return out;
  }

  /**
   * One Durable Object's database: `<tenant>/<worker>/objects/<class>/<id>.sqlite`, or with `facet` (a
   * suffix from objects/facets.ts) one of its facets', beside it as `<id><facet>.sqlite` (workerd's
   * layout), so an object's files are stored together. A facet's quota is what the object's quota leaves
   * of its other files when the facet's database is opened. `fresh`: the file did not exist yet.
   */
  objectDatabase(workerId: string, className: string, id: string, facet = ''): PooledDatabase & { fresh: boolean; file: string } {
    const dir = join(this.#root, ...workerId.split('/'), 'objects', className);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, `${id}${facet}.sqlite`);
    const quota = facet === '' ? this.#opts.objectQuotaBytes : Math.max(MIN_FACET_QUOTA, this.#opts.objectQuotaBytes - objectBytes(dir, id, `${id}${facet}`));
    return Object.assign(this.#sql.database(file, quota, workerId.split('/')[0]!), { fresh: !existsSync(file), file });
  }

  /** The facet suffixes stored for object `id` under facet `under` ('': all), `under` itself included. */
  objectFacets(workerId: string, className: string, id: string, under = ''): string[] {
    return facetSuffixes(join(this.#root, ...workerId.split('/'), 'objects', className), id, under);
  }

  /** Revoke every capability handed out for a worker (delete, quarantine). */
  revoke(workerId: string, reason: string): void {
    this.#membranes.get(workerId)?.revoke(reason);
    this.#membranes.delete(workerId);
  }

  close(): Promise<void> {
    return this.#sql.close();
  }
}
