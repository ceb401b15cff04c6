/**
 * Forwards a worker's capability calls from its isolate to the supervisor's capability stubs.
 * Only the methods of each capability kind pass (a stub would accept any name, including capnweb's
 * own `dup`), and a subdirectory capability is kept here under a handle the isolate can name.
 * The session these calls travel on is shared by every worker of the cordon, so what one worker puts
 * on it is bounded here, and a call over a bound is refused to that worker alone: arguments too large
 * for one message, or more calls in flight at once than one worker may have.
 */
import {
  CACHE_HANDLE,
  CACHE_METHODS,
  DIRECTORY_METHODS,
  FETCH_HANDLE,
  FETCH_METHODS,
  SOCKET_HANDLE_PREFIX,
  SOCKET_METHODS,
  STORAGE_ARITY,
  STORAGE_METHODS,
  type OpenedSocket,
} from '../../schemas/capabilities.ts';
import { STEP_METHODS, WORKFLOW_METHODS } from '../../schemas/workflows.ts';
import { OBJECT_NAMESPACE_METHODS, ObjectTarget } from '../../schemas/durable-objects.ts';
import { KV_METHODS } from '../../schemas/kv.ts';
import { D1_METHODS } from '../../schemas/d1.ts';
import { QUEUE_METHODS } from '../../schemas/queues.ts';
import { LOADER_METHODS } from '../../schemas/loaded-cordon.ts';
import { ASSET_METHODS, ASSETS_BINDING_METHODS, ASSETS_HANDLE } from '../../schemas/assets.ts';
import { LOADER_TARGET } from './runtime/abi.ts';
import type { Binding } from '../../schemas/worker.ts';
import type { CapabilityHost, PipePeer } from './runtime/index.ts';
import type { WorkerSocketApi } from '../../schemas/http.ts';
import { openPipe, type PipeTarget } from './pipe-link.ts';
import { DEFAULT_QUOTAS } from '../../lib/rpc/quotas.ts';
import { mib, wireSize } from '../../lib/rpc/wire-size.ts';
import { supervisorCalls } from './call-gate.ts';
import { context } from '@opentelemetry/api';

const MAX_HANDLES = 1000;
/** Socket handles kept at most; past it the oldest goes (egress bounds the sockets open at once far lower). */
const MAX_SOCKET_HANDLES = 256;
/**
 * Arguments of one call, as encoded on the wire: three quarters of a message, the rest left for the
 * envelope. A whole request body (MAX_BODY, 8 MiB, 10.7 MiB as base64) fits.
 */
export const MAX_CALL_BYTES = (DEFAULT_QUOTAS.maxMessage / 4) * 3;

/** Refuse a call whose arguments are too large for one message, naming the call and both sizes. */
export function checkCallSize(what: string, args: unknown[]): void {
  const size = wireSize(args);
  if (size > MAX_CALL_BYTES) throw new RangeError(`${what} arguments are ${mib(size)} as sent; the limit for one call is ${mib(MAX_CALL_BYTES)}`);
}
/** Calls one worker (version) may have in flight; the sandbox's session carries at most 500 for all of them. */
export const MAX_CALLS_IN_FLIGHT = 64;

type Kind = Binding['type'] | 'fetch' | 'cache' | 'socket' | 'asset-parts';
/** Kinds of the worker's own host handles (not bindings it named): untimed, and named by kind in errors. */
const HOST_KINDS: ReadonlySet<Kind> = new Set<Kind>(['fetch', 'cache', 'socket', 'asset-parts']);

const ALLOWED: Record<Kind, readonly string[]> = {
  storage: STORAGE_METHODS,
  directory: DIRECTORY_METHODS,
  workflow: WORKFLOW_METHODS,
  // A service binding is not called method by method: its sessions are carried whole (connect()).
  service: [],
  fetch: FETCH_METHODS,
  cache: CACHE_METHODS,
  socket: SOCKET_METHODS,
  // Served in the sandbox (runtime/worker-loader.ts), unless its Workers run in a loaded cordon: then the supervisor's.
  loader: LOADER_METHODS,
  durable_object: OBJECT_NAMESPACE_METHODS,
  kv: KV_METHODS,
  d1: D1_METHODS,
  queue: QUEUE_METHODS,
  // env.ASSETS is served in the sandbox (assets/server.ts), which reads parts through the supervisor's `$assets`.
  assets: ASSETS_BINDING_METHODS,
  'asset-parts': ASSET_METHODS,
};
/** Capability kinds whose calls carry the worker's time left (after this many arguments, by method). */
const TIMED: Partial<Record<Binding['type'], Record<string, number>>> = {
  storage: STORAGE_ARITY,
  durable_object: { mint: 2, call: 5 },
};

/** The engine's side of one workflow run, as its step calls reach it: only the step methods pass. */
export class StepForwarder implements CapabilityHost {
  readonly #stub: Stub;
  constructor(stub: unknown) {
    this.#stub = stub as Stub;
  }
  async call(_handle: string, method: string, args: unknown[]): Promise<unknown> {
    if (!(STEP_METHODS as readonly string[]).includes(method)) throw new Error(`${method} is not a step method`);
    checkCallSize(`step.${method}`, args);
    return supervisorCalls.run(() => this.#stub[method]!(...args));
  }
}

/**
 * The host's calls in the trace context active now (a request's or a run's span), so the supervisor's
 * spans for them are its children: the isolate's callbacks reach the host outside that context.
 */
export function inTraceContext<H extends CapabilityHost | undefined>(host: H): H {
  if (!host) return host;
  // Plain closures rather than context.bind, whose wrappers cost a few property definitions each (on every request).
  const active = context.active();
  const call: CapabilityHost['call'] = (...args) => context.with(active, host.call, host, ...args);
  // Workers RPC sessions too (a service binding's connect), or the worker's bindings would lose them.
  const connect: CapabilityHost['connect'] = host.connect && ((...args) => context.with(active, host.connect!, host, ...args));
  return (connect ? { call, connect } : { call }) as CapabilityHost as H;
}

type Stub = Record<string, (...args: unknown[]) => Promise<unknown>>;

/** A Durable Object session's target as the isolate names it (`[binding, id, name]`); the id is checked by the supervisor. */
function objectTarget(text: string): [string, string, string | null] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('malformed Durable Object target');
  }
  const parsed = ObjectTarget.safeParse(raw);
  if (!parsed.success) throw new Error('malformed Durable Object target');
  return parsed.data;
}

/** Arguments before `timeLeftMs` of each method of an object's storage. */
const OBJECT_STORAGE_ARITY: Record<string, number> = { ...STORAGE_ARITY, getAlarm: 0, setAlarm: 1 };

/** One hosted Durable Object's storage, as its isolate's calls reach it: only the storage methods pass, with the time left. */
export class ObjectStorageForwarder implements CapabilityHost {
  readonly #stub: Stub;
  #inFlight = 0;
  constructor(stub: unknown) {
    this.#stub = stub as Stub;
  }
  async call(_handle: string, method: string, args: unknown[], timeLeftMs?: number): Promise<unknown> {
    const arity = Object.hasOwn(OBJECT_STORAGE_ARITY, method) ? OBJECT_STORAGE_ARITY[method] : undefined;
    if (arity === undefined) throw new Error(`${method} is not a method of Durable Object storage`);
    const sent = [...Array.from({ length: arity }, (_, i) => args[i]), timeLeftMs];
    checkCallSize(`storage.${method}`, sent);
    if (this.#inFlight >= MAX_CALLS_IN_FLIGHT) throw new Error(`too many storage calls in flight: an object may have ${MAX_CALLS_IN_FLIGHT} at once`);
    this.#inFlight++;
    try {
      return await supervisorCalls.run(() => this.#stub[method]!(...sent));
    } finally {
      this.#inFlight--;
    }
  }
}

export class ForwardedCapabilities implements CapabilityHost {
  readonly #handles = new Map<string, { kind: Kind; stub: Stub }>();
  #sockets = 0;
  #next = 0;
  #inFlight = 0;

  readonly #serveAssets: ((method: string, args: unknown[]) => Promise<unknown>) | undefined;

  /** `serveAssets` answers an `assets` binding's calls here, in the sandbox (nothing of the supervisor's is called for it). */
  constructor(stubs: Record<string, unknown>, bindings: Binding[], serveAssets?: (method: string, args: unknown[]) => Promise<unknown>) {
    this.#serveAssets = serveAssets;
    for (const b of bindings) {
      const stub = stubs[b.name];
      if (stub) this.#handles.set(b.name, { kind: b.type, stub: stub as Stub });
      else if (b.type === 'assets' && serveAssets) this.#handles.set(b.name, { kind: 'assets', stub: {} });
    }
    if (stubs[FETCH_HANDLE]) this.#handles.set(FETCH_HANDLE, { kind: 'fetch', stub: stubs[FETCH_HANDLE] as Stub });
    if (stubs[CACHE_HANDLE]) this.#handles.set(CACHE_HANDLE, { kind: 'cache', stub: stubs[CACHE_HANDLE] as Stub });
    if (stubs[ASSETS_HANDLE]) this.#handles.set(ASSETS_HANDLE, { kind: 'asset-parts', stub: stubs[ASSETS_HANDLE] as Stub });
  }

  async call(handle: string, method: string, args: unknown[], timeLeftMs?: number): Promise<unknown> {
    const h = this.#handles.get(handle);
    if (!h) {
      if (handle === FETCH_HANDLE || handle === CACHE_HANDLE)
        throw new Error(
          `${handle === FETCH_HANDLE ? 'fetch' : 'the Cache API'} is not available: this worker has no ${handle.slice(1)} capability (is egress running?)`,
        );
      throw new Error(`no capability ${handle}`);
    }
    const allowed: readonly string[] = ALLOWED[h.kind];
    if (!allowed.includes(method)) throw new Error(`${method} is not a method of this ${h.kind} capability`);
    if (h.kind === 'assets') return this.#serveAssets!(method, args);
    // A storage or object call carries the worker's time left, put here and never taken from the worker's arguments.
    const arity = HOST_KINDS.has(h.kind) ? undefined : TIMED[h.kind as Binding['type']]?.[method];
    if (arity !== undefined) args = [...Array.from({ length: arity }, (_, i) => args[i]), timeLeftMs];
    checkCallSize(`${HOST_KINDS.has(h.kind) ? h.kind : handle.startsWith('#') ? 'directory' : handle}.${method}`, args);
    if (this.#inFlight >= MAX_CALLS_IN_FLIGHT)
      throw new Error(`too many capability calls in flight: a worker may have ${MAX_CALLS_IN_FLIGHT} at once (await some before making more)`);
    this.#inFlight++;
    let result: unknown;
    try {
      result = await supervisorCalls.run(() => h.stub[method]!(...args));
    } finally {
      this.#inFlight--;
    }
    if (h.kind === 'socket' && (method === 'close' || method === 'startTls')) this.#dropSocket(handle);
    if (method === 'connect' || method === 'startTls') return this.#socket(result as OpenedSocket);
    if (method !== 'directory') return result;
    if (this.#handles.size >= MAX_HANDLES) throw new Error(`too many open subdirectory capabilities (limit ${MAX_HANDLES})`);
    const id = `#${++this.#next}`;
    this.#handles.set(id, { kind: 'directory', stub: result as Stub });
    return { $h: id };
  }

  /** A Durable Object's socket the worker returned in its 101: its namespace (binding `handle`) joins it to the browser's end. */
  async attachSocket(handle: string, sid: string, browser: unknown): Promise<WorkerSocketApi> {
    const h = this.#handles.get(handle);
    if (h?.kind !== 'durable_object') throw new Error(`no Durable Object binding ${handle}`);
    return (await supervisorCalls.run(() => h.stub.attachSocket!(sid, browser))) as WorkerSocketApi;
  }

  /**
   * An opened socket: its stub kept here under a handle the isolate names for writes, close and
   * startTls; its bytes (`stream`) go on to the instance, which the isolate pulls them from.
   */
  #socket(opened: OpenedSocket): unknown {
    if (this.#sockets >= MAX_SOCKET_HANDLES) {
      for (const [id, h] of this.#handles) {
        if (h.kind !== 'socket') continue;
        void Promise.resolve(h.stub.close!()).catch(() => {});
        this.#dropSocket(id);
        break;
      }
    }
    const id = `${SOCKET_HANDLE_PREFIX}${++this.#next}`;
    this.#handles.set(id, { kind: 'socket', stub: opened.socket as unknown as Stub });
    this.#sockets++;
    return { ...opened, socket: id };
  }

  #dropSocket(id: string): void {
    const h = this.#handles.get(id);
    if (h?.kind !== 'socket') return;
    this.#handles.delete(id);
    this.#sockets--;
    (h.stub as unknown as Partial<Disposable>)[Symbol.dispose]?.();
  }

  /**
   * Workers RPC: a session to the worker service binding `target` names, or (a JSON target) to a Durable
   * Object of a namespace binding; the supervisor finds the callee and checks the grant or the id. Or,
   * `LOADER_TARGET` and JSON `[binding, …]`, to a Worker that loader binding loaded in its loaded cordon.
   */
  async connect(target: string, toIsolate: PipePeer): Promise<PipePeer> {
    let open: (stub: Stub, mine: PipeTarget) => Promise<unknown>;
    let h: { kind: string; stub: Stub } | undefined;
    if (target.startsWith(LOADER_TARGET)) {
      const json = target.slice(LOADER_TARGET.length);
      const binding = loaderBinding(json);
      h = this.#handles.get(binding);
      if (h?.kind !== 'loader') throw new Error(`no Worker Loader binding ${binding}`);
      open = (stub, mine) => stub.connect!(json, mine);
    } else if (target.startsWith('[')) {
      const [binding, id, name] = objectTarget(target);
      h = this.#handles.get(binding);
      if (h?.kind !== 'durable_object') throw new Error(`no Durable Object binding ${binding}`);
      open = (stub, mine) => stub.connect!(id, name, mine);
    } else {
      h = this.#handles.get(target);
      if (h?.kind !== 'service') throw new Error(`no service binding ${target}`);
      open = (stub, mine) => stub.connect!(mine);
    }
    const stub = h.stub;
    return openPipe(toIsolate, (mine) => open(stub, mine));
  }
}

/** The binding a loaded Worker's target (JSON `[binding, token, entrypoint, props]`) names, or '' when malformed. */
function loaderBinding(json: string): string {
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) && typeof parsed[0] === 'string' ? parsed[0] : '';
  } catch {
    return '';
  }
}
