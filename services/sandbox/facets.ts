/**
 * The facets of one Durable Object this sandbox process hosts (docs/durable-objects.md, "Facets"). An
 * object's `ctx.facets` calls arrive on its own storage handle as `facet` calls (only an object can make
 * facets, and only its own); everything else on that handle is its storage. A facet is an object of its
 * own: an instance of a class in the isolate that class lives in (a Dynamic Worker the parent loaded, or
 * the parent's own isolate for `ctx.exports.X`), whose storage is the facet's database, which the
 * supervisor hands out under the parent's lease and fence (`storage.facet(name)`). That storage handle is
 * registered in the facet's isolate only, so the parent's code never holds it, and a facet holds no
 * handle of its parent's or a sibling's database: there is nothing to name them with.
 * A facet's own facets are handled the same way, one level down; the supervisor bounds the depth.
 *
 * When the object's worker runs its loaded Workers in a loaded cordon, a facet of a loaded class lives in
 * that cordon's process: its calls go to the supervisor on this object's storage (`facetIn`), which hands
 * that process the facet's storage itself (supervisor/objects/loaded-facets.ts); this process never holds
 * it. RemoteFacets is the other half, in the loaded cordon's process.
 */
import type { RpcStub } from 'capnweb';
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import {
  FacetName,
  MAX_OBJECT_PAYLOAD,
  ObjectIdHex,
  ObjectName,
  type FacetRoute,
  type FacetStartup,
  type ObjectStorageApi,
} from '../../schemas/durable-objects.ts';
import { ClassName } from '../../schemas/workflows.ts';
import { MAX_LOADED_FACETS } from '../../schemas/loaded-cordon.ts';
import { MAX_CALLS_IN_FLIGHT, ObjectStorageForwarder } from './capabilities.ts';
import type { CapabilityHost, FacetPlace, HostedObject } from './runtime/index.ts';
import type { FacetSockets } from './runtime/worker-loader.ts';
import { ObjectSocketsForwarder } from './object-sockets.ts';

/** Where a facet's class is: the isolate that holds this object's code, or a Dynamic Worker of it (binding, loaded id). */
const CallArgs = z.tuple([
  FacetName,
  ClassName.or(z.literal('default')),
  z.string().max(64).nullable(),
  z.string().max(300).nullable(),
  ObjectIdHex,
  ObjectName.nullable(),
  z.enum(['fetch', 'rpc']),
  z.string().min(1).max(256),
  z.string().max(MAX_OBJECT_PAYLOAD),
]);

/** A facet socket's route, as the supervisor sends it with an event (services/supervisor/objects/service.ts). */
const Route = z.strictObject({
  facet: FacetName,
  startup: z.strictObject({
    className: ClassName.or(z.literal('default')),
    binding: z.string().max(64).nullable(),
    token: z.string().max(300).nullable(),
    id: ObjectIdHex,
    name: ObjectName.nullable(),
  }),
});

/** Runs calls on facet instances where their class lives (Runtime.facetCall / facetDrop, bound to the parent's version and hooks). */
export interface FacetRunner {
  call(place: FacetPlace, object: HostedObject, call: { kind: string; method: string; payload: string }): Promise<string>;
  drop(place: FacetPlace, key: string): void;
  /** Loaded classes live in another cordon's process (the worker's loaded cordon): their facets run there. */
  readonly remote: boolean;
  /** A facet of a loaded class tells its Worker of its hibernatable WebSockets (its code is kept while it holds any). */
  sockets?(place: { binding: string; token: string }, key: string): FacetSockets | undefined;
  /** Facet `key` was deleted, its WebSockets with it. */
  deleted?(key: string): void;
}

interface Facet {
  place: FacetPlace;
  className: string;
  stub: RpcStub<ObjectStorageApi>;
  host: ObjectFacets;
  /** Its own WebSockets (the supervisor's, under its parent's lease). */
  sockets: ObjectSocketsForwarder;
  key: string;
}

/** An object's (or a facet's) storage handle with its facets served here. */
export class ObjectFacets implements CapabilityHost {
  readonly #storage: RpcStub<ObjectStorageApi>;
  readonly #forwarder: ObjectStorageForwarder;
  readonly #key: string;
  /** Where this object's own code runs (a facet's facets of `ctx.exports` classes run in the same isolate). */
  readonly #place: FacetPlace;
  readonly #runner: FacetRunner;
  readonly #facets = new Map<string, Promise<Facet>>();
  /** Facets of loaded classes started in the loaded cordon by this instance (their instances there go with this one's). */
  readonly #remote = new Set<string>();
  /** Facet calls of this object in flight: bounded as its storage calls are. */
  #inFlight = 0;

  constructor(storage: RpcStub<ObjectStorageApi>, key: string, place: FacetPlace, runner: FacetRunner) {
    this.#storage = storage;
    this.#forwarder = new ObjectStorageForwarder(storage);
    this.#key = key;
    this.#place = place;
    this.#runner = runner;
  }

  call(handle: string, method: string, args: unknown[], timeLeftMs?: number): Promise<unknown> {
    if (method !== 'facet') return this.#forwarder.call(handle, method, args, timeLeftMs);
    const [op, ...rest] = args;
    if (op === 'call') {
      if (this.#inFlight >= MAX_CALLS_IN_FLIGHT)
        return Promise.reject(new Error(`too many facet calls in flight: an object may have ${MAX_CALLS_IN_FLIGHT} at once`));
      this.#inFlight++;
      return this.#call(rest).finally(() => this.#inFlight--);
    }
    if (op === 'abort') return this.#abort(check(FacetName, rest[0], 'facet name'));
    if (op === 'delete') return this.#delete(check(FacetName, rest[0], 'facet name'));
    if (op === 'clone') return this.#clone(check(FacetName, rest[0], 'facet name'), check(FacetName, rest[1], 'facet name'));
    return Promise.reject(new Error('unknown facet operation'));
  }

  /**
   * An event of one of facet `route.facet`'s WebSockets, from the supervisor through this object's lease: to the
   * facet's live instance, or one started again as its route says (its parent's code is not asked again).
   */
  event(route: FacetRoute, method: string, payload: string): Promise<string> {
    const { facet, startup: s } = check(Route, route, 'facet route');
    return this.#run(facet, s.className, s.binding, s.token, s.id, s.name, 'websocket', method, payload);
  }

  async #call(args: unknown[]): Promise<string> {
    const [name, className, binding, token, id, idName, kind, method, payload] = check(CallArgs, args, 'facet call');
    return this.#run(name, className, binding, token, id, idName, kind, method, payload);
  }

  async #run(
    name: string,
    className: string,
    binding: string | null,
    token: string | null,
    id: string,
    idName: string | null,
    kind: 'fetch' | 'rpc' | 'websocket',
    method: string,
    payload: string,
  ): Promise<string> {
    let place: FacetPlace;
    if (binding === null) place = this.#place;
    else {
      // A Dynamic Worker has no Worker Loader: only the root object's code can name a loaded class.
      if (this.#place !== null || token === null)
        throw new Error('a facet class from a Worker Loader can only be used by an object of the worker that loaded it');
      place = { binding, token };
      if (this.#runner.remote) {
        // Started here before with a class of this worker's own: that instance goes.
        if (this.#facets.has(name)) await this.#abort(name);
        if (!this.#remote.has(name) && this.#remote.size >= MAX_LOADED_FACETS)
          throw new Error(`an object may have ${MAX_LOADED_FACETS} facets of loaded classes started at once: abort some first`);
        this.#remote.add(name);
        return (await this.#storage.facetIn(name, place, { className, id, name: idName }, kind, method, payload)) as string;
      }
    }
    if (this.#remote.delete(name)) await this.#storage.dropFacet(name);
    const startup: FacetStartup = { className, binding: place?.binding ?? null, token: place?.token ?? null, id, name: idName };
    let facet = await this.#open(name, place, startup);
    if (!samePlace(facet.place, place) || facet.className !== className) {
      // Started again with another class (after its parent's instance was reset): the old instance goes, its storage stays.
      await this.#abort(name);
      facet = await this.#open(name, place, startup);
    }
    try {
      return await this.#runner.call(
        facet.place,
        { key: facet.key, className, id, name: idName, storage: facet.host, sockets: facet.sockets },
        { kind, method, payload },
      );
    } finally {
      if (kind === 'websocket' && method === 'close') facet.sockets.closed(closedSid(payload));
    }
  }

  #open(name: string, place: FacetPlace, startup: FacetStartup): Promise<Facet> {
    let facet = this.#facets.get(name);
    if (!facet) {
      facet = (async () => {
        const stub = (await this.#storage.facet(name, startup)) as unknown as RpcStub<ObjectStorageApi>;
        // The key is the parent's and the name, escaped so that no name makes another facet's key.
        const key = `${this.#key}/${encodeURIComponent(name)}`;
        const sockets = new ObjectSocketsForwarder(() => stub.sockets(), place === null ? undefined : this.#runner.sockets?.(place, key));
        return { place, className: startup.className, stub, key, sockets, host: new ObjectFacets(stub, key, place, this.#runner) };
      })();
      this.#facets.set(name, facet);
      facet.catch(() => {
        if (this.#facets.get(name) === facet) this.#facets.delete(name);
      });
    }
    return facet;
  }

  /** The facet's instance (and its own facets') goes; its storage stays. */
  async #abort(name: string): Promise<void> {
    if (this.#remote.delete(name)) await this.#storage.dropFacet(name);
    const facet = this.#facets.get(name);
    if (!facet) return;
    this.#facets.delete(name);
    const f = await facet.catch(() => undefined);
    if (f) this.#dispose(f);
  }

  async #delete(name: string): Promise<void> {
    // The supervisor drops an instance in the loaded cordon itself, before it wipes.
    this.#remote.delete(name);
    await this.#abort(name);
    await this.#storage.deleteFacet(name);
    this.#runner.deleted?.(`${this.#key}/${encodeURIComponent(name)}`);
  }

  /** workerd's clone: `dst` stops ("cloned-over") and its storage becomes a copy of `src`'s. */
  async #clone(src: string, dst: string): Promise<void> {
    this.#remote.delete(dst);
    await this.#abort(dst);
    await this.#storage.cloneFacet(src, dst);
  }

  #dispose(f: Facet): void {
    f.host.dispose();
    f.sockets.dispose();
    this.#runner.drop(f.place, f.key);
    f.stub[Symbol.dispose]();
  }

  /** This object's instance goes (its lease ended, it was evicted): so do its facets', all the way down. */
  dispose(): void {
    const all = [...this.#facets.values()];
    this.#facets.clear();
    // Refused once the lease has moved on: the supervisor dropped them when it ended.
    for (const name of this.#remote) void Promise.resolve(this.#storage.dropFacet(name)).catch(() => {});
    this.#remote.clear();
    for (const facet of all) void facet.then((f) => this.#dispose(f)).catch(() => {});
  }
}

/** The socket a close event is of (the supervisor's payload, schemas/durable-objects.ts ObjectSocketEvent). */
function closedSid(payload: string): string {
  return (JSON.parse(payload) as { socket: { sid: string } }).socket.sid;
}

function samePlace(a: FacetPlace, b: FacetPlace): boolean {
  return a === b || (a !== null && b !== null && a.binding === b.binding && a.token === b.token);
}

/**
 * In a process of a loaded cordon: the facets whose class is one of the Workers held here for parents of
 * other cordons. Each comes with its storage from the supervisor (that facet's only, fenced by its
 * parent's lease, revoked when it ends), kept while its instance lives here; its own facets are of its
 * Worker's classes and run in the same isolate.
 */
export class RemoteFacets {
  readonly #facets = new Map<string, { stub: RpcStub<ObjectStorageApi>; host: ObjectFacets; sockets: ObjectSocketsForwarder; drop: () => void }>();

  /**
   * One call on facet `key` (the supervisor's name for it) in Worker `place` of a parent held here: `storage` is
   * kept on the first call, later ones' are let go. `runner` runs calls in that Worker's isolate.
   */
  async call(
    key: string,
    storage: RpcStub<ObjectStorageApi>,
    place: { binding: string; token: string },
    runner: Omit<FacetRunner, 'remote'>,
    object: { className: string; id: string; name: string | null },
    call: { kind: string; method: string; payload: string },
  ): Promise<string> {
    let facet = this.#facets.get(key);
    if (!facet) {
      if (typeof storage?.dup !== 'function') throw new TypeError('storage must be a capability');
      if (this.#facets.size >= MAX_HOSTED) throw new Error(`this process hosts ${MAX_HOSTED} facets already; retry`);
      const stub = storage.dup();
      const host = new ObjectFacets(stub, key, place, { ...runner, remote: false });
      const sockets = new ObjectSocketsForwarder(() => stub.sockets(), runner.sockets?.(place, key));
      facet = { stub, host, sockets, drop: () => runner.drop(place, key) };
      this.#facets.set(key, facet);
    }
    try {
      return await runner.call(place, { key, ...object, storage: facet.host, sockets: facet.sockets }, call);
    } finally {
      if (call.kind === 'websocket' && call.method === 'close') facet.sockets.closed(closedSid(call.payload));
    }
  }

  /** Facet `key` goes: its instance, its own facets' and its storage. */
  drop(key: string): void {
    const facet = this.#facets.get(key);
    if (!facet) return;
    this.#facets.delete(key);
    facet.host.dispose();
    facet.sockets.dispose();
    facet.drop();
    facet.stub[Symbol.dispose]();
  }
}
/** Facets of other cordons' objects one loaded cordon's process hosts at once. */
const MAX_HOSTED = 65_536;
