/**
 * The Durable Objects this sandbox process holds, as the supervisor grants them: each object lives in
 * the isolate of the worker version the call names, with the fenced storage capability that came with
 * its lease. A call under a newer lease (a higher fence) or for a newer version replaces the instance;
 * an object idle for `idleMs` is evicted (its storage stays with the supervisor). An object whose
 * lease moved elsewhere is dropped when the supervisor says so (`drop`), or replaced by its next call;
 * a stale instance can do no harm meanwhile: its storage refuses every call (the fence).
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import { CodeKey, type WorkerBundle } from '../../schemas/worker.ts';
import { ClassName } from '../../schemas/workflows.ts';
import { MAX_OBJECT_PAYLOAD, ObjectIdHex, ObjectName, type ObjectHost, type ObjectSocketEvent, type ObjectStorageApi } from '../../schemas/durable-objects.ts';
import type { RpcPipe } from '../../schemas/service-bindings.ts';
import { ObjectFacets } from './facets.ts';
import { ObjectSocketsForwarder } from './object-sockets.ts';
import { entryHooks, type SandboxDeps } from './port.ts';
import { WorkerError, type PipePeer } from './runtime/index.ts';
import { PipeTarget, remotePipe } from './pipe-link.ts';

const Address = z.object({ codeKey: CodeKey, className: ClassName, id: ObjectIdHex, name: ObjectName.nullable(), fence: z.number().int().min(1) });
const Kind = z.enum(['fetch', 'rpc', 'alarm', 'websocket']);
const Method = z.string().min(1).max(256);
const Payload = z.string().max(MAX_OBJECT_PAYLOAD);

interface Live {
  fence: number;
  storage: RpcStub<ObjectStorageApi>;
  /** Its storage, with its facets served here (facets.ts). */
  forwarder: ObjectFacets;
  sockets: ObjectSocketsForwarder;
  bundle: WorkerBundle;
  lastUsed: number;
  active: number;
}

export class ObjectHostTarget extends RpcTarget implements ObjectHost {
  readonly #deps: SandboxDeps;
  readonly #live = new Map<string, Live>();
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout;

  constructor(deps: SandboxDeps, idleMs: number) {
    super();
    this.#deps = deps;
    this.#idleMs = idleMs;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(10_000, Math.max(100, idleMs / 4))).unref();
  }

  async call(addressArg: unknown, storage: RpcStub<ObjectStorageApi>, kindArg: unknown, methodArg: unknown, payloadArg: unknown): Promise<string> {
    const a = check(Address, addressArg, 'object address');
    const kind = check(Kind, kindArg, 'call kind');
    const method = check(Method, methodArg, 'method');
    const payload = check(Payload, payloadArg, 'payload');
    const { bundle, capabilities, key, live } = await this.#entry(a, storage);
    live.active++;
    live.lastUsed = Date.now();
    const leave = this.#deps.recorder.enter(bundle.workerId);
    try {
      // An event of a facet's socket: the facet's, through this object's facets (facets.ts).
      const facet = kind === 'websocket' ? (JSON.parse(payload) as ObjectSocketEvent).facet : undefined;
      if (facet) return await live.forwarder.event(facet, method, payload);
      return await this.#deps.runtime.objectCall(
        bundle,
        { key, className: a.className, id: a.id, name: a.name, storage: live.forwarder, sockets: live.sockets },
        { kind, method, payload },
        entryHooks(this.#deps, a.codeKey, capabilities),
      );
    } catch (e) {
      // The isolate went (a broken limit): so did the object's instance.
      if (e instanceof WorkerError) this.#drop(key);
      throw e instanceof WorkerError ? new Error(e.detail === e.message ? e.message : `${e.message}: ${e.detail}`) : e;
    } finally {
      if (kind === 'websocket' && method === 'close') live.sockets.closed((JSON.parse(payload) as { socket: { sid: string } }).socket.sid);
      leave();
      live.active--;
      live.lastUsed = Date.now();
    }
  }

  /**
   * A Workers RPC session to the object (a stub's RPC methods), served by its one instance here
   * (runner.ts serve() does the same for an entrypoint). The object counts as busy (never evicted for
   * idleness) while a session is open. When the instance goes (moved, replaced), calls in flight on
   * its sessions get their own answers (a stale write refused by the fence), and the next call on one
   * ends that session in the isolate (bootstrap/durable-objects.ts target), so no caller reaches a
   * replaced instance; the caller's stub reconnects, to the new one.
   */
  async serve(addressArg: unknown, storage: RpcStub<ObjectStorageApi>, caller: RpcStub<RpcPipe>): Promise<RpcPipe> {
    const a = check(Address, addressArg, 'object address');
    if (typeof caller?.dup !== 'function') throw new TypeError('caller must be a capability');
    // Params are released when this call returns: the caller's end is kept for the session's life.
    const callerEnd = caller.dup();
    let open = false;
    try {
      const { bundle, capabilities, key, live } = await this.#entry(a, storage);
      let end: PipePeer | undefined;
      open = true;
      const ended = (reason: string) => {
        if (!open) return;
        open = false;
        live.active--;
        live.lastUsed = Date.now();
        toCaller.close(reason);
        end?.close(reason);
      };
      const toCaller = remotePipe(callerEnd, ended);
      live.active++;
      // Either end closing ends the session (and releases the object for idle eviction).
      const peer: PipePeer = { send: (m) => toCaller.send(m), close: ended };
      const leave = this.#deps.recorder.enter(bundle.workerId);
      try {
        end = await this.#deps.runtime.serveObject(
          bundle,
          { key, className: a.className, id: a.id, name: a.name, storage: live.forwarder, sockets: live.sockets },
          peer,
          entryHooks(this.#deps, a.codeKey, capabilities),
        );
      } catch (e) {
        ended('not served');
        if (e instanceof WorkerError) this.#drop(key);
        throw e instanceof WorkerError ? new Error(e.detail === e.message ? e.message : `${e.message}: ${e.detail}`) : e;
      } finally {
        leave();
      }
      const toObject = end;
      return new PipeTarget({ send: (m) => toObject.send(m), close: ended });
    } catch (e) {
      if (!open) callerEnd[Symbol.dispose]();
      throw e;
    }
  }

  /** The object's entry here under this lease, made on first use; a newer lease (fence) or version replaces it. */
  async #entry(a: z.infer<typeof Address>, storage: RpcStub<ObjectStorageApi>) {
    if (typeof (storage as { dup?: unknown } | null)?.dup !== 'function') throw new TypeError('storage must be a capability');
    const { bundle, capabilities } = await this.#deps.bundles.get(a.codeKey);
    if (!(bundle.objectClasses ?? []).includes(a.className)) throw new Error(`${a.className} is not a Durable Object class of ${bundle.workerId}`);
    const key = `${bundle.workerId}:${a.className}:${a.id}`;
    let live = this.#live.get(key);
    if (live && (live.fence !== a.fence || live.bundle.version !== bundle.version)) {
      this.#drop(key);
      live = undefined;
    }
    if (!live) {
      const kept = storage.dup();
      const hooks = entryHooks(this.#deps, a.codeKey, capabilities);
      const runtime = this.#deps.runtime;
      const facets = new ObjectFacets(kept, key, null, {
        call: (place, object, call) => runtime.facetCall(bundle, place, object, call, hooks),
        drop: (place, facetKey) => runtime.facetDrop(bundle, place, facetKey),
        sockets: (place, facetKey) => runtime.facetSockets(bundle, place, facetKey),
        deleted: (facetKey) => runtime.facetDeleted(bundle, facetKey),
        // The supervisor says, in the bundle it serves, whether this worker's loaded Workers run in another cordon.
        remote: bundle.loadedCordon !== undefined,
      });
      const sockets = new ObjectSocketsForwarder(() => kept.sockets());
      live = { fence: a.fence, storage: kept, forwarder: facets, sockets, bundle, lastUsed: Date.now(), active: 0 };
      this.#live.set(key, live);
    }
    return { bundle, capabilities, key, live };
  }

  async ping(): Promise<string[]> {
    return [...this.#live.keys()];
  }

  /** The supervisor says the object left this process, or was deleted. */
  async drop(keyArg: unknown): Promise<void> {
    const key = check(z.string().max(400), keyArg, 'object key');
    this.#drop(key);
    // Its facets' hibernated WebSockets will not wake a loaded Worker here again: the code kept for them goes.
    this.#deps.runtime.objectGone(key);
  }

  /** How many objects live here now (diagnostics, tests). */
  get size(): number {
    return this.#live.size;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    // An object with a plain (server.accept()) WebSocket open stays: its listeners live in the instance.
    for (const [key, l] of this.#live) if (l.active === 0 && l.lastUsed < cutoff && !l.sockets.pinned) this.#drop(key);
  }

  #drop(key: string): void {
    const live = this.#live.get(key);
    if (!live) return;
    this.#live.delete(key);
    live.forwarder.dispose();
    live.sockets.dispose();
    this.#deps.runtime.objectDrop(live.bundle, key);
    live.storage[Symbol.dispose]();
  }

  /** Everything held goes (the supervisor session ended: its capabilities and leases with it). */
  clear(): void {
    for (const key of [...this.#live.keys()]) this.#drop(key);
  }

  dispose(): void {
    clearInterval(this.#sweeper);
    this.clear();
  }
}
