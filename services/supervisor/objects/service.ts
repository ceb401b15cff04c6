/**
 * Durable Objects in the supervisor: ids (ids.ts), the index (registry.ts), placement under leases
 * (placement.ts), and the capabilities a worker and a host get — the namespace behind `env.<BINDING>`,
 * and the fenced storage of one object behind `ctx.storage`.
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { CordonError } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/log.ts';
import {
  FacetName,
  MAX_OBJECT_PAYLOAD,
  ObjectIdHex,
  ObjectName,
  type DurableObjectNamespaceApi,
  type FacetIdentity,
  type FacetRoute,
  type FacetStartup,
  type LoadedFacetPlace,
  type MintedId,
  type ObjectCallKind,
  type ObjectHost,
  type ObjectSocketsApi,
  type ObjectStorageApi,
} from '../../../schemas/durable-objects.ts';
import type { BrowserSocket, WorkerSocketApi } from '../../../schemas/http.ts';
import type { RpcPipe } from '../../../schemas/service-bindings.ts';
import { RelayPipe } from '../service-bindings.ts';
import { StorageCap } from '../capabilities.ts';
import { guarded, type Audit } from '../guarded.ts';
import type { PooledDatabase } from '../sql-pool.ts';
import type { CodeStore } from '../store.ts';
import type { AuditLog } from '../audit.ts';
import { type ObjectIds, namespaceOf } from './ids.ts';
import type { ObjectRegistry, ObjectRow } from './registry.ts';
import { Placement } from './placement.ts';
import { AlarmScheduler } from './alarms.ts';
import { facetSuffix } from './facets.ts';
import { LoadedFacets, type LoadedHost } from './loaded-facets.ts';
import { ObjectSockets } from './websockets.ts';
import { ObjectSessions } from './sessions.ts';
import { ClassName } from '../../../schemas/workflows.ts';

/** What an object's storage capability may do with its facets' storage. */
interface FacetStorage {
  open(name: unknown, startup?: unknown): Promise<ObjectStorageCap>;
  delete(name: unknown): Promise<void>;
  clone(src: unknown, dst: unknown): Promise<void>;
  /** A call on facet `name` of a class loaded in the worker's loaded cordon, run there (loaded-facets.ts). */
  inLoaded(name: string, place: LoadedFacetPlace, facet: FacetIdentity, call: { kind: ObjectCallKind; method: string; payload: string }): Promise<string>;
  /** Facet `name`'s instance in the loaded cordon goes, and its storage there is revoked. */
  dropLoaded(name: string): void;
}

const Method = z.string().min(1).max(256);
const Payload = z.string().max(MAX_OBJECT_PAYLOAD);
const TimeLeft = z.number().int().min(0).optional();
/** A tenant may call fetch or an RPC method; alarm() is the supervisor's to call. */
const TenantKind = z.enum(['fetch', 'rpc']);
const AlarmTime = z.number().int().min(0).max(8.64e15).nullable();
/** A facet of a loaded class, as its parent's holder names it (the supervisor checks the binding is the worker's). */
const Place = z.strictObject({
  binding: z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/, 'a binding name'),
  token: z
    .string()
    .regex(/^(id|anon):/, 'a Dynamic Worker token')
    .max(300),
});
const Identity = z.strictObject({ className: ClassName.or(z.literal('default')), id: ObjectIdHex, name: ObjectName.nullable() });
/** A parent calls its facets as a tenant calls an object: fetch or an RPC method. */
const FacetKind = z.enum(['fetch', 'rpc', 'websocket']);
const Startup = Identity.extend({ binding: Place.shape.binding.nullable(), token: Place.shape.token.nullable() });

/** An object's key: `<tenant>/<worker>:<class>:<id>` (also the host's key for its instance). */
export function objectKey(workerId: string, className: string, id: string): string {
  return `${workerId}:${className}:${id}`;
}
function parseKey(key: string): { workerId: string; className: string; id: string } {
  const [workerId, className, id] = key.split(':') as [string, string, string];
  return { workerId, className, id };
}

export interface ObjectsDeps {
  ids: ObjectIds;
  registry: ObjectRegistry;
  store: CodeStore;
  audit: AuditLog;
  /** One object's database, or with a suffix (objects/facets.ts) one of its facets' (Grants.objectDatabase). */
  database(workerId: string, className: string, id: string, facet?: string): PooledDatabase & { fresh?: boolean; file?: string };
  /** The facet suffixes stored for an object under one ('': all of them), itself included (Grants.objectFacets). */
  facets(workerId: string, className: string, id: string, under?: string): string[];
  leaseMs: number;
  log: Logger;
  /** A worker created an object (its first call) or a facet (its database's first use): counted and audited with the worker's other creations. */
  created?(workerId: string, kind: 'durable-object' | 'facet'): void;
  /** WebSockets one object, and all of one tenant's objects, may hold open. */
  webSockets?: { perObject: number; perTenant: number };
  /**
   * The loaded cordon's process holding Worker `token` of loader `binding` of worker `workerId` now, if that
   * worker's loaded Workers run in a loaded cordon (loaded-cordon.ts loadedHost).
   */
  loadedHost?(workerId: string, binding: string, token: string): LoadedHost | undefined;
}

/** One object's storage for the sandbox holding its lease: every call checks the lease's fence first. */
class ObjectStorageCap extends StorageCap implements ObjectStorageApi {
  readonly #fence: () => void;
  readonly #audit: Audit;
  readonly #alarm: { get(): number | null; set(time: number | null): void };
  readonly #facets: FacetStorage;
  readonly #sockets: () => ObjectSocketsApi;
  constructor(
    db: PooledDatabase,
    audit: Audit,
    maxMs: number,
    workerId: string,
    fence: () => void,
    alarm: { get(): number | null; set(time: number | null): void },
    facets: FacetStorage,
    sockets: () => ObjectSocketsApi,
  ) {
    super(db, audit, maxMs, workerId, fence);
    this.#fence = fence;
    this.#audit = audit;
    this.#alarm = alarm;
    this.#facets = facets;
    this.#sockets = sockets;
  }
  sockets(): ObjectSocketsApi {
    this.#fence();
    return this.#sockets();
  }
  facet(name: unknown, startup?: unknown): Promise<ObjectStorageCap> {
    return guarded(this.#audit, 'storage.facet', () => {
      this.#fence();
      return this.#facets.open(name, startup);
    });
  }
  deleteFacet(name: unknown): Promise<void> {
    return guarded(this.#audit, 'storage.deleteFacet', async () => {
      this.#fence();
      await this.#facets.delete(name);
    });
  }
  cloneFacet(src: unknown, dst: unknown): Promise<void> {
    return guarded(this.#audit, 'storage.cloneFacet', async () => {
      this.#fence();
      await this.#facets.clone(src, dst);
    });
  }
  facetIn(name: unknown, place: unknown, facet: unknown, kind: unknown, method: unknown, payload: unknown): Promise<string> {
    return guarded(this.#audit, 'storage.facetIn', () => {
      this.#fence();
      return this.#facets.inLoaded(check(FacetName, name, 'facet name'), check(Place, place, 'facet place'), check(Identity, facet, 'facet'), {
        kind: check(FacetKind, kind, 'call kind'),
        method: check(Method, method, 'method'),
        payload: check(Payload, payload, 'payload'),
      });
    });
  }
  dropFacet(name: unknown): Promise<void> {
    return guarded(this.#audit, 'storage.dropFacet', async () => {
      this.#fence();
      this.#facets.dropLoaded(check(FacetName, name, 'facet name'));
    });
  }
  getAlarm(_timeLeftMs?: unknown): Promise<number | null> {
    return guarded(this.#audit, 'storage.getAlarm', () => {
      this.#fence();
      return this.#alarm.get();
    });
  }
  setAlarm(time: unknown, _timeLeftMs?: unknown): Promise<void> {
    return guarded(this.#audit, 'storage.setAlarm', () => {
      this.#fence();
      this.#alarm.set(check(AlarmTime, time, 'alarm time'));
    });
  }
}

export class DurableObjects {
  readonly #deps: ObjectsDeps;
  readonly placement: Placement<ObjectStorageCap>;
  readonly #alarms: AlarmScheduler;
  readonly sockets: ObjectSockets;
  readonly #loaded: LoadedFacets;
  readonly #routes: FacetRoutes;
  readonly #sessions = new ObjectSessions();
  readonly #versionFacts = new Map<string, { loaders: Set<string>; classes: string[] }>();

  constructor(deps: ObjectsDeps) {
    this.#deps = deps;
    this.#loaded = new LoadedFacets(deps.log);
    // A socket's events are calls like any other, through the lease (so they wake an evicted object).
    this.sockets = new ObjectSockets({
      deliver: (key, event, timeoutMs) => {
        // A facet's socket: the event goes to its object, which hands it to the facet.
        const route = this.#routes.get(key);
        const { workerId, className, id } = parseKey(route?.object ?? key);
        const payload = JSON.stringify(route ? { ...event, facet: route.route } : event);
        const call = this.call(workerId, className, id, null, 'websocket', event.type, payload);
        return timeoutMs === null ? call : withTimeout(call, timeoutMs, 'the WebSocket event handler did not finish within its event timeout');
      },
      perObject: deps.webSockets?.perObject ?? 32_768,
      perTenant: deps.webSockets?.perTenant ?? 100_000,
      log: deps.log,
    });
    this.#routes = new FacetRoutes((key) => this.sockets.count(key) > 0);
    // alarm() is called as any call is, through the object's lease; '!' starts a thrown error (schemas/durable-objects.ts).
    this.#alarms = new AlarmScheduler(
      deps.registry,
      async (t, info) => {
        const out = await this.call(t.workerId, t.className, t.id, t.name, 'alarm', 'alarm', JSON.stringify(info));
        if (out.startsWith('!')) throw new Error('alarm() threw');
      },
      deps.log,
    );
    this.placement = new Placement<ObjectStorageCap>({
      leaseMs: deps.leaseMs,
      log: deps.log,
      nextFence: (key) => {
        const { workerId, className, id } = parseKey(key);
        return deps.registry.grant(workerId, className, id);
      },
      storageFor: (key, fence) => this.#storage(key, fence, '', undefined),
      created: (key) => deps.created?.(parseKey(key).workerId, 'durable-object'),
      ended: (key, fence, why) => {
        this.#loaded.drop(key, '', "the facet's parent object's lease ended");
        this.#sessions.end(key, fence, why);
      },
    });
  }

  /**
   * The storage of object `key` (or, with a suffix, of one of its facets) under lease `fence`; `route`: how a
   * facet of the object itself is reached and started again, for its WebSockets' events.
   */
  #storage(key: string, fence: number, facet: string, route: FacetRoute | undefined): ObjectStorageCap {
    const { workerId, className, id } = parseKey(key);
    const audit: Audit = (action, error) =>
      this.#deps.audit.append({
        actor: 'object',
        action: `capability.${action}`,
        target: workerId,
        outcome: 'denied',
        detail: { object: `${className}:${id}${facet}`, reason: error.message.slice(0, 300) },
      });
    const fenced = () => {
      if (!this.placement.holds(key, fence))
        throw new CordonError(`this Durable Object's lease has moved on (fence ${fence} is stale): the call was refused and nothing was written`, {
          status: 409,
          refusal: true,
        });
    };
    const worker = this.#deps.store.worker(workerId);
    const wallMs = (worker && this.#deps.store.bundleForKey(worker.codeKey)?.bundle.limits.wallMs) || 30_000;
    // A facet has no alarm of its own in Cordon (docs/durable-objects.md, "Facets").
    const alarm =
      facet === ''
        ? {
            get: () => this.#deps.registry.getAlarm(workerId, className, id),
            set: (time: number | null) => {
              this.#deps.registry.setAlarm(workerId, className, id, time);
              if (time !== null && time <= Date.now() + 250) setImmediate(() => this.#alarms.tick());
            },
          }
        : {
            get: () => null,
            set: () => {
              throw new CordonError('a facet has no alarm of its own in Cordon: set the alarm on its parent object', { status: 400 });
            },
          };
    const facets: FacetStorage = {
      open: async (name, startup) => {
        const suffix = facetSuffix(facet, name);
        const started = startup === undefined ? undefined : this.#checkStartup(workerId, id, check(Startup, startup, 'facet startup'));
        const db = this.#deps.database(workerId, className, id, suffix);
        if (db.fresh) {
          // Made now (not at its first write), so it is counted once.
          await db.call('databaseSize', [], Date.now() + 30_000);
          this.#deps.created?.(workerId, 'facet');
        }
        return this.#storage(key, fence, suffix, facet === '' && started ? { facet: name as string, startup: started } : undefined);
      },
      delete: async (name) => {
        const under = facetSuffix(facet, name);
        this.#loaded.drop(key, under, 'the facet was deleted');
        for (const socketsOf of this.#routes.under(key + under)) this.sockets.dropObject(socketsOf, 1001, 'the facet was deleted');
        for (const s of this.#deps.facets(workerId, className, id, under))
          await this.#deps.database(workerId, className, id, s).call('deleteAll', [], Date.now() + 30_000);
      },
      // workerd's cloneFacet: `dst`'s subtree becomes a copy of `src`'s (what dst had beyond it is wiped).
      clone: async (src, dst) => {
        const from = facetSuffix(facet, src);
        const to = facetSuffix(facet, dst);
        if (from === to) return;
        this.#loaded.drop(key, to, 'Facet was cloned-over');
        const copied = new Set<string>();
        for (const s of this.#deps.facets(workerId, className, id, from)) {
          const target = to + s.slice(from.length);
          const db = this.#deps.database(workerId, className, id, target);
          await db.call('copyFrom', [this.#deps.database(workerId, className, id, s).file], Date.now() + 30_000);
          if (db.fresh) this.#deps.created?.(workerId, 'facet');
          copied.add(target);
        }
        for (const s of this.#deps.facets(workerId, className, id, to))
          if (!copied.has(s)) await this.#deps.database(workerId, className, id, s).call('deleteAll', [], Date.now() + 30_000);
      },
      inLoaded: (name, place, identity, call) => {
        // A Dynamic Worker has no Worker Loader: only the root object's code names a loaded class (sandbox/facets.ts).
        if (facet !== '')
          throw new CordonError('a facet class from a Worker Loader can only be used by an object of the worker that loaded it', {
            status: 403,
            refusal: true,
          });
        // Checked on each call: its identity goes to the loaded cordon's process with it.
        this.#checkStartup(workerId, id, { ...place, ...identity });
        const host = this.#deps.loadedHost?.(workerId, place.binding, place.token);
        if (!host)
          throw new CordonError(`${workerId} has no Worker Loader binding ${place.binding} whose Workers run in a loaded cordon now; call the facet again`, {
            status: 409,
          });
        const suffix = facetSuffix(facet, name);
        return this.#loaded.call(key, fence, suffix, host, place, identity, call, () => facets.open(name, { ...place, ...identity }));
      },
      dropLoaded: (name) => this.#loaded.drop(key, facetSuffix(facet, name), 'the facet was aborted'),
    };
    // A facet's sockets are its own (workerd's: its parent's getWebSockets() does not list them); their events
    // go through the parent's lease to the facet, started again from its route if it is not live.
    const sockets = () => {
      if (facet === '') return this.sockets.forObject(key, workerId, className, fenced, audit);
      if (!route)
        throw new CordonError("a facet's own facets cannot accept WebSockets in Cordon: accept them in a facet of the object itself", { status: 400 });
      this.#routes.add(key + facet, key, route);
      return this.sockets.forObject(key + facet, workerId, className, fenced, audit);
    };
    return new ObjectStorageCap(this.#deps.database(workerId, className, id, facet), audit, wallMs, workerId, fenced, alarm, facets, sockets);
  }

  /**
   * How the holder says it started a facet of object `parentId` (kept as the route of the facet's sockets), checked
   * against what the supervisor knows: a loaded class names one of the worker's own Worker Loader bindings, and
   * the facet's `ctx.id` is its parent's or an id minted for one of the worker's own classes. The class itself is
   * looked up in the worker's own code (its isolate, or its Dynamic Worker), so a name cannot reach another's.
   */
  #checkStartup(workerId: string, parentId: string, startup: FacetStartup): FacetStartup {
    const refuse = (why: string) => new CordonError(`a facet's start-up was refused: ${why}`, { status: 403, refusal: true });
    if ((startup.binding === null) !== (startup.token === null)) throw refuse('it names a Worker Loader binding and a Dynamic Worker together, or neither');
    const facts = this.#facts(workerId);
    if (startup.binding !== null && !facts.loaders.has(startup.binding)) throw refuse(`${workerId} has no Worker Loader binding ${startup.binding}`);
    if (startup.id !== parentId && !facts.classes.some((c) => this.#deps.ids.valid(namespaceOf(workerId, c), startup.id)))
      throw refuse("its ctx.id is neither its parent's nor an id of this worker's Durable Object classes");
    return startup;
  }

  /** The current version's loader bindings and Durable Object classes (opening a bundle costs a decryption: kept per version). */
  #facts(workerId: string): { loaders: Set<string>; classes: string[] } {
    const worker = this.#deps.store.worker(workerId);
    if (!worker) throw new CordonError(`worker ${workerId} is not deployed`, { status: 404 });
    let facts = this.#versionFacts.get(worker.codeKey);
    if (!facts) {
      const bundle = this.#deps.store.bundleForKey(worker.codeKey)?.bundle;
      if (!bundle) throw new CordonError(`worker ${workerId} is not deployed`, { status: 404 });
      facts = {
        loaders: new Set(bundle.bindings.flatMap((b) => (b.type === 'loader' ? [b.name] : []))),
        classes: [...new Set([...(bundle.objectClasses ?? []), ...bundle.bindings.flatMap((b) => (b.type === 'durable_object' ? [b.className] : []))])],
      };
      if (this.#versionFacts.size >= MAX_KNOWN_VERSIONS) this.#versionFacts.delete(this.#versionFacts.keys().next().value!);
      this.#versionFacts.set(worker.codeKey, facts);
    }
    return facts;
  }

  /** The capability behind `env.<BINDING>` for class `className` of worker `workerId`. */
  namespace(workerId: string, className: string, audit: Audit): DurableObjectNamespaceApi {
    return new NamespaceCap(this, this.#deps.ids, workerId, className, audit);
  }

  /** A sandbox process offers to host objects of its cordon. */
  addHost(cordon: string, host: RpcStub<ObjectHost>): void {
    this.placement.addHost(cordon, host);
  }

  /** Run one call on an object (id already checked for its namespace), on its lease holder. */
  async call(workerId: string, className: string, id: string, name: string | null, kind: ObjectCallKind, method: string, payload: string): Promise<string> {
    const worker = this.#deps.store.worker(workerId);
    if (!worker) throw new CordonError(`worker ${workerId} is not deployed`, { status: 404 });
    const key = objectKey(workerId, className, id);
    const lease = await this.placement.lease(key, worker.cordon);
    if (lease.fresh) {
      lease.fresh = false;
      if (name !== null) this.#deps.registry.name(workerId, className, id, name);
    }
    return (await lease.host.stub.call(
      { codeKey: worker.codeKey, className, id, name, fence: lease.fence },
      lease.storage as never,
      kind,
      method,
      payload,
    )) as string;
  }

  /**
   * A Workers RPC session to an object (its id already checked for the namespace), served by its lease
   * holder; the supervisor relays without reading. Each side gets a relay of ours (service-bindings.ts
   * RelayPipe), never the other side's capability itself: when caller and holder are one sandbox
   * process they share one session with us, and capnweb hands a capability passed back into the
   * session it came from to its owner as a promise of its own object, whose dup() is broken at once —
   * the holder's end to the caller would be dead before the first answer.
   */
  async connect(workerId: string, className: string, id: string, name: string | null, caller: RpcPipe): Promise<RpcPipe> {
    // Params are released when this call returns: the caller's end is kept for the session's life (taken before any await).
    const callerEnd = new RelayPipe((caller as unknown as RpcStub<RpcPipe>).dup());
    try {
      const worker = this.#deps.store.worker(workerId);
      if (!worker) throw new CordonError(`worker ${workerId} is not deployed`, { status: 404 });
      const key = objectKey(workerId, className, id);
      const lease = await this.placement.lease(key, worker.cordon);
      if (lease.fresh) {
        lease.fresh = false;
        if (name !== null) this.#deps.registry.name(workerId, className, id, name);
      }
      const address = { codeKey: worker.codeKey, className, id, name, fence: lease.fence };
      const holderEnd = new RelayPipe((await lease.host.stub.serve(address, lease.storage as never, callerEnd)) as unknown as RpcStub<RpcPipe>);
      this.#sessions.add(key, lease.fence, [callerEnd, holderEnd]);
      // The lease ended while the holder set the session up: it ends now, as those registered before did.
      if (this.placement.fence(key) !== lease.fence) this.#sessions.end(key, lease.fence, 'it moved while this session opened');
      return holderEnd;
    } catch (e) {
      callerEnd[Symbol.dispose]();
      throw e;
    }
  }

  list(workerId: string, limit?: number, after?: string): (ObjectRow & { live: boolean; sockets: number })[] {
    return this.#deps.registry.list(workerId, limit, after).map((r) => {
      const key = objectKey(workerId, r.className, r.id);
      return { ...r, live: this.placement.holder(key) !== undefined, sockets: this.sockets.count(key) };
    });
  }

  created(workerId: string): number {
    return this.#deps.registry.created(workerId);
  }

  /** Delete an object: its instance goes, its data is wiped, it leaves the index. False if it was never created. */
  async delete(workerId: string, className: string, id: string): Promise<boolean> {
    if (!this.#deps.registry.exists(workerId, className, id)) return false;
    const key = objectKey(workerId, className, id);
    this.placement.release(key, this.#deps.store.worker(workerId)?.cordon);
    this.sockets.dropObject(key);
    for (const socketsOf of this.#routes.under(key)) this.sockets.dropObject(socketsOf);
    // Its facets' databases go with it (they are stored together, docs/durable-objects.md).
    for (const facet of ['', ...this.#deps.facets(workerId, className, id)])
      await this.#deps.database(workerId, className, id, facet).call('deleteAll', [], Date.now() + 30_000);
    return this.#deps.registry.delete(workerId, className, id);
  }

  stop(): void {
    this.sockets.stop();
    this.#alarms.stop();
    this.placement.stop();
  }
}

/** `env.<BINDING>` of one worker for one class: ids of this namespace only, and calls on its objects. */
class NamespaceCap extends RpcTarget implements DurableObjectNamespaceApi {
  readonly #objects: DurableObjects;
  readonly #ids: ObjectIds;
  readonly #workerId: string;
  readonly #className: string;
  readonly #namespace: string;
  readonly #audit: Audit;
  constructor(objects: DurableObjects, ids: ObjectIds, workerId: string, className: string, audit: Audit) {
    super();
    this.#objects = objects;
    this.#ids = ids;
    this.#workerId = workerId;
    this.#className = className;
    this.#namespace = namespaceOf(workerId, className);
    this.#audit = audit;
  }

  /** Refused unless `id` was minted for this namespace (and, with a name, is that name's). */
  #checkId(id: string, name: string | null): void {
    if (!this.#ids.valid(this.#namespace, id))
      throw new CordonError('Invalid Durable Object ID: it was not made by this namespace (an id belongs to one tenant, worker and class)', {
        status: 400,
        refusal: true,
      });
    if (name !== null && !this.#ids.isNamed(this.#namespace, id, name))
      throw new CordonError('Invalid Durable Object ID: the name does not match the id', { status: 400, refusal: true });
  }

  mint(kind: unknown, arg: unknown): Promise<MintedId> {
    return guarded(this.#audit, 'objects.mint', () => {
      const k = check(z.enum(['unique', 'name', 'string']), kind, 'kind');
      if (k === 'unique') return { id: this.#ids.unique(this.#namespace) };
      if (k === 'name') {
        const name = check(ObjectName, arg, 'name');
        return { id: this.#ids.fromName(this.#namespace, name), name };
      }
      const hex = check(z.string().max(200), arg, 'id');
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new CordonError('Invalid Durable Object ID: an id is 64 hex digits', { status: 400 });
      this.#checkId(hex, null);
      return { id: hex };
    });
  }

  call(id: unknown, name: unknown, kind: unknown, method: unknown, payload: unknown, timeLeftMs?: unknown): Promise<string> {
    return guarded(this.#audit, 'objects.call', async () => {
      const hex = check(ObjectIdHex, id, 'id');
      const n = check(ObjectName.nullable(), name, 'name');
      this.#checkId(hex, n);
      const k = check(TenantKind, kind, 'kind');
      const m = check(Method, method, 'method');
      const p = check(Payload, payload, 'payload');
      const left = check(TimeLeft, timeLeftMs, 'timeLeftMs');
      const call = this.#objects.call(this.#workerId, this.#className, hex, n, k, m, p);
      return left === undefined ? call : withTimeout(call, left, "the Durable Object did not answer within the caller's time limit");
    });
  }

  connect(id: unknown, name: unknown, caller: unknown): Promise<RpcPipe> {
    return guarded(this.#audit, 'objects.connect', () => {
      const hex = check(ObjectIdHex, id, 'id');
      const n = check(ObjectName.nullable(), name, 'name');
      this.#checkId(hex, n);
      if (typeof (caller as { dup?: unknown } | null)?.dup !== 'function') throw new CordonError('caller must be a capability', { status: 400, refusal: true });
      return this.#objects.connect(this.#workerId, this.#className, hex, n, caller as RpcPipe);
    });
  }

  attachSocket(sid: unknown, browser: unknown): Promise<WorkerSocketApi> {
    return guarded(this.#audit, 'objects.attachSocket', async () =>
      this.#objects.sockets.attach(this.#workerId, this.#className, sid, browser as BrowserSocket),
    );
  }
}

/**
 * The facets whose sockets are open (or being opened), by the key their sockets are kept under
 * (`<object key><suffix>`): the object they belong to, and their route. At most MAX_ROUTES; past it, those
 * whose sockets have all closed are forgotten.
 */
class FacetRoutes {
  readonly #routes = new Map<string, { object: string; route: FacetRoute }>();
  readonly #open: (key: string) => boolean;
  constructor(open: (key: string) => boolean) {
    this.#open = open;
  }
  add(key: string, object: string, route: FacetRoute): void {
    if (this.#routes.size >= MAX_ROUTES) for (const k of [...this.#routes.keys()]) if (!this.#open(k)) this.#routes.delete(k);
    this.#routes.set(key, { object, route });
  }
  get(key: string): { object: string; route: FacetRoute } | undefined {
    return this.#routes.get(key);
  }
  /** The keys at or below `prefix` (an object's, or a facet's subtree), forgotten. */
  under(prefix: string): string[] {
    const keys = [...this.#routes.keys()].filter((k) => k.startsWith(prefix));
    for (const k of keys) this.#routes.delete(k);
    return keys;
  }
}
const MAX_ROUTES = 16_384;
/** Worker versions whose loader bindings and classes are kept (#facts). */
const MAX_KNOWN_VERSIONS = 1024;

/** `call`, or a 504 once `ms` have passed. */
async function withTimeout<T>(call: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      call,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CordonError(message, { status: 504 })), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
