/**
 * The isolate host a sandbox uses: one warm isolate per worker version, least recently used evicted
 * beyond `maxIsolates` or when the isolates' heaps together pass `memoryBudgetMb`, and any left idle
 * for `idleMs`. A request that breaks a limit gets a WorkerError (safe to show a client);
 * its isolate is disposed and the next request gets a fresh one. Other workers never notice.
 */
import { Limits, type WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import type { QueueMessageWire } from '../../../schemas/queues.ts';
import type { WireRequest } from '../../../schemas/http.ts';
import { WorkerInstance, type CapabilityHost, type HandledResponse, type HostedObject } from './instance.ts';
import { WorkerError } from './errors.ts';
import type { SocketPeer } from './socket-table.ts';
import type { PipePeer } from './rpc-pipes.ts';
import { SpareIsolates } from './spares.ts';
import { namesUrl } from './modules.ts';
import { ParentLoaders, type FacetSockets, type IsolatePool, type LoaderEvents, type LoaderOptions } from './worker-loader.ts';
import type ivm from 'isolated-vm';

export type { CapabilityHost, HandledResponse, HostedObject } from './instance.ts';
export { WorkerError } from './errors.ts';
export type { SocketPeer, WorkerSocket } from './socket-table.ts';
export type { PipePeer } from './rpc-pipes.ts';
/** Where a facet's class lives (services/sandbox/facets.ts): null, the object's own isolate; or a Dynamic Worker its worker loaded. */
export type FacetPlace = { binding: string; token: string } | null;

export interface RunHooks {
  log(entries: LogEntry[]): void;
  /** Where the worker's `env` capability calls go (none: the worker declared no bindings). */
  capabilities?: CapabilityHost;
  /** What the Dynamic Workers this worker loads do that counts against it (worker_loaders). */
  events?: LoaderEvents;
  /** The worker broke its own CPU or memory limit in this entry, whichever it is (RequestHooks.limitHit). */
  limitHit?(kind: 'cpu' | 'memory'): void;
}

/** An isolate idle this long gives back its garbage's memory (WorkerInstance.compact). */
const COMPACT_IDLE_MS = 10_000;
/**
 * An isolate idle this long also drops its functions' bytecode (WorkerInstance.compact(true)): rarely used
 * isolates take less memory, and a request after a pause this long pays ~2–3 ms of CPU to compile again.
 */
const DROP_CODE_IDLE_MS = 60_000;
/** Compactions per idle sweep at most: each is a garbage collection of a few ms. */
const COMPACT_PER_SWEEP = 64;
/**
 * Only isolates with a heap this small at their last measure are compacted: their garbage is a large part
 * of them, and a collection of one costs a few ms (of a large heap, far more, for a small part of it).
 */
const COMPACT_MAX_HEAP = 16 * 1024 * 1024;

export class WorkerRuntime {
  readonly #instances = new Map<string, Promise<WorkerInstance>>();
  readonly #maxIsolates: number;
  readonly #onCatastrophe: (message: string) => void;
  readonly #spares: SpareIsolates | undefined;
  /** Instances that finished loading, with their heap size when last measured (bytes). */
  readonly #live = new Map<string, { instance: WorkerInstance; heap: number; measuredAt: number }>();
  readonly #memoryBudget: number;
  readonly #idleMs: number;
  readonly #compactIdleMs: number;
  readonly #dropCodeIdleMs: number;
  /** The sweep's compactions under way (compactIdle): the next sweep starts none while they run. */
  #compacting: Promise<void> | undefined;
  readonly #sweeper: NodeJS.Timeout;

  readonly #inspector: boolean;
  /** The worker loaders of each parent worker version that has one, by its key. */
  readonly #loaders = new Map<string, ParentLoaders>();
  /** As a loaded cordon: the Workers loaded for parents of other cordons, by parent ref (`<workerId>@<version>`). */
  readonly #remoteParents = new Map<string, ParentLoaders>();
  readonly #dynamic: LoaderOptions & { idleMs: number };
  readonly #pool: IsolatePool = {
    held: (key) => {
      const i = this.#live.get(key)?.instance;
      return i && !i.disposed ? i : undefined;
    },
    instance: (key, bundle) => this.#instance(key, bundle),
    drop: (key) => this.#drop(key),
  };

  /** `inspector`: isolates made with V8's inspector on — only for a process that runs one worker alone (`cordon debug`). */
  constructor(
    opts: {
      maxIsolates?: number;
      memoryBudgetMb?: number;
      idleMs?: number;
      /** How long an isolate sits idle before its garbage's memory is given back (WorkerInstance.compact). */
      compactIdleMs?: number;
      /** How long an isolate sits idle before its functions' bytecode goes too (WorkerInstance.compact(true)). */
      dropCodeIdleMs?: number;
      spares?: number;
      inspector?: boolean;
      onCatastrophe?: (message: string) => void;
      /** Dynamic Workers: how many one worker may hold loaded, how long one may sit idle, how many one worker may load a second. */
      dynamic?: LoaderOptions & { idleMs: number };
    } = {},
  ) {
    this.#inspector = opts.inspector ?? false;
    this.#dynamic = opts.dynamic ?? { perWorker: 32, idleMs: 60_000, loadsPerSecond: 500 };
    this.#maxIsolates = opts.maxIsolates ?? 200;
    this.#memoryBudget = (opts.memoryBudgetMb ?? 2048) * 1024 * 1024;
    this.#idleMs = opts.idleMs ?? 5 * 60_000;
    this.#compactIdleMs = opts.compactIdleMs ?? COMPACT_IDLE_MS;
    this.#dropCodeIdleMs = opts.dropCodeIdleMs ?? DROP_CODE_IDLE_MS;
    this.#sweeper = setInterval(
      () => this.#sweepIdle(),
      Math.min(30_000, Math.max(50, Math.min(this.#idleMs, this.#dynamic.idleMs, this.#compactIdleMs) / 2)),
    ).unref();
    // isolated-vm's advice for a catastrophic error: the process's V8 state is unrecoverable.
    this.#onCatastrophe =
      opts.onCatastrophe ??
      ((message) => {
        process.stderr.write(JSON.stringify({ level: 'error', msg: 'catastrophic isolate error; aborting', detail: message }) + '\n');
        process.abort();
      });
    const spares = this.#inspector ? 0 : (opts.spares ?? 2);
    this.#spares = spares > 0 ? new SpareIsolates({ size: spares, memoryMb: Limits.parse({}).memoryMb, onCatastrophe: this.#onCatastrophe }) : undefined;
  }

  async handle(
    bundle: WorkerBundle,
    request: WireRequest,
    hooks: RunHooks,
    bodyStream?: ReadableStream<Uint8Array>,
    socket?: SocketPeer,
  ): Promise<HandledResponse> {
    const key = `${bundle.workerId}@${bundle.version}`;
    let instance: WorkerInstance;
    try {
      instance = this.#liveNow(key) ?? (await this.#instance(key, bundle));
    } catch (e) {
      const err = e instanceof WorkerError ? e : new WorkerError(500, 'worker failed to load', String(e));
      try {
        hooks.log([{ level: 'error', message: err.detail === err.message ? err.message : `${err.message}: ${err.detail}`, time: Date.now() }]);
      } catch {
        // a failing log sink must not change the answer
      }
      throw err;
    }
    try {
      // The instance logs the detail of a failure itself, before it rejects.
      return await instance.handle(request, this.#withLoaders(key, bundle, hooks), bodyStream, socket);
    } catch (e) {
      if (instance.disposed && (await this.#instances.get(key)?.catch(() => undefined)) === instance) this.#drop(key);
      throw e instanceof WorkerError ? e : new WorkerError(500, 'worker failed', String(e));
    } finally {
      this.#measure(key, instance);
    }
  }

  /** One run of a workflow instance of this worker (see WorkerInstance.runWorkflow). */
  async runWorkflow(bundle: WorkerBundle, className: string, event: string, steps: CapabilityHost, hooks: RunHooks): Promise<string> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      return await instance.runWorkflow(className, event, steps, this.#withLoaders(key, bundle, hooks));
    } finally {
      this.#measure(key, instance);
    }
  }

  /** Workers RPC: serve an entrypoint of this worker for a caller's end of a session (see WorkerInstance.serve). */
  async serve(bundle: WorkerBundle, entrypoint: string, props: unknown, caller: PipePeer, hooks: RunHooks): Promise<PipePeer> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      return await instance.serve(entrypoint, props, caller, hooks);
    } finally {
      this.#measure(key, instance);
    }
  }

  /** scheduled() of this worker for one cron trigger (see WorkerInstance.runScheduled). */
  async runScheduled(bundle: WorkerBundle, cron: string, scheduledTime: number, hooks: RunHooks): Promise<void> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      await instance.runScheduled(cron, scheduledTime, this.#withLoaders(key, bundle, hooks));
    } finally {
      this.#measure(key, instance);
    }
  }

  /** A Workers RPC session to a Durable Object hosted in this worker version's isolate (see WorkerInstance.serveObject). */
  async serveObject(bundle: WorkerBundle, object: HostedObject, caller: PipePeer, hooks: RunHooks): Promise<PipePeer> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      return await instance.serveObject(object, caller, this.#withLoaders(key, bundle, hooks));
    } catch (e) {
      if (instance.disposed && (await this.#instances.get(key)?.catch(() => undefined)) === instance) this.#drop(key);
      throw e instanceof WorkerError ? e : new WorkerError(500, 'worker failed', String(e));
    } finally {
      this.#measure(key, instance);
    }
  }

  /** One call on a Durable Object hosted in this worker version's isolate (see WorkerInstance.objectCall). */
  async objectCall(bundle: WorkerBundle, object: HostedObject, call: { kind: string; method: string; payload: string }, hooks: RunHooks): Promise<string> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      return await instance.objectCall(object, call, this.#withLoaders(key, bundle, hooks));
    } catch (e) {
      if (instance.disposed && (await this.#instances.get(key)?.catch(() => undefined)) === instance) this.#drop(key);
      throw e instanceof WorkerError ? e : new WorkerError(500, 'worker failed', String(e));
    } finally {
      this.#measure(key, instance);
    }
  }

  /**
   * One call on a facet of an object of this worker version (services/sandbox/facets.ts): in this
   * version's isolate (`place` null: a class of its own exports), or in a Dynamic Worker it loaded.
   */
  async facetCall(
    bundle: WorkerBundle,
    place: FacetPlace,
    object: HostedObject,
    call: { kind: string; method: string; payload: string },
    hooks: RunHooks,
  ): Promise<string> {
    if (place === null) return this.objectCall(bundle, object, call, hooks);
    const key = `${bundle.workerId}@${bundle.version}`;
    this.#withLoaders(key, bundle, hooks);
    const loaders = this.#loaders.get(key);
    if (!loaders) throw new Error('this worker has no Worker Loader binding');
    return loaders.objectCall(place.binding, place.token, object, call);
  }

  /** The hibernatable WebSockets of a facet of a loaded class, as it accepts and closes them (worker-loader.ts FacetSockets). */
  facetSockets(bundle: WorkerBundle, place: { binding: string; token: string }, facetKey: string): FacetSockets | undefined {
    return this.#loaders.get(`${bundle.workerId}@${bundle.version}`)?.facetSockets(place.binding, place.token, facetKey);
  }

  /** Facet `facetKey` of an object of this worker version was deleted, its WebSockets with it. */
  facetDeleted(bundle: WorkerBundle, facetKey: string): void {
    this.#loaders.get(`${bundle.workerId}@${bundle.version}`)?.facetDeleted(facetKey);
  }

  /** Object `key` left this process or was deleted: the code kept here for its facets' WebSockets goes, whichever version kept it. */
  objectGone(key: string): void {
    const workerId = key.slice(0, key.indexOf(':'));
    for (const [k, loaders] of this.#loaders) if (k.startsWith(`${workerId}@`)) loaders.facetDeleted(key);
  }

  /** A facet's instance goes (aborted, deleted, or its parent left this sandbox). */
  facetDrop(bundle: WorkerBundle, place: FacetPlace, key: string): void {
    if (place === null) return this.objectDrop(bundle, key);
    this.#loaders.get(`${bundle.workerId}@${bundle.version}`)?.objectDrop(place.binding, place.token, key);
  }

  /** Durable Object `key` left this sandbox (evicted, moved, deleted): its instance in that version's isolate goes, if the isolate is live. */
  objectDrop(bundle: WorkerBundle, key: string): void {
    this.#live.get(`${bundle.workerId}@${bundle.version}`)?.instance.objectDrop(key);
  }

  /** queue() of this worker for one batch (see WorkerInstance.runQueue); answers the outcome as JSON. */
  async runQueue(bundle: WorkerBundle, queue: string, messages: QueueMessageWire[], hooks: RunHooks): Promise<string> {
    const key = `${bundle.workerId}@${bundle.version}`;
    const instance = await this.#instance(key, bundle);
    try {
      return await instance.runQueue(queue, messages, this.#withLoaders(key, bundle, hooks));
    } finally {
      this.#measure(key, instance);
    }
  }

  /** A worker with `worker_loaders` bindings: its capability calls with those served here (worker-loader.ts). */
  #withLoaders(key: string, bundle: WorkerBundle, hooks: RunHooks): RunHooks {
    if (!bundle.bindings.some((b) => b.type === 'loader')) return hooks;
    let loaders = this.#loaders.get(key);
    if (!loaders) {
      this.#newVersion(this.#loaders, bundle.workerId);
      this.#loaders.set(key, (loaders = new ParentLoaders(this.#pool, key, bundle, this.#dynamic, hooks)));
    }
    return { ...hooks, capabilities: loaders.capabilities(hooks) };
  }

  /**
   * This process as the loaded cordon of `parent`, a worker it does not run (docs/dynamic-workers.md, "A
   * stricter cordon for loaded Workers"): its loaders, made on first load.
   */
  remoteParent(ref: string, parent?: Pick<WorkerBundle, 'workerId' | 'version' | 'limits'>): ParentLoaders | undefined {
    let loaders = this.#remoteParents.get(ref);
    if (!loaders && parent) {
      this.#newVersion(this.#remoteParents, parent.workerId);
      this.#remoteParents.set(ref, (loaders = new ParentLoaders(this.#pool, ref, parent, this.#dynamic, { log: () => {} })));
    }
    return loaders;
  }

  /**
   * A new version of `workerId` loads Workers here: the code its older versions kept for their facets' WebSockets
   * goes (those objects' events reach the new version now), so what is kept stays bounded per worker, not per deploy.
   */
  #newVersion(loaders: Map<string, ParentLoaders>, workerId: string): void {
    for (const [key, parent] of loaders) if (key.startsWith(`${workerId}@`)) parent.forgetSockets();
  }

  /**
   * After a request: the isolate's heap, at most once a second per isolate, then the budget. Not an
   * async function: the requests in between cost no promise.
   */
  #measure(key: string, instance: WorkerInstance): void {
    const live = this.#live.get(key);
    if (!live || live.instance !== instance || Date.now() - live.measuredAt < 1000) return;
    live.measuredAt = Date.now();
    instance.heapBytes().then(
      (heap) => {
        live.heap = heap;
        this.#enforceBudget();
      },
      () => {},
    );
  }

  /** Over the budget: least recently used idle isolates go first; busy ones are left to finish. */
  #enforceBudget(): void {
    let total = 0;
    for (const l of this.#live.values()) total += l.heap;
    for (const [key, l] of this.#live) {
      if (total <= this.#memoryBudget) break;
      if (l.instance.active > 0) continue;
      total -= l.heap;
      this.#drop(key);
    }
  }

  /** Idle isolates go; a loaded Dynamic Worker (its key has its parent's and a `#`) sooner, by its own setting. */
  #sweepIdle(): void {
    const now = Date.now();
    for (const [key, l] of this.#live) {
      const idleMs = key.includes('#') ? this.#dynamic.idleMs : this.#idleMs;
      if (l.instance.active === 0 && l.instance.lastUsed < now - idleMs) this.#drop(key);
    }
    for (const [ref, loaders] of this.#remoteParents) if (loaders.empty) this.#remoteParents.delete(ref);
    for (const loaders of this.#loaders.values()) loaders.sweep();
    this.#compacting ??= this.compactIdle(COMPACT_PER_SWEEP).finally(() => (this.#compacting = undefined));
  }

  /**
   * Up to `max` isolates idle for compactIdleMs, with small heaps, give back their garbage's memory (those
   * idle for dropCodeIdleMs their functions' bytecode too), one
   * after another (a few ms of CPU each, on its own thread: never a burst of them at once). Run by the idle sweep.
   */
  async compactIdle(max: number): Promise<void> {
    const now = Date.now();
    const idle: [WorkerInstance, boolean][] = [];
    for (const { instance, heap } of this.#live.values()) {
      if (idle.length >= max) break;
      const dropCode = instance.lastUsed <= now - this.#dropCodeIdleMs;
      if (instance.compactable(dropCode) && instance.lastUsed <= now - this.#compactIdleMs && heap <= COMPACT_MAX_HEAP) idle.push([instance, dropCode]);
    }
    for (const [instance, dropCode] of idle) await instance.compact(dropCode);
  }

  #drop(key: string): void {
    const p = this.#instances.get(key);
    this.#instances.delete(key);
    this.#live.delete(key);
    void p?.then(
      (i) => i.dispose('evicted'),
      () => {},
    );
  }

  /**
   * The live instance for `key`, moved to the back of the LRU order (both maps), without waiting on a
   * promise: the path of nearly every request, which then costs none.
   */
  #liveNow(key: string): WorkerInstance | undefined {
    const live = this.#live.get(key);
    if (!live || live.instance.disposed) return undefined;
    const existing = this.#instances.get(key);
    if (!existing) return undefined;
    this.#instances.delete(key);
    this.#instances.set(key, existing);
    this.#live.delete(key);
    this.#live.set(key, live);
    return live.instance;
  }

  async #instance(key: string, bundle: WorkerBundle): Promise<WorkerInstance> {
    const existing = this.#instances.get(key);
    if (existing) {
      const inst = this.#liveNow(key) ?? (await existing.catch(() => undefined));
      if (inst && !inst.disposed) {
        // Map order is our LRU order: move to the back.
        this.#instances.delete(key);
        this.#instances.set(key, existing);
        return inst;
      }
      if (this.#instances.get(key) === existing) this.#drop(key);
    }
    const spare = bundle.allowEval ? undefined : this.#spares?.take(bundle.limits.memoryMb, namesUrl(bundle.modules));
    const created = spare ? spare.adopt(bundle) : WorkerInstance.create(bundle, this.#onCatastrophe, this.#inspector);
    this.#instances.set(key, created);
    created.then(
      (instance) => {
        // Until measured, count it as an untouched isolate from the snapshot would be: a few MB.
        if (this.#instances.get(key) === created) this.#live.set(key, { instance, heap: 4 * 1024 * 1024, measuredAt: 0 });
      },
      () => {
        if (this.#instances.get(key) === created) this.#instances.delete(key);
      },
    );
    while (this.#instances.size > this.#maxIsolates) this.#drop(this.#instances.keys().next().value!);
    return created;
  }

  /** Unload a worker (a version, or all): the Dynamic Workers it loaded go with it. */
  evict(workerId: string, version?: string): void {
    const matches = (key: string) => key.startsWith(version === undefined ? `${workerId}@` : `${workerId}@${version}`);
    for (const key of [...this.#instances.keys()]) if (matches(key)) this.#drop(key);
    for (const loaders of [this.#loaders, this.#remoteParents])
      for (const [key, parent] of loaders)
        if (matches(key)) {
          parent.dispose();
          loaders.delete(key);
        }
  }

  /** A DevTools session on the most recently used live isolate, if there is one (inspector mode only). */
  inspect(): ivm.InspectorSession | undefined {
    const newest = [...this.#live.values()].reverse().find((l) => !l.instance.disposed);
    return newest?.instance.inspect();
  }

  /** `dynamic`: of the isolates, those of loaded Dynamic Workers. */
  stats(): { isolates: number; spares: number; dynamic: number } {
    let dynamic = 0;
    for (const key of this.#instances.keys()) if (key.includes('#')) dynamic++;
    return { isolates: this.#instances.size, spares: this.#spares?.ready ?? 0, dynamic };
  }

  dispose(): void {
    clearInterval(this.#sweeper);
    this.#spares?.dispose();
    for (const key of [...this.#instances.keys()]) this.#drop(key);
  }
}
