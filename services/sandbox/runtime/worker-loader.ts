/**
 * The Worker Loader (Dynamic Workers), on the host side: the `worker_loaders` bindings of one worker
 * (its parent) and the Workers they load. A loaded Worker is an isolate of its own in this sandbox
 * process, made like any other (snapshot, spares) and kept in the runtime's pool under a key of its
 * parent's, so the pool's LRU, memory budget and idle sweep apply to it; its code lives only in
 * memory. It holds nothing but what its code named: its `env` values, stubs of its parent's
 * entrypoints (the props stay here), and its outbound: none, its parent's, or a parent entrypoint
 * every fetch goes through. docs/dynamic-workers.md has each choice.
 *
 * With a loaded cordon (docs/dynamic-workers.md, "A stricter cordon for loaded Workers") the same class
 * plays the two other halves: in the parent's process it checks each load and hands it, and each call,
 * to the supervisor's LoaderApi (`remote`); in a process of the loaded cordon it holds the loaded
 * Workers of a parent it does not run, each reaching back through the link the supervisor gave it.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { type Binding, Limits, ModuleName, type WorkerBundle } from '../../../schemas/worker.ts';
import { SOCKET_HANDLE_PREFIX } from '../../../schemas/capabilities.ts';
import { LOADER_LIMITS, LOADER_TARGET, NO_GLOBAL_OUTBOUND, NO_OUTBOUND_BINDING, OUTBOUND_BINDING, type EntrypointRef, type LoaderCode } from './abi.ts';
import { WorkerError } from './errors.ts';
import type { CapabilityHost, HandledResponse, HostedObject, RequestHooks, WorkerInstance } from './instance.ts';
import { WireRequest } from '../../../schemas/http.ts';
import type { PipePeer } from './rpc-pipes.ts';
import type { LogEntry } from '../../../schemas/services.ts';

/** What the loader needs of the runtime's pool of isolates. */
export interface IsolatePool {
  /** The live instance under `key`, if the pool holds one (not made on demand). */
  held(key: string): WorkerInstance | undefined;
  /** The instance under `key`, made from `bundle` when the pool holds none. */
  instance(key: string, bundle: WorkerBundle): Promise<WorkerInstance>;
  drop(key: string): void;
}

/** What happens to a parent's loaded Workers that the sandbox reports (counted against the parent). */
export interface LoaderEvents {
  created(): void;
  limitHit(kind: 'cpu' | 'memory'): void;
}

export interface LoaderOptions {
  /** Loaded Workers one parent may hold at once. */
  perWorker: number;
  /** Loads one parent may make a second (and at once, in a burst). */
  loadsPerSecond: number;
  /** Bytes of code one parent may keep for Workers whose facets hold hibernatable WebSockets (default: 64 MiB). */
  keptCodeBytes?: number;
}

/**
 * What a facet of a loaded class tells of its hibernatable WebSockets (`ParentLoaders.facetSockets`):
 * while a facet of a Worker holds any, that Worker's code is kept when its isolate is unloaded, so an
 * event can start it again.
 */
export interface FacetSockets {
  /** Before an accept: throws when the Worker's code cannot be kept (keptCodeBytes). */
  accepting(): void;
  /** The accept answered socket `sid` (undefined: it failed). */
  accepted(sid: string | undefined): void;
  closed(sid: string): void;
}

const KEPT_CODE_BYTES = 64 * 1024 * 1024;

/** Loads in progress at once for one parent (each compiles code on this process's threads); more wait their turn. */
const MAX_LOADING = 4;
/** Loads waiting their turn at most per parent; beyond it a load is refused. */
const MAX_WAITING = 256;

const Ref = z.strictObject({ exportName: z.string().min(1).max(256), props: z.string().max(LOADER_LIMITS.envBytes).nullable() });
/** A loaded Worker's entrypoint as its parent names it: id, entrypoint, props (JSON). */
const callee = [z.string().max(LOADER_LIMITS.idLength + 5), z.string().min(1).max(256), z.string().max(LOADER_LIMITS.envBytes).nullable()] as const;
const Callee = z.tuple([...callee]);
/** What a pipe to a loaded Worker names (after LOADER_TARGET): binding, then the callee. */
const Target = z.tuple([z.string().max(64), ...callee]);
/** A parent's fetch() of a loaded Worker (after binding, id, entrypoint, props): the request, no `cf` (the parent's own). */
const FetchRequest = WireRequest.pick({ method: true, url: true, headers: true, body: true }).strict();
const Code = z.strictObject({
  compatibilityDate: z.string().max(64),
  mainModule: ModuleName,
  modules: z
    .array(
      z.strictObject({
        name: ModuleName,
        type: z.enum(['esm', 'cjs', 'text', 'data', 'json', 'wasm']),
        content: z.union([z.string(), z.instanceof(Uint8Array)]),
      }),
    )
    .min(1, 'Dynamic Worker code must contain at least one module.')
    .max(10_000),
  vars: z.record(z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/, 'env names are identifiers'), z.unknown()),
  stubs: z.record(z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/, 'env names are identifiers'), Ref),
  globalOutbound: z.union([z.literal('inherit'), z.null(), Ref]),
  limits: z.strictObject({
    cpuMs: z.number().int().min(1).optional(),
    subRequests: z.number().int().min(1).optional(),
    memoryMb: z.number().int().min(8).optional(),
  }),
});

/** Where a loaded Worker's env stubs, gateway, inherited fetch, log and broken limits lead: its parent. */
export interface ParentSide {
  /** A session into the parent's entrypoint behind env stub `name` (or OUTBOUND_BINDING, the gateway). */
  connect(name: string, toIsolate: PipePeer): Promise<PipePeer>;
  /** `globalOutbound` inherited: a call on the parent's own fetch capability (fetch, connect, a socket it opened). */
  outbound(handle: string, method: string, args: unknown[]): Promise<unknown>;
  log(entries: LogEntry[]): void;
  events: LoaderEvents;
  /** The loaded Worker went (or was never kept): what holds the way back can go. */
  release?(): void;
}

/** The parent as this class needs it: a bundle in its own process, or a RemoteParent's fields in the loaded cordon's. */
type Parent = Pick<WorkerBundle, 'workerId' | 'version' | 'limits'>;

/** A loaded Worker's own: its outbound and the way back into its parent. */
interface Child {
  outbound: 'none' | 'inherit' | 'gateway';
  back: ParentSide;
  /** The socket handles it opened (through its parent's fetch capability). */
  sockets: Set<string>;
  /** What it was made from (in memory only), to make it again while its facets hold WebSockets; and its code's size. */
  bundle: WorkerBundle;
  bytes: number;
  /** Hibernatable WebSockets its facets hold, with the facet's key; and accepts in progress. */
  webSockets: Map<string, string>;
  accepting: number;
}

function codeBytes(code: LoaderCode): number {
  return code.modules.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : m.content.byteLength), 0);
}

/** WorkerCode as the parent's isolate sent it, checked again here (the isolate's checks are the tenant's). */
export function checkCode(raw: unknown): LoaderCode {
  const parsed = Code.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new TypeError(`invalid WorkerCode: ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  }
  const code = parsed.data as LoaderCode;
  const size = codeBytes(code);
  if (size > LOADER_LIMITS.codeBytes)
    throw new Error(`Dynamic Worker code size (${size} bytes) exceeds the maximum allowed size of ${LOADER_LIMITS.codeBytes} bytes.`);
  if (!code.modules.some((m) => m.name === code.mainModule))
    throw new TypeError(`WorkerCode.mainModule ${JSON.stringify(code.mainModule)} is not one of the modules`);
  return code;
}

/** The module list of a loaded Worker as the runtime takes it (bytes as base64). */
function toBundleModules(code: LoaderCode): WorkerBundle['modules'] {
  return code.modules.map((m) => ({
    name: m.name,
    type: m.type,
    content: typeof m.content === 'string' ? m.content : Buffer.from(m.content.buffer, m.content.byteOffset, m.content.byteLength).toString('base64'),
  }));
}

/** The worker loaders of one parent worker version (all its `worker_loaders` bindings). */
export class ParentLoaders {
  readonly #pool: IsolatePool;
  readonly #parentKey: string;
  readonly #parent: Parent;
  /** The parent's bundle when it runs in this process (its entrypoints are served here), else undefined. */
  readonly #parentBundle: WorkerBundle | undefined;
  /** Loads and calls go to the supervisor's LoaderApi (the parent's capability): the Workers run in the loaded cordon. */
  readonly #remote: boolean;
  readonly #bindings: Set<string>;
  readonly #opts: LoaderOptions;
  /** Loaded Workers by pool key, least recently used first, with what their calls need. */
  readonly #children = new Map<string, Child>();
  /**
   * Loaded Workers whose isolate was unloaded while facets of theirs hold WebSockets: their code is kept
   * (never on disk) so that an event starts them again (docs/durable-objects.md, "A facet takes WebSockets").
   */
  readonly #kept = new Map<string, Child>();
  /** Code bytes of the Workers whose facets hold WebSockets, live or kept. */
  #keptBytes = 0;
  #hooks: RequestHooks & { events?: LoaderEvents };
  #loading = 0;
  readonly #waiting: (() => void)[] = [];
  /** Loads that may start now (a token bucket refilled at loadsPerSecond). */
  #tokens: number;
  #refilled = Date.now();

  /** `parent`: a bundle this process runs; or, in the loaded cordon's process, a parent it does not (bindings come with each load). */
  constructor(pool: IsolatePool, parentKey: string, parent: WorkerBundle | Parent, opts: LoaderOptions, hooks: RequestHooks & { events?: LoaderEvents }) {
    this.#pool = pool;
    this.#parentKey = parentKey;
    this.#parent = parent;
    this.#parentBundle = 'bindings' in parent ? (parent as WorkerBundle) : undefined;
    // The supervisor says, in the bundle it serves, whether this parent's loaded Workers run in another cordon.
    this.#remote = this.#parentBundle?.loadedCordon !== undefined;
    this.#opts = opts;
    this.#hooks = hooks;
    this.#tokens = opts.loadsPerSecond;
    this.#bindings = new Set(this.#parentBundle?.bindings.filter((b: Binding) => b.type === 'loader').map((b) => b.name));
  }

  /** No loaded Worker is held, nor kept (a remote parent's entry can go). */
  get empty(): boolean {
    this.sweep();
    return this.#children.size === 0 && this.#kept.size === 0;
  }

  /** The parent's capabilities with its loader bindings served here (the hooks of its latest call are the ones its loaded Workers call back with). */
  capabilities(hooks: RequestHooks & { events?: LoaderEvents }): CapabilityHost {
    this.#hooks = hooks;
    const inner = hooks.capabilities;
    return {
      call: (handle, method, args, timeLeftMs) => {
        if (this.#bindings.has(handle)) return this.#loaderCall(handle, method, args, inner);
        if (!inner) return Promise.reject(new Error('this worker has no capabilities'));
        return inner.call(handle, method, args, timeLeftMs);
      },
      connect: (target, toIsolate) => {
        if (target.startsWith(LOADER_TARGET)) {
          if (!this.#remote) return this.#intoChild(target.slice(LOADER_TARGET.length), toIsolate);
          // The loaded cordon serves it; the supervisor relays the session (and checks the target names this parent's Worker).
          if (!inner?.connect) return Promise.reject(new Error('this worker has no Worker Loader capability (is the supervisor connected?)'));
          return inner.connect(target, toIsolate);
        }
        if (!inner?.connect) return Promise.reject(new Error(`no binding ${target} to call`));
        return inner.connect(target, toIsolate);
      },
    };
  }

  /**
   * Loaded Workers whose isolates went (idle, evicted, broken) are let go: from the runtime's idle sweep
   * and at the per-worker bound, not on every load (a sweep looks at every Worker held, and a burst of
   * loads holds hundreds).
   */
  sweep(): void {
    for (const key of [...this.#children.keys()]) if (!this.#pool.held(key)) this.#forget(key);
  }

  /** The loaded Worker under `key` lost its isolate: its way back is let go, unless its facets hold WebSockets (then it is kept). */
  #forget(key: string): void {
    const child = this.#children.get(key);
    this.#children.delete(key);
    if (child && this.#pinned(child)) this.#kept.set(key, child);
    else child?.back.release?.();
  }

  #pinned(child: Child): boolean {
    return child.webSockets.size + child.accepting > 0;
  }

  /** The hibernatable WebSockets of facet `facetKey` of Worker `token` of `binding`, as it accepts and closes them. */
  facetSockets(binding: string, token: string, facetKey: string): FacetSockets {
    const key = this.#key(binding, token);
    const child = () => this.#children.get(key) ?? this.#kept.get(key);
    return {
      accepting: () => {
        const c = child();
        if (!c) throw new Error('the Dynamic Worker was unloaded; call the facet again to load it afresh');
        if (!this.#pinned(c)) {
          const limit = this.#opts.keptCodeBytes ?? KEPT_CODE_BYTES;
          if (this.#keptBytes + c.bytes > limit)
            throw new Error(
              `this worker's Dynamic Workers whose facets hold hibernatable WebSockets keep their code in memory, at most ${limit} bytes in all (CORDON_DYNAMIC_WORKER_KEPT_CODE_KB); this Worker's ${c.bytes} bytes do not fit: close sockets of other facets first, or ask the operator to raise the setting`,
            );
          this.#keptBytes += c.bytes;
        }
        c.accepting++;
      },
      accepted: (sid) => {
        const c = child();
        if (!c) return;
        c.accepting--;
        if (sid !== undefined) c.webSockets.set(sid, facetKey);
        this.#unpinIfDone(key, c);
      },
      closed: (sid) => {
        const c = child();
        if (c?.webSockets.delete(sid)) this.#unpinIfDone(key, c);
      },
    };
  }

  /** Facet `facetKey` was deleted (its sockets closed with it, and its own facets'). */
  facetDeleted(facetKey: string): void {
    for (const [key, c] of [...this.#children, ...this.#kept]) {
      let changed = false;
      for (const [sid, of] of c.webSockets) if (of === facetKey || of.startsWith(`${facetKey}/`)) changed = c.webSockets.delete(sid) || changed;
      if (changed) this.#unpinIfDone(key, c);
    }
  }

  /** A newer version of the parent took over: its objects' events go to that version's code now, so nothing is kept for them here. */
  forgetSockets(): void {
    for (const [key, c] of [...this.#children, ...this.#kept]) {
      if (c.webSockets.size === 0) continue;
      c.webSockets.clear();
      this.#unpinIfDone(key, c);
    }
  }

  /** Its facets hold no WebSocket any more: its code is no longer kept for them. */
  #unpinIfDone(key: string, c: Child): void {
    if (this.#pinned(c)) return;
    this.#keptBytes -= c.bytes;
    if (this.#kept.get(key) === c) {
      this.#kept.delete(key);
      c.back.release?.();
    }
  }

  /** Worker `key`'s isolate went while its facets hold WebSockets: it is made again from the code kept, as it was loaded. */
  async #wake(key: string): Promise<{ child: Child; instance: WorkerInstance } | undefined> {
    const child = this.#kept.get(key);
    if (!child) return undefined;
    this.#makeRoom();
    let instance: WorkerInstance;
    try {
      instance = await this.#pool.instance(key, child.bundle);
    } catch (e) {
      this.#pool.drop(key);
      throw this.#startFailed(e, child.back);
    }
    // Concurrent events wait for the same isolate; the first one moves the Worker back among the loaded.
    if (this.#kept.get(key) === child) {
      this.#kept.delete(key);
      this.#children.set(key, child);
      this.#watchLimits(instance, child.back);
      child.back.events.created();
    }
    return { child, instance };
  }

  #key(binding: string, token: string): string {
    return `${this.#parentKey}#${binding}:${token}`;
  }

  async #loaderCall(binding: string, method: string, args: unknown[], inner: CapabilityHost | undefined): Promise<unknown> {
    if (method === 'load') {
      const id = args[0];
      if (id !== null && (typeof id !== 'string' || id.length === 0 || id.length > LOADER_LIMITS.idLength)) throw new Error('malformed Dynamic Worker id');
      const code = checkCode(args[1]);
      if (!this.#remote) return this.#load(binding, id === null ? `anon:${randomUUID()}` : `id:${id}`, code);
      if (!inner) throw new Error('this worker has no Worker Loader capability (is the supervisor connected?)');
      this.#takeToken();
      return inner.call(binding, 'load', [id, code]);
    }
    if (method === 'fetch') return this.#remote ? { rpc: true } : this.#fetchChild(binding, args);
    if (method !== 'held') throw new Error(`${method} is not a method of a worker loader`);
    const token = args[0];
    if (typeof token !== 'string' || !/^(id|anon):/.test(token) || token.length > LOADER_LIMITS.idLength + 5) throw new Error('malformed Dynamic Worker id');
    if (this.#remote) {
      if (!inner) throw new Error('this worker has no Worker Loader capability (is the supervisor connected?)');
      return inner.call(binding, 'held', [token]);
    }
    return this.heldChild(binding, token);
  }

  /** Whether Worker `token` of `binding` is held here. */
  heldChild(binding: string, token: string): boolean {
    return this.#held(this.#key(binding, token)) !== undefined;
  }

  /** The loaded Worker under `key` and what its calls need, if this process holds it. */
  #held(key: string): { child: Child; instance: WorkerInstance } | undefined {
    const child = this.#children.get(key);
    const instance = child && this.#pool.held(key);
    if (!child || !instance) {
      this.#forget(key);
      return undefined;
    }
    return { child, instance };
  }

  /** A Workers RPC session from the parent to an entrypoint of a loaded Worker (bootstrap/worker-loader.ts opens it; in the loaded cordon, the supervisor). */
  intoChild(json: string, toIsolate: PipePeer): Promise<PipePeer> {
    return this.#intoChild(json, toIsolate);
  }

  async #intoChild(json: string, toIsolate: PipePeer): Promise<PipePeer> {
    let target: z.infer<typeof Target>;
    try {
      target = Target.parse(JSON.parse(json));
    } catch {
      throw new Error('malformed Dynamic Worker target');
    }
    const [binding, token, entrypoint, props] = target;
    if (!this.#bindings.has(binding) || !/^(id|anon):/.test(token)) throw new Error('malformed Dynamic Worker target');
    const key = this.#key(binding, token);
    const held = this.#held(key);
    if (!held) throw new Error('the Dynamic Worker was unloaded; call it again to load it afresh');
    // Most recently used last.
    this.#children.delete(key);
    this.#children.set(key, held.child);
    // Its first session needs the Workers RPC library: compiled now, off the main thread (a Worker only fetched never loads it).
    await held.instance.unitAhead('rpc');
    return held.instance.serve(entrypoint, props === null ? undefined : JSON.parse(props), toIsolate, {
      log: held.child.back.log,
      capabilities: this.#childCapabilities(held.child),
    });
  }

  /**
   * A parent's fetch() through a loaded Worker's entrypoint stub (bootstrap/worker-loader.ts), down the
   * plain request path: the Worker's instance runs it as a routed request (its own limits, env and
   * outbound, under its own watchdogs), and its Response comes back as a fetch()'s does, a body it
   * streams pulled by the parent as the parent reads it. No Workers RPC session on either side.
   * `{ unloaded }`: the Worker is not held (the parent loads it, then calls again).
   */
  async #fetchChild(binding: string, args: unknown[]): Promise<unknown> {
    const target = Callee.safeParse(args.slice(0, 3));
    const request = FetchRequest.safeParse(args[3]);
    if (!target.success || !request.success || !this.#bindings.has(binding) || !/^(id|anon):/.test(target.data[0]))
      throw new Error('malformed Dynamic Worker fetch');
    const [token, entrypoint, props] = target.data;
    const key = this.#key(binding, token);
    const held = this.#held(key);
    if (!held) return { unloaded: true };
    this.#children.delete(key);
    this.#children.set(key, held.child);
    let res: HandledResponse;
    try {
      res = await held.instance.handle(request.data, { log: held.child.back.log, capabilities: this.#childCapabilities(held.child) }, undefined, undefined, {
        name: entrypoint,
        props,
      });
    } catch (e) {
      // Its isolate went (a broken limit: reported through onKilled): so does the pool's entry.
      if (held.instance.disposed) this.#pool.drop(key);
      if (e instanceof WorkerError && e.thrown) return { thrown: e.thrown };
      throw new Error(`the called worker failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { status: res.status, statusText: res.statusText, headers: res.headers, body: res.body ?? null, stream: res.stream };
  }

  /**
   * One call on a facet whose class is a Durable Object class of loaded Worker `token` (bootstrap
   * facets.ts): hosted in that Worker's isolate, under its limits, with only its own env and outbound.
   * (With a loaded cordon, that is in the loaded cordon's process: services/sandbox/facets.ts.)
   */
  async objectCall(binding: string, token: string, object: HostedObject, call: { kind: string; method: string; payload: string }): Promise<string> {
    if (!this.#bindings.has(binding) || !/^(id|anon):/.test(token)) throw new Error('malformed Dynamic Worker target');
    const key = this.#key(binding, token);
    const held = this.#held(key) ?? (await this.#wake(key));
    if (!held) throw new Error('the Dynamic Worker was unloaded; call the facet again to load it afresh');
    this.#children.delete(key);
    this.#children.set(key, held.child);
    try {
      return await held.instance.objectCall(object, call, {
        log: held.child.back.log,
        capabilities: this.#childCapabilities(held.child),
      });
    } catch (e) {
      // Its isolate went (a broken limit): so does the pool's entry; the limit was reported (onKilled).
      if (held.instance.disposed) this.#pool.drop(key);
      throw e;
    }
  }

  /** A facet hosted in loaded Worker `token` goes. */
  objectDrop(binding: string, token: string, key: string): void {
    this.#pool.held(this.#key(binding, token))?.objectDrop(key);
  }

  /**
   * Load Worker `token` of a parent this process does not run (the loaded cordon's process): the code
   * is checked here again; `back` is the way into the parent, through the supervisor.
   */
  async load(binding: string, token: string, raw: unknown, back: ParentSide): Promise<void> {
    const code = checkCode(raw);
    this.#bindings.add(binding);
    await this.#load(binding, token, code, back);
  }

  /** Load Worker `token` (once while it is held) from checked code, in an isolate of its own here. */
  async #load(binding: string, token: string, code: LoaderCode, back: ParentSide = this.#localParent(code)): Promise<string> {
    const key = this.#key(binding, token);
    if (this.#kept.has(key)) {
      // Kept for its facets' WebSockets: the same id is the same code, made again from what is kept.
      back.release?.();
      await this.#wake(key);
      return token;
    }
    // Loaded meanwhile (same id, same code), or by another call while this one waited: the held one stays.
    const kept = () => this.#children.has(key) && this.#pool.held(key) !== undefined && (back.release?.(), true);
    if (kept()) return token;
    try {
      this.#takeToken();
      await this.#slot();
    } catch (e) {
      back.release?.();
      throw e;
    }
    if (kept()) {
      this.#release();
      return token;
    }
    try {
      this.#makeRoom();
    } catch (e) {
      this.#release();
      back.release?.();
      throw e;
    }
    const limits = this.#parent.limits;
    const bundle: WorkerBundle = {
      workerId: this.#parent.workerId,
      version: `${this.#parent.version}#${binding}:${token}`,
      mainModule: code.mainModule,
      modules: toBundleModules(code),
      // Never more than the parent's own: a loaded Worker cannot buy itself more than its parent has.
      limits: Limits.parse({
        cpuMs: Math.min(limits.cpuMs, code.limits.cpuMs ?? limits.cpuMs),
        wallMs: limits.wallMs,
        memoryMb: Math.min(limits.memoryMb, code.limits.memoryMb ?? limits.memoryMb),
      }),
      vars: code.vars as WorkerBundle['vars'],
      bindings: [],
      stubs: [
        ...Object.keys(code.stubs),
        ...(code.globalOutbound === null ? [NO_OUTBOUND_BINDING] : code.globalOutbound !== 'inherit' ? [OUTBOUND_BINDING] : []),
      ],
    };
    try {
      const instance = await this.#pool.instance(key, bundle);
      this.#watchLimits(instance, back);
    } catch (e) {
      this.#pool.drop(key);
      back.release?.();
      throw this.#startFailed(e, back);
    } finally {
      this.#release();
    }
    const outbound = code.globalOutbound === null ? 'none' : code.globalOutbound === 'inherit' ? 'inherit' : 'gateway';
    this.#children.set(key, { outbound, back, sockets: new Set(), bundle, bytes: codeBytes(code), webSockets: new Map(), accepting: 0 });
    back.events.created();
    return token;
  }

  /** A limit a loaded Worker breaks counts against its parent (a quarantine signal), as if the parent broke it. */
  #watchLimits(instance: WorkerInstance, back: ParentSide): void {
    instance.onKilled = (limit) => {
      if (limit === 'cpu' || limit === 'memory') back.events.limitHit(limit);
    };
  }

  #startFailed(e: unknown, back: ParentSide): unknown {
    if (!(e instanceof WorkerError)) return e;
    if (e.limit === 'cpu' || e.limit === 'memory') back.events.limitHit(e.limit);
    // workerd's lead ("Failed to start Worker:"), then what went wrong.
    return new Error(`Failed to start Worker: ${e.detail === e.message ? e.message : `${e.message}: ${e.detail}`}`);
  }

  /** The way back into a parent this process runs: the stubs' props stay here, calls go to the parent's isolate. */
  #localParent(code: LoaderCode): ParentSide {
    const gateway = code.globalOutbound !== null && code.globalOutbound !== 'inherit' ? code.globalOutbound : undefined;
    return {
      connect: (name, toIsolate) => {
        const ref = name === OUTBOUND_BINDING ? gateway : Object.hasOwn(code.stubs, name) ? code.stubs[name] : undefined;
        if (!ref) return Promise.reject(new Error(`no binding ${name} to call`));
        return this.#intoParent(ref, toIsolate);
      },
      outbound: (handle, method, args) => {
        const inner = this.#hooks.capabilities;
        if (!inner) return Promise.reject(new Error('fetch is not available: this worker has no fetch capability'));
        return inner.call(handle, method, args);
      },
      // The hooks of the parent's latest call: its log and its counts.
      log: (entries) => this.#hooks.log(entries),
      events: { created: () => this.#hooks.events?.created(), limitHit: (kind) => this.#hooks.events?.limitHit(kind) },
    };
  }

  /** A turn to load (MAX_LOADING at once per parent), waited for in order. */
  async #slot(): Promise<void> {
    if (this.#loading < MAX_LOADING) {
      this.#loading++;
      return;
    }
    if (this.#waiting.length >= MAX_WAITING) throw new Error(`too many Dynamic Workers waiting to load for this worker (at most ${MAX_WAITING}); retry`);
    // The slot is handed over by #release: #loading stays counted.
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#loading--;
  }

  /** Making an isolate costs this process's time, outside every worker's CPU limit: so loads are rationed per parent. */
  #takeToken(): void {
    const now = Date.now();
    const rate = this.#opts.loadsPerSecond;
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#refilled) / 1000) * rate);
    this.#refilled = now;
    if (this.#tokens < 1) throw new Error(`this worker loads Dynamic Workers faster than ${rate} a second; use get(id) to reuse them, or retry later`);
    this.#tokens--;
  }

  /** At the per-worker bound: the least recently used idle loaded Worker goes (busy ones are left to finish). */
  #makeRoom(): void {
    if (this.#children.size < this.#opts.perWorker) return;
    this.sweep();
    if (this.#children.size < this.#opts.perWorker) return;
    for (const key of this.#children.keys()) {
      const held = this.#pool.held(key);
      if (held && held.active > 0) continue;
      this.#forget(key);
      this.#pool.drop(key);
      return;
    }
    throw new Error(`this worker already has ${this.#opts.perWorker} Dynamic Workers loaded and busy; retry when one is done`);
  }

  /** A Workers RPC session from a loaded Worker to an entrypoint of its parent (env stub or gateway), with the props its parent gave. */
  async #intoParent(ref: EntrypointRef, toIsolate: PipePeer): Promise<PipePeer> {
    const parent = await this.#pool.instance(this.#parentKey, this.#parentBundle!);
    return parent.serve(ref.exportName, ref.props === null ? undefined : JSON.parse(ref.props), toIsolate, {
      log: this.#hooks.log,
      capabilities: this.capabilities(this.#hooks),
      events: this.#hooks.events,
    } as RequestHooks);
  }

  /** What a loaded Worker's env and fetch() reach: the stubs it was given and its outbound; nothing else. */
  #childCapabilities(child: Child): CapabilityHost {
    return {
      call: async (handle, method, args) => {
        const socket = handle.startsWith(SOCKET_HANDLE_PREFIX);
        if ((handle === '$fetch' && (method === 'fetch' || method === 'connect')) || socket) {
          // A gateway's Worker never gets here for fetch() (it is an RPC call to the gateway).
          if (child.outbound !== 'inherit') throw new Error(NO_GLOBAL_OUTBOUND);
          // Its sockets share its parent's handles: it may name only those it opened.
          if (socket && !child.sockets.has(handle)) throw new Error(`no capability ${handle}`);
          const result = await child.back.outbound(handle, method, args);
          if (method === 'connect' || method === 'startTls') child.sockets.add((result as { socket: string }).socket);
          if (method === 'close' || method === 'startTls') child.sockets.delete(handle);
          return result;
        }
        if (handle === '$cache') throw new Error('the Cache API is not available to a Dynamic Worker');
        throw new Error(handle === '$fetch' ? NO_GLOBAL_OUTBOUND : `no capability ${handle}`);
      },
      connect: (target, toIsolate) => {
        if (target === OUTBOUND_BINDING && child.outbound !== 'gateway') return Promise.reject(new Error(`no binding ${target} to call`));
        return child.back.connect(target, toIsolate);
      },
    };
  }

  /** Unload every Worker this parent loaded (the parent itself goes). */
  dispose(): void {
    for (const key of this.#children.keys()) this.#pool.drop(key);
    for (const child of [...this.#children.values(), ...this.#kept.values()]) child.back.release?.();
    this.#children.clear();
    this.#kept.clear();
    this.#keptBytes = 0;
  }
}
