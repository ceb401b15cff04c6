/**
 * One worker version in its own isolate: created on first use, kept warm, disposed when it breaks a
 * limit. Each request runs under a CPU-time and a wall-time watchdog that dispose the isolate (the
 * only reliable way to stop it: `timeout` does not cover promise continuations).
 *
 * A request's life: `run` (under the watchdogs, response serialised inside the isolate), then its
 * `ctx.waitUntil` promises (CPU watchdog still armed, waited for until the wall-time deadline), then,
 * when no other request is in flight, `end`: every timer is dropped and replies to calls made earlier
 * are never delivered, so no tenant code runs outside a request and its watchdog.
 */
import type { QueueMessageWire } from '../../../schemas/queues.ts';
import ivm from 'isolated-vm';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import tr46 from 'tr46';
import { Limits, type WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import { LogBuffer } from './log-buffer.ts';
import { formatLog } from './log-format.ts';
import { createHostCrypto } from './host-crypto.ts';
import type { NodeCryptoResult } from './bootstrap/node-crypto-wire.ts';
import type { WireResult } from './bootstrap/subtle-wire.ts';
import { Account, Watchdogs, type Owners, type Watch } from './watchdog.ts';
import { HostTimers } from './host-timers.ts';
import { SocketTable, type SocketPeer, type WorkerSocket } from './socket-table.ts';
import { PipeTable, type PipePeer } from './rpc-pipes.ts';
import { hostCallback, limitError, tenantStack, WorkerError } from './errors.ts';
import { isolateDisposal } from './isolate-disposal.ts';
import { MAX_HEAD, readResponse, type ObjectSocketRef } from './read-response.ts';
import { MAX_BODY, type WireRequest, type WireResponse } from '../../../schemas/http.ts';
import { isFrameCopy } from '../../../lib/rpc/fast-frames.ts';
import { soleBytes, StreamSpares } from './sole-bytes.ts';
import { bootstrap, type Bootstrap } from './bootstrap-bundle.ts';
import { installDynamicImport, linkWorker, ModuleError, namesUrl, shipBinaryModules, usesDynamicImport } from './modules.ts';
import { fromMessage, toMessage, type WireMessage } from './bootstrap/wire-codec.ts';
import {
  ASYNC_CALLBACKS,
  CALLBACK_GLOBALS,
  ENTRY_NAMES,
  BODY_COPY_GLOBAL,
  OPTIONS_GLOBAL,
  REFERENCE_GLOBALS,
  type BootOptions,
  type Entry,
  type EntryDispatch,
  type HostCallbacks,
  type HostReferences,
  type RequestMeta,
  type UnitRef,
} from './abi.ts';

/** Where a worker's capability calls go: the sandbox forwards them to the supervisor. */
export interface CapabilityHost {
  /** `timeLeftMs`: what the calling worker has left before its wall-time limit (undefined outside a run). */
  call(handle: string, method: string, args: unknown[], timeLeftMs?: number): Promise<unknown>;
  /** Workers RPC: the other end of a pipe the worker opened to binding `target` (`toIsolate`: the worker's end). */
  connect?(target: string, toIsolate: PipePeer): Promise<PipePeer>;
}

/** What a request gets back: a response, with the worker's socket end after a 101. */
export type HandledResponse = Omit<WireResponse, 'webSocket'> & { webSocket?: WorkerSocket; objectSocket?: ObjectSocketRef };
export interface RequestHooks {
  log(entries: LogEntry[]): void;
  capabilities?: CapabilityHost;
  /** The worker broke its own CPU or memory limit during this entry (whichever entry it is): a quarantine signal. */
  limitHit?(kind: 'cpu' | 'memory'): void;
}

// V8's code cache for the init half (the same source for the whole process; ours, so the cache not
// being checked against its source — docs/security.md, "What the code relies on" — is no risk here). Saves ~1.3 ms per isolate.
let initCache: ivm.ExternalCopy<ArrayBuffer> | undefined;
let rehearsed: Promise<void> | undefined;
// Longer than any usable host; refused rather than spending host time on it.
/** A copy of bytes the bootstrap keeps, for an isolate (isolated-vm copies an ArrayBuffer it is handed whole). */
const copyOf = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const MAX_IDNA_INPUT = 64 * 1024;
/** What the one rehearsal that makes the code caches may take (a cold isolate's first RPC session). */
const REHEARSAL_MS = 5000;
const IDNA_OPTIONS = ['checkHyphens', 'checkBidi', 'checkJoiners', 'useSTD3ASCIIRules', 'transitionalProcessing', 'verifyDNSLength', 'ignoreInvalidPunycode'];
/** How long past a request's wall-time deadline the isolate may take to become idle once all requests ended. */
const END_GRACE_MS = 1000;
const MiB = 1024 * 1024;
/** What compact()'s garbage collection may take of the isolate's CPU before the watchdog ends it (it takes a few ms). */
const COMPACT_CPU_MS = 10_000;
// compact(true) drops the bytecode of every function the idle isolate is not running (isolated-vm rebuilt:
// reduceMemory puts the isolate in the background for that collection), which V8 does only under this
// flag; under it, V8 no longer drops bytecode by age (unused for 6 full collections) in an isolate in the
// foreground, as every isolate is while it has work, and as the process's own always is.
setFlagsFromString('--flush-code-based-on-tab-visibility');

type Kill = 'cpu' | 'wall' | 'evicted' | undefined;
/** A Durable Object (or a facet) hosted in an isolate: its storage and its WebSockets, each under its own handle. */
export interface HostedObject {
  key: string;
  className: string;
  id: string;
  name: string | null;
  storage: CapabilityHost;
  sockets: CapabilityHost;
}
/** The bootstrap's entry points, as the host calls them: each through the one dispatcher it holds (abi.ts EntryDispatch). */
type EntryRefs = { [K in keyof Entry]: Pick<ivm.Reference<Entry[K]>, 'apply'> };

function entryRefs(dispatch: ivm.Reference<EntryDispatch>): EntryRefs {
  const refs: Record<string, unknown> = {};
  for (const name of ENTRY_NAMES)
    refs[name] = {
      apply: (_: undefined, args: never[], options?: ivm.ReferenceApplyOptions) =>
        (dispatch as ivm.Reference).apply(undefined, [name as never, ...args], options),
    };
  return refs as EntryRefs;
}
/**
 * The buffer a pull of a streamed response body brings its bytes in (bootstrap pull): the chunks the
 * worker has made go to the host together, one crossing and one frame to ingress, up to PULL_BYTES; after
 * the first pull it follows what the pulls bring, never under MIN_PULL.
 */
const PULL_BYTES = 256 * 1024;
const MIN_PULL = 16 * 1024;
/** Written buffers a streamed body keeps for its next pulls (what ingress's credit can have unwritten at once, and one). */
const SPARE_PULLS = 5;
/** A streamed response body may be this long in all (a whole body crossing at once: MAX_BODY). */
const MAX_STREAMED_BODY = 1024 * MiB;
/** fetch() response bodies one isolate may have streaming in at once. */
const MAX_FETCHED_STREAMS = 64;
/** Requests sent into an isolate in one call at most (see #submit). */
const MAX_BATCH = 32;

/** A request's answer from the isolate: head (JSON, or '!' + a failure, or '~' + head of a stream), body, and whether the isolate ended the request's scope itself. */
type Answer = [string, ArrayBuffer | null, boolean?];

/**
 * An answer's body as the isolate hands it over (abi.ts BodyCopy): the bytes it moved out of its heap,
 * taken over here without a copy. Anything else is passed on as it came, and a copy that cannot be
 * taken becomes undefined: readResponse refuses both as a body that did not arrive as bytes.
 */
function takeBody(body: unknown): unknown {
  if (!(body instanceof ivm.ExternalCopy)) return body;
  try {
    return body.copy({ release: true, transferIn: true });
  } catch {
    return undefined;
  }
}

/**
 * A request body as an ArrayBuffer of its own for the isolate (#sendBatch moves it in, detaching it
 * here): a fast-path frame's copy (isFrameCopy: the whole of a buffer nothing else holds) is handed
 * over as it is; anything else is sliced out, for a view of a larger message must not take the rest
 * of it into the isolate, and a caller's own bytes stay usable.
 */
function ownBuffer(body: Uint8Array): ArrayBuffer {
  if (isFrameCopy(body)) return body.buffer as ArrayBuffer;
  return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer;
}

/** The env bindings the bootstrap builds: the declared ones, and a Dynamic Worker's stubs of its parent's entrypoints (Workers RPC, as service bindings). */
function bootBindings(bundle: WorkerBundle): BootOptions['bindings'] {
  return [...bundle.bindings.map(({ type, name }) => ({ type, name })), ...(bundle.stubs ?? []).map((name) => ({ type: 'service' as const, name }))];
}

/**
 * An isolate from the start-up snapshot, made on a thread of isolated-vm's pool where isolated-vm was
 * rebuilt with Isolate.createAsync (native/isolated-vm.mjs): the ~3 ms V8 spends deserialising it is
 * then not spent on the main thread, where every load and cold start would hold the event loop for it.
 * With the prebuilt addon it is made here, synchronously, as before. Either way the isolate is the
 * worker's alone, with its own memory limit.
 */
function newIsolate(options: ivm.IsolateOptions): Promise<ivm.Isolate> {
  return ivm.Isolate.createAsync ? ivm.Isolate.createAsync(options) : Promise.resolve(new ivm.Isolate(options));
}

export class WorkerInstance {
  /** Set once more by adopt() when the instance was made ahead of need. */
  bundle: WorkerBundle;
  readonly #isolate: ivm.Isolate;
  #context: ivm.Context | undefined;
  #entry: EntryRefs | undefined;
  #dispatch: ivm.Reference<EntryDispatch> | undefined;
  #capRef: ivm.Reference<unknown> | undefined;
  #capSyncRef: ivm.Reference<unknown> | undefined;
  #bodyRef: ivm.Reference<unknown> | undefined;
  /**
   * Bodies streaming in, the isolate pulling their chunks (see #pullBody): requests' by request, and
   * fetch() responses' (#fetched) by a number of their own from the same count.
   */
  readonly #incoming = new Map<number, ReadableStreamDefaultReader<Uint8Array>>();
  /** fetch() response bodies streaming in: cancelled (the origin's connection closed) when the last request ends. */
  readonly #fetched = new Set<number>();
  /** WebSockets by pair id; one accepted and bound counts in #active like a request. */
  readonly #sockets = new SocketTable({
    activate: () => void this.#active++,
    deactivate: () => void this.#leave(false, Date.now() + this.bundle.limits.wallMs),
    maxUnboundAgeMs: () => 2 * this.bundle.limits.wallMs,
  });
  readonly #timers = new HostTimers<Owners>({
    disposed: () => this.disposed,
    fire: (id, owners) => {
      void this.#watchdogs
        .track(owners, this.#entry!.fireTimer.apply(undefined, [id, Date.now()], { timeout: this.bundle.limits.cpuMs }))
        .catch((e: unknown) => {
          if (e instanceof Error && /Script execution timed out/i.test(e.message)) this.#terminate('cpu');
        });
    },
  });
  /** Whom each pipe the worker opened is charged to: whoever had work in the isolate when it was opened. */
  readonly #pipeOwners = new Map<number, Owners>();
  /** A builtin of the isolate's, called as the watchdogs' probe (taken before any tenant code ran). */
  #probe: ivm.Reference<() => number> | undefined;
  #kill: Kill;
  #disposed = false;
  #active = 0;
  #seq = 0;
  /** Requests waiting for their answer (the bootstrap's `done`), by sequence number. */
  readonly #answers = new Map<number, { resolve(a: Answer): void; reject(e: WorkerError): void }>();
  /** Requests gathered for the next call into the isolate. */
  #batch: { seq: number; meta: string; body: ArrayBuffer | null; watch: Watch }[] = [];
  readonly #logs = new LogBuffer();
  #caps: CapabilityHost | undefined;
  /** The watchdogs armed now (requests, invocations, loading): the earliest deadline ends the isolate. */
  readonly #watchdogs: Watchdogs;
  /** Capabilities with a handle of their own: a workflow run's steps (`$step:<seq>`), a hosted object's storage (`$obj:<key>`). */
  readonly #stepHosts = new Map<string, CapabilityHost>();
  /** Workers RPC pipes (rpc-pipes.ts); a served one is an invocation, under the watchdogs in #served. */
  readonly #pipes = new PipeTable({
    isolate: {
      deliver: (id, message) => this.#intoIsolate('rpcDeliver', [id, message, Date.now()]),
      closed: (id, reason) => this.#intoIsolate('rpcClosed', [id, reason]),
    },
    connect: (target, toIsolate) => {
      if (!this.#caps?.connect) return Promise.reject(new Error(`no binding ${target} to call`));
      return this.#caps.connect(target, toIsolate);
    },
    servedEnded: (id) => {
      this.#objectSessionEnded(id);
      const watch = this.#served.get(id);
      this.#served.delete(id);
      if (!watch) return;
      watch.stopWall();
      // Its waitUntil promises run on, under the session's watchdogs, as a request's do after its response.
      void this.#drain('rpcDrain', id, watch).then(() => this.#afterResponse(undefined, watch));
    },
  });
  readonly #served = new Map<number, Watch>();
  /** Durable Object sessions served here: their hooks, and the watchdogs of their calls in flight (each an invocation). */
  readonly #objectSessions = new Map<number, { hooks: RequestHooks; calls: Map<number, Watch> }>();
  lastUsed = Date.now();
  /** The lastUsed at which compact() last gave memory back, and whether it dropped code: each once per idle spell. */
  #compacted = { at: 0, droppedCode: false };

  readonly #initSource: string;

  /** The bootstrap's data an isolate may ask for on first use (legacy encoding tables, lol-html's wasm). */
  readonly #boot: Bootstrap;
  /** Lazy units the isolate asked for, and those compiled ahead of its asking (unitAhead), not yet handed over. */
  readonly #unitsAsked = new Set<string>();
  readonly #unitsAhead = new Map<string, ivm.Reference>();

  readonly #inspector: boolean;

  #adopted = false;

  private constructor(bundle: WorkerBundle, isolate: ivm.Isolate, boot: Bootstrap, inspector: boolean) {
    this.bundle = bundle;
    this.#initSource = boot.init;
    this.#boot = boot;
    this.#inspector = inspector;
    this.#isolate = isolate;
    this.#watchdogs = new Watchdogs(this.#isolate, {
      kill: (limit) => this.#terminate(limit),
      gone: () => this.dispose(),
      cpuMs: () => this.bundle.limits.cpuMs,
      probe: () => (this.#probe && !this.disposed ? this.#probe.apply(undefined, []) : Promise.resolve()),
    });
  }

  /**
   * A new instance of the worker. `inspector`: V8's inspector on (only in a process of its own:
   * `cordon debug`).
   */
  static async create(bundle: WorkerBundle, onCatastrophe: (message: string) => void, inspector = false): Promise<WorkerInstance> {
    const boot = await bootstrap();
    await (rehearsed ??= WorkerInstance.#rehearsedCaches(boot, onCatastrophe));
    const isolate = await newIsolate({ snapshot: boot.snapshot, memoryLimit: bundle.limits.memoryMb, onCatastrophicError: onCatastrophe, inspector });
    const w = new WorkerInstance(bundle, isolate, boot, inspector);
    w.#adopted = true;
    await w.#failing(async () => {
      await w.#init(bundle.allowEval === true);
      await w.#load();
    });
    return w;
  }

  /**
   * An instance made ahead of need (a spare): isolate, context and bootstrap ready, the request path
   * rehearsed (compiled), no worker yet, so eval refused and the default limits; adopt() gives it its
   * worker. Most of a cold start is here. `withUrl`: the url unit loaded too, for a worker whose code
   * names URL (modules.ts namesUrl): most workers take their request's URL apart, and the unit's compile
   * and top level are otherwise most of such a worker's cold start from a spare.
   */
  static async prepare(onCatastrophe: (message: string) => void, memoryMb: number, withUrl = false): Promise<WorkerInstance> {
    const boot = await bootstrap();
    await (rehearsed ??= WorkerInstance.#rehearsedCaches(boot, onCatastrophe));
    return WorkerInstance.#spare(boot, onCatastrophe, memoryMb, false, withUrl);
  }

  /**
   * A spare: its isolate and context, the bootstrap run in it, the request path rehearsed. `rpc`: Workers
   * RPC rehearsed too, its unit loaded for it — only for the isolate the code caches are made in, as a
   * spare must not carry a unit its worker may never use. `withUrl`: the url unit loaded (prepare).
   */
  static async #spare(boot: Bootstrap, onCatastrophe: (message: string) => void, memoryMb: number, rpc: boolean, withUrl: boolean): Promise<WorkerInstance> {
    const placeholder: WorkerBundle = { workerId: '', version: '', mainModule: '', modules: [], limits: Limits.parse({ memoryMb }), vars: {}, bindings: [] };
    const isolate = await newIsolate({ snapshot: boot.snapshot, memoryLimit: memoryMb, onCatastrophicError: onCatastrophe });
    const w = new WorkerInstance(placeholder, isolate, boot, false);
    await w.#failing(async () => {
      await w.#init(false);
      if (rpc) await w.unitAhead('rpc');
      if (withUrl) await w.unitAhead('url');
      await w.#entry!.rehearse.apply(undefined, [Date.now(), rpc, withUrl], { result: { promise: true }, timeout: rpc ? REHEARSAL_MS : w.bundle.limits.cpuMs });
    });
    return w;
  }

  /**
   * The code caches every isolate of this process compiles the init half and the RPC, streams and url units
   * from, made once, before the first isolate a worker runs in. In an isolate of their own that no
   * tenant code ever runs in (so no tenant can shape what they hold), disposed after: a spare whose request
   * path, Workers RPC (an entrypoint's fetch() and a method call over pipes looped back in the isolate),
   * first streams and first URLs were rehearsed compiles them again, and V8's compilation cache in that isolate hands back
   * the functions the rehearsal compiled lazily, so their code caches carry them too and a new isolate — a
   * Dynamic Worker's above all, whose first calls are Workers RPC — does not compile them again. If it fails,
   * the caches made by compiling alone (bootstrap-bundle.ts, #init) stay: slower, not wrong.
   */
  static async #rehearsedCaches(boot: Bootstrap, onCatastrophe: (message: string) => void): Promise<void> {
    let w: WorkerInstance | undefined;
    try {
      w = await WorkerInstance.#spare(boot, onCatastrophe, Limits.parse({}).memoryMb, true, false);
      const init = (await w.#isolate.compileScript(w.#initSource, { filename: 'cordon:bootstrap', produceCachedData: true })) as ivm.Script &
        ivm.CachedDataResult;
      initCache = init.cachedData ?? initCache;
      init.release();
      for (const name of ['rpc', 'streams', 'url'] as const) {
        const u = boot.units[name];
        const unit = (await w.#isolate.compileScript(u.source, { filename: `cordon:${name}`, produceCachedData: true })) as ivm.Script & ivm.CachedDataResult;
        u.cache = unit.cachedData ?? u.cache;
        unit.release();
      }
    } catch {
      // Kept as they were (above).
    } finally {
      w?.dispose();
    }
  }

  /** Gives a prepared instance its worker (once): its vars and bindings, then its modules. */
  async adopt(bundle: WorkerBundle): Promise<WorkerInstance> {
    if (this.#adopted || bundle.allowEval || bundle.limits.memoryMb !== this.bundle.limits.memoryMb) throw new Error('this spare cannot take that worker');
    this.#adopted = true;
    this.bundle = bundle;
    this.lastUsed = Date.now();
    await this.#failing(async () => {
      await this.#entry!.configure.apply(undefined, [JSON.stringify({ vars: bundle.vars, bindings: bootBindings(bundle) })], { timeout: bundle.limits.cpuMs });
      await this.#load();
    });
    return this;
  }

  /** Runs a setup step; a failure disposes the instance and rejects with a WorkerError. */
  async #failing(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      const err = this.#translate(e);
      this.dispose();
      throw err;
    }
  }

  /** A DevTools protocol session on this isolate (created with the inspector on). */
  inspect(): ivm.InspectorSession {
    if (!this.#inspector) throw new Error('this isolate was created without the inspector');
    return this.#isolate.createInspectorSession();
  }

  get disposed(): boolean {
    return this.#disposed || this.#isolate.isDisposed;
  }

  /** The isolate's heap in use, including memory held outside it (ArrayBuffers), in bytes. */
  async heapBytes(): Promise<number> {
    const h = await this.#isolate.getHeapStatistics();
    return h.used_heap_size + h.externally_allocated_size;
  }

  /**
   * Gives back the memory an idle isolate's garbage holds: V8 collects an isolate's garbage only when it
   * allocates, so what the bootstrap and the requests it served left behind stays resident for as long
   * as it sits idle (~0.2 MiB of a hello-world's 2.4). One garbage collection on the isolate's thread
   * that shrinks its heap (isolated-vm rebuilt: reduceMemory), once per idle spell, charged to an
   * account of its own, not to a request that arrives meanwhile. Nothing a worker sees changes.
   * `dropCode`: the bytecode of the functions it ran goes too (~0.12 MiB of a hello-world's 2.2): its
   * next request compiles what it runs again from source (~2–3 ms of CPU for a hello-world).
   */
  async compact(dropCode = false): Promise<void> {
    if (!this.compactable(dropCode)) return;
    this.#compacted = { at: this.lastUsed, droppedCode: dropCode };
    const reduce = this.#isolate.reduceMemory!;
    await this.#watchdogs.track(new Set([new Account(COMPACT_CPU_MS)]), reduce.call(this.#isolate, dropCode)).catch(() => {});
  }

  /** Idle, and not compacted as far (`dropCode`) since last used (with isolated-vm rebuilt). */
  compactable(dropCode = false): boolean {
    const done = this.#compacted.at === this.lastUsed && (this.#compacted.droppedCode || !dropCode);
    return this.#active === 0 && !this.disposed && !done && !!this.#isolate.reduceMemory;
  }

  /** Requests in flight (including their waitUntil phase). */
  get active(): number {
    return this.#active;
  }

  /**
   * Lazy unit `name` (bootstrap/units.ts) compiled in this isolate from the process's one copy of its
   * source and its code cache, and run in the worker's context: a reference to its factory. Called by the
   * isolate (a host callback) while it waits, so the nested compile and run are synchronous.
   */
  #unit(name: unknown): UnitRef | null {
    const unit = typeof name === 'string' && Object.hasOwn(this.#boot.units, name) ? this.#boot.units[name as keyof Bootstrap['units']] : undefined;
    if (!unit || !this.#context) return null;
    this.#unitsAsked.add(name as string);
    const early = this.#unitsAhead.get(name as string);
    // A reference handed to the isolate is, there, one it can deref.
    if (early && this.#unitsAhead.delete(name as string)) return early as unknown as UnitRef;
    const script = this.#isolate.compileScriptSync(unit.source, { filename: `cordon:${name as string}`, ...(unit.cache ? { cachedData: unit.cache } : {}) });
    try {
      return script.runSync(this.#context, { reference: true }) as unknown as UnitRef;
    } finally {
      script.release();
    }
  }

  /**
   * Lazy unit `name` compiled and run now, asynchronously — on the isolate's thread, not the process's
   * main thread — for a first use known to come (a Dynamic Worker is always served over Workers RPC):
   * #unit then hands it over instead of compiling it synchronously on the main thread, a cost that
   * otherwise comes with every load. Runtime code only: what tenant code sees is the same.
   */
  async unitAhead(name: keyof Bootstrap['units']): Promise<void> {
    const unit = this.#boot.units[name];
    if (!this.#context || this.#unitsAsked.has(name) || this.#unitsAhead.has(name)) return;
    const script = await this.#isolate.compileScript(unit.source, { filename: `cordon:${name}`, ...(unit.cache ? { cachedData: unit.cache } : {}) });
    try {
      const ref = await script.run(this.#context, { reference: true });
      if (this.#disposed || this.#unitsAsked.has(name)) ref.release();
      else this.#unitsAhead.set(name, ref);
    } finally {
      script.release();
    }
  }

  async #init(allowEval: boolean): Promise<void> {
    const context = (this.#context ??= await this.#isolate.createContext({ inspector: this.#inspector }));
    // Host callbacks take and return primitives (and ArrayBuffer copies) only; the bootstrap keeps
    // them in a closure and deletes these globals before anything else can run.
    const callbacks: HostCallbacks = {
      log: (level, message) => this.#logs.log(level, typeof message === 'string' ? message : formatLog(message)),
      random: (n) => {
        const b = randomBytes(Math.max(0, Math.min(65536, Number(n) | 0)));
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
      },
      // WebSockets: what the worker's server end sends or does goes to the browser's end (through ingress).
      wsSend: (id, data) => this.#sockets.toPeer(id, (p) => p.send(data), typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength),
      wsClose: (id, code, reason) => this.#sockets.toPeer(id, (p) => p.close(code, reason)),
      wsOpened: (id) => this.#sockets.opened(id),
      // International domain names for the URL parser: tr46 runs here, not in every isolate (see bootstrap/idna.ts).
      idna: (domain, options) => {
        if (typeof domain !== 'string' || typeof options !== 'string' || domain.length > MAX_IDNA_INPUT || options.length > 512) return null;
        const o = JSON.parse(options) as Record<string, unknown>;
        const flags = Object.fromEntries(IDNA_OPTIONS.map((k) => [k, o[k] === true]));
        return tr46.toASCII(domain, flags);
      },
      // The legacy multi-byte encodings' tables, read with the bootstrap (bootstrap/legacy-tables.ts).
      encodingTables: () => this.#boot.legacyTables,
      htmlRewriterWasm: () => copyOf(this.#boot.htmlRewriterWasm),
      brotliWasm: () => copyOf(this.#boot.brotliWasm),
      logMirror: () => this.#boot.logMirror,
      unit: (name) => this.#unit(name),
      // A timer's callback is charged to whoever had work in the isolate when it was set.
      setTimer: (id, ms) => this.#timers.set(id, ms, this.#watchdogs.owners()),
      clearTimer: (id) => this.#timers.clear(id),
      done: (...a) => {
        for (let i = 0; i + 3 < a.length; i += 4)
          this.#answered(a[i] as number, [a[i + 1] as string, takeBody(a[i + 2]) as ArrayBuffer | null, a[i + 3] as boolean]);
      },
      rpcOpen: (pipe, target) => {
        this.#pipeOwners.set(pipe, this.#watchdogs.owners());
        this.#pipes.opened(pipe, target);
      },
      rpcSend: (pipe, message) => this.#pipes.fromIsolate(pipe, message),
      rpcClose: (pipe, reason) => {
        this.#pipeOwners.delete(pipe);
        this.#pipes.closedByIsolate(pipe, reason);
      },
      bodyCancel: (id) => this.#cancelFetched(id),
      objectBusy: (pipe, call, busy) => this.#objectBusy(pipe, call, busy),
    };
    // An empty ExternalCopy: the bootstrap takes its class, for answers' bodies (done), and releases it.
    const globals: [string, ivm.Callback | ivm.Reference | ivm.ExternalCopy<number> | string][] = [[BODY_COPY_GLOBAL, new ivm.ExternalCopy(0)]];
    for (const name of Object.keys(callbacks) as (keyof HostCallbacks)[]) {
      const fn = hostCallback(callbacks[name] as (...args: unknown[]) => unknown);
      globals.push([
        CALLBACK_GLOBALS[name],
        (ASYNC_CALLBACKS as readonly string[]).includes(name) ? new ivm.Callback(fn, { ignored: true }) : new ivm.Callback(fn),
      ]);
    }
    // crypto.subtle: one stateless host function per isolate (host-crypto.ts checks every call again).
    const hostCrypto = createHostCrypto();
    const refs: HostReferences = {
      capCall: (handle, method, args) => this.#answer(this.#capCall(handle, method, args)),
      capCallSync: async (handle, method, args) =>
        new ivm.ExternalCopy(await this.#capCall(handle, method, args)).copyInto({ release: true }) as unknown as WireMessage,
      bodyPull: (seq) => this.#answer(this.#pullBody(seq)),
      // A transferred copy: the isolate receives the WireResult itself.
      crypto: async (call) => new ivm.ExternalCopy(await hostCrypto(call)).copyInto({ release: true }) as unknown as WireResult | NodeCryptoResult,
    };
    this.#capRef = new ivm.Reference(refs.capCall);
    this.#capSyncRef = new ivm.Reference(refs.capCallSync);
    this.#bodyRef = new ivm.Reference(refs.bodyPull);
    globals.push(
      [REFERENCE_GLOBALS.crypto, new ivm.Reference(refs.crypto)],
      [REFERENCE_GLOBALS.capCall, this.#capRef],
      [REFERENCE_GLOBALS.capCallSync, this.#capSyncRef],
      [REFERENCE_GLOBALS.bodyPull, this.#bodyRef],
    );
    const options: BootOptions = {
      allowEval,
      vars: this.bundle.vars,
      bindings: bootBindings(this.bundle),
      maxBody: MAX_BODY,
      maxHead: MAX_HEAD,
      memoryLimit: this.bundle.limits.memoryMb * MiB,
    };
    globals.push([OPTIONS_GLOBAL, JSON.stringify(options)]);
    // All set in one call on the isolate's thread, which also hands back the watchdogs' probe: one
    // synchronous call each held the event loop for a trip into the isolate (~25 per isolate), and
    // for longer whenever the isolate's thread was not running.
    const probe = (await context.evalClosure(
      'const names = JSON.parse($0); for (let i = 0; i < names.length; i++) globalThis[names[i]] = arguments[i + 1]; return Number;',
      [JSON.stringify(globals.map(([name]) => name)), ...globals.map(([, value]) => value)],
      { result: { reference: true } },
    )) as ivm.Reference<() => number>;
    if (this.#probe) probe.release();
    else this.#probe = probe;
    const script = await this.#isolate.compileScript(this.#initSource, {
      filename: 'cordon:bootstrap',
      ...(initCache ? { cachedData: initCache } : { produceCachedData: true }),
    });
    initCache ??= (script as ivm.Script & ivm.CachedDataResult).cachedData;
    try {
      // Its completion value is the entry dispatcher, already gone from the global scope (abi.ts TAKE_ENTRY).
      this.#dispatch = (await script.run(context, { timeout: 5000, reference: true })) as ivm.Reference<EntryDispatch>;
    } finally {
      script.release();
    }
    this.#entry = entryRefs(this.#dispatch);
  }

  /** The worker's modules: binary ones shipped in, then linked and evaluated, under the CPU limit. */
  async #load(): Promise<void> {
    const { cpuMs } = this.bundle.limits;
    const context = this.#context!;
    const watch = this.#watchdogs.arm(this.bundle.limits);
    try {
      await shipBinaryModules(this.bundle.modules, (name, type, bytes) =>
        this.#entry!.ship.apply(undefined, [name, type, new ivm.ExternalCopy(bytes).copyInto({ release: true })], { timeout: cpuMs }),
      );
      if (namesUrl(this.bundle.modules)) await this.unitAhead('url');
      const linked = await linkWorker(this.#isolate, context, this.bundle.mainModule, this.bundle.modules);
      const { main } = linked;
      // A worker that calls import() keeps its module handles for later imports; they go with the isolate.
      const dynamic = usesDynamicImport(this.bundle.modules);
      if (dynamic) await installDynamicImport(context, linked, this.bundle.mainModule, cpuMs);
      try {
        await main.evaluate({ timeout: cpuMs });
        const namespace = main.namespace;
        try {
          const problem = await this.#entry!.loaded.apply(undefined, [namespace.derefInto()], { timeout: cpuMs });
          if (problem) throw new WorkerError(500, 'worker threw an exception', `the main module failed to load: ${problem}`);
        } finally {
          namespace.release();
        }
      } finally {
        if (!dynamic) for (const m of linked.all) m.release();
      }
      await this.#entry!.end.apply(undefined, [], { timeout: cpuMs });
    } finally {
      watch.stop();
    }
  }

  /**
   * A capability call from tenant code: a WireMessage in (copied out of the isolate), one out (a copy
   * the isolate takes); errors become `{error}` with a message only.
   */
  async #capCall(handle: string, method: string, args: WireMessage): Promise<WireMessage> {
    // Copied into the isolate by isolated-vm (the isolate asks for `result: { copy: true }`).
    const reply = (value: object) => toMessage(value);
    try {
      if (typeof handle !== 'string' || typeof method !== 'string') throw new Error('malformed capability call');
      // A workflow run's steps and a hosted object's storage have a handle of their own; everything else is the worker's.
      // A hosted object's storage handle goes when its lease does (moved, evicted): say so, not which handle.
      if ((handle.startsWith('$obj:') || handle.startsWith('$ows:')) && !this.#stepHosts.has(handle))
        throw new Error("this Durable Object's lease has moved on (it was moved or evicted): its storage is no longer reachable from this instance");
      const caps = this.#stepHosts.get(handle) ?? this.#caps;
      if (!caps) throw new Error('this worker has no capabilities');
      let decoded: unknown;
      try {
        decoded = fromMessage(args);
      } catch {
        throw new Error('malformed capability call');
      }
      if (!Array.isArray(decoded)) throw new Error('malformed capability call');
      const ok = (await caps.call(handle, method, decoded, this.#watchdogs.timeLeft(this.bundle.limits.wallMs))) ?? null;
      return reply({ ok: this.#takeStream(ok), now: Date.now() });
    } catch (e) {
      try {
        return reply({ error: e instanceof Error ? String(e.message) : String(e), now: Date.now() });
      } catch {
        return reply({ error: 'capability call failed', now: Date.now() });
      }
    }
  }

  /**
   * The answer to a call the isolate made (capCall, bodyPull): the continuations it resumes run in the
   * isolate as a task of their own, charged to whoever had work there when the call was made.
   */
  async #answer<T>(call: Promise<T>): Promise<T> {
    const owners = this.#watchdogs.owners();
    try {
      return await call;
    } finally {
      this.#watchdogs.queued(owners);
    }
  }

  /** A call into the isolate whose result is the worker's promise: charged to `owners` until its own task has run. */
  #promised<T>(owners: Owners, call: Promise<T>): Promise<T> {
    this.#watchdogs.queued(owners);
    return call;
  }

  /**
   * A capability's answer with a body that streams (fetch()): the stream stays here and the isolate
   * gets its number, to pull chunks with as the worker reads (bodyPull) — the same path a request's
   * streamed body takes. At most MAX_FETCHED_STREAMS at once; the last request out cancels what is left.
   */
  #takeStream(ok: unknown): unknown {
    const stream = ok !== null && typeof ok === 'object' ? (ok as { stream?: unknown }).stream : undefined;
    if (!(stream instanceof ReadableStream)) return ok;
    if (this.#fetched.size >= MAX_FETCHED_STREAMS || this.disposed) {
      void stream.cancel().catch(() => {});
      throw new Error(`too many response bodies open: a worker may read ${MAX_FETCHED_STREAMS} at once (read or cancel some first)`);
    }
    const id = ++this.#seq;
    this.#incoming.set(id, stream.getReader());
    this.#fetched.add(id);
    return { ...(ok as object), stream: id };
  }

  /** The isolate cancelled a fetched body (or stopped reading it): the origin's connection closes. */
  #cancelFetched(id: number): void {
    if (this.#fetched.delete(id)) this.#dropIncoming(id);
  }

  /** A request or a workflow run starts: its hooks, a sequence number and its watchdogs. */
  #enter(hooks: RequestHooks): { seq: number; watch: Watch } {
    this.lastUsed = Date.now();
    this.#logs.sink = hooks.log;
    this.#caps = hooks.capabilities ?? this.#caps;
    this.#limitHit = hooks.limitHit ?? this.#limitHit;
    if (this.disposed) throw new WorkerError(503, 'worker was unloaded; retry');
    const seq = ++this.#seq;
    this.#active++;
    return { seq, watch: this.#watchdogs.arm(this.bundle.limits) };
  }

  /**
   * One run of a workflow instance (bootstrap runWorkflow): `steps` answers its step calls. Resolves
   * with the bootstrap's JSON outcome; a broken limit rejects with a WorkerError as a request would.
   */
  async runWorkflow(className: string, event: string, steps: CapabilityHost, hooks: RequestHooks): Promise<string> {
    return this.#invoke(hooks, (seq) => {
      const handle = `$step:${seq}`;
      this.#stepHosts.set(handle, steps);
      return [
        (now) =>
          this.#entry!.runWorkflow.apply(undefined, [className, event, handle, now], {
            result: { promise: true, copy: true },
            timeout: this.bundle.limits.cpuMs,
          }) as Promise<unknown>,
        () => this.#stepHosts.delete(handle),
      ];
    });
  }

  /**
   * One call on Durable Object `key`, hosted in this isolate (made on its first call): `storage`
   * answers its storage calls while the object lives here. Resolves with the encoded result or
   * '!' + the error it threw; a broken limit rejects with a WorkerError as a request would.
   */
  async objectCall(
    { key, className, id, name, storage, sockets }: HostedObject,
    call: { kind: string; method: string; payload: string },
    hooks: RequestHooks,
  ): Promise<string> {
    const handle = `$obj:${key}`;
    this.#stepHosts.set(handle, storage);
    // Its WebSockets (bootstrap/do-websockets.ts): a handle of their own, beside its storage's.
    this.#stepHosts.set(`$ows:${key}`, sockets);
    return this.#invoke(hooks, () => [
      (now) =>
        this.#entry!.objectCall.apply(undefined, [key, className, id, name, handle, call.kind, call.method, call.payload, now], {
          result: { promise: true, copy: true },
          timeout: this.bundle.limits.cpuMs,
        }) as Promise<unknown>,
      () => {},
    ]);
  }

  /**
   * A Workers RPC session to Durable Object `key`, hosted in this isolate (made on first use): a
   * stub's RPC methods. The session is not an invocation itself: each call on it is (objectBusy), as
   * each event of an object is, so an open session holds no watchdog and a caller in this isolate does
   * not keep its own scope open through it.
   */
  async serveObject({ key, className, id, name, storage, sockets }: HostedObject, caller: PipePeer, hooks: RequestHooks): Promise<PipePeer> {
    if (this.disposed) throw new WorkerError(503, 'worker was unloaded; retry');
    this.lastUsed = Date.now();
    const handle = `$obj:${key}`;
    this.#stepHosts.set(handle, storage);
    this.#stepHosts.set(`$ows:${key}`, sockets);
    let pipe: { id: number; end: PipePeer };
    try {
      pipe = this.#pipes.serve(caller);
    } catch (e) {
      throw new WorkerError(503, (e as Error).message);
    }
    this.#objectSessions.set(pipe.id, { hooks, calls: new Map() });
    return this.#opened(pipe.end, () =>
      this.#watchdogs.track(
        'all',
        this.#entry!.objectServe.apply(undefined, [pipe.id, key, className, id, name, handle, Date.now()], { timeout: this.bundle.limits.cpuMs }),
      ),
    );
  }

  /**
   * A served session's opening call into the isolate (`open`: it answers a problem, or nothing): the
   * worker's end of the session, or an error after closing it.
   */
  async #opened(end: PipePeer, open: () => Promise<unknown>): Promise<PipePeer> {
    let problem: unknown;
    try {
      problem = await open();
    } catch (e) {
      end.close('the worker failed');
      throw this.#fail(e);
    } finally {
      this.#logs.flush();
    }
    if (problem) {
      end.close(String(problem));
      throw new WorkerError(500, String(problem));
    }
    return end;
  }

  /** A call on Durable Object session `pipe` starts (entered as a request is) or ends. */
  #objectBusy(pipe: number, call: number, busy: boolean): void {
    const session = this.#objectSessions.get(pipe);
    if (!session || this.disposed) return;
    if (busy) {
      if (session.calls.has(call)) return;
      session.calls.set(call, this.#enter(session.hooks).watch);
      return;
    }
    const watch = session.calls.get(call);
    if (!watch) return;
    session.calls.delete(call);
    watch.stopWall();
    void this.#afterResponse(undefined, watch);
  }

  /** A Durable Object session ended: the calls still in flight on it are over too. */
  #objectSessionEnded(pipe: number): void {
    const session = this.#objectSessions.get(pipe);
    if (!session) return;
    for (const call of [...session.calls.keys()]) this.#objectBusy(pipe, call, false);
    this.#objectSessions.delete(pipe);
  }

  /** Object `key` no longer lives here: its instance and its storage handle go. */
  objectDrop(key: string): void {
    this.#stepHosts.delete(`$obj:${key}`);
    this.#stepHosts.delete(`$ows:${key}`);
    if (!this.disposed)
      void this.#watchdogs.track('all', this.#entry!.objectDrop.apply(undefined, [key], { timeout: this.bundle.limits.cpuMs })).catch(() => {});
  }

  /** scheduled(event, env, ctx) for a cron trigger, waitUntil included; an exception rejects as a WorkerError. */
  async runScheduled(cron: string, scheduledTime: number, hooks: RequestHooks): Promise<void> {
    const out = await this.#invoke(hooks, () => [
      (now) =>
        this.#entry!.runScheduled.apply(undefined, [cron, scheduledTime, now], {
          result: { promise: true, copy: true },
          timeout: this.bundle.limits.cpuMs,
        }) as Promise<unknown>,
      () => {},
    ]);
    if (out) {
      throw this.#fail(new WorkerError(500, 'scheduled() failed', out));
    }
  }

  /** queue(batch, env, ctx) for one batch, waitUntil included: the handler's outcome as JSON (a throw is in it, as `error`). */
  runQueue(queue: string, messages: QueueMessageWire[], hooks: RequestHooks): Promise<string> {
    return this.#invoke(hooks, () => [
      (now) =>
        this.#entry!.runQueue.apply(undefined, [queue, new ivm.ExternalCopy(toMessage(messages)).copyInto({ release: true }), now], {
          result: { promise: true, copy: true },
          timeout: this.bundle.limits.cpuMs,
        }) as Promise<unknown>,
      () => {},
    ]);
  }

  /** An invocation other than a request: entered and left like one, under the same watchdogs. */
  async #invoke(hooks: RequestHooks, prepare: (seq: number) => [(now: number) => Promise<unknown>, () => unknown]): Promise<string> {
    const { seq, watch } = this.#enter(hooks);
    const [call, cleanup] = prepare(seq);
    try {
      const out = await this.#promised(new Set([watch.account]), call(Date.now()));
      if (typeof out !== 'string') throw new WorkerError(500, 'worker returned an invalid result');
      return out;
    } catch (e) {
      throw this.#fail(e);
    } finally {
      cleanup();
      watch.stopWall();
      void this.#afterResponse(undefined, watch);
      this.#logs.flush();
    }
  }

  /**
   * The next chunk of a request body streaming in, as a fresh ArrayBuffer (bytes cross, never text),
   * or null at its end. The reader is the isolate: it pulls only as fast as the worker reads.
   */
  async #pullBody(seq: number): Promise<ArrayBuffer | null> {
    const reader = this.#incoming.get(seq);
    if (!reader) return null;
    const { done, value } = await reader.read();
    if (done || !value) {
      this.#incoming.delete(seq);
      this.#fetched.delete(seq);
      return null;
    }
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength) as ArrayBuffer;
  }

  /** A 101 from the worker: its pair id (in the head) joined to the browser's end ingress holds. */
  #bindSocket(id: number, peer: SocketPeer | undefined): WorkerSocket {
    if (!peer) throw new WorkerError(500, 'worker returned an invalid response', 'a 101 response to a request that was not a WebSocket upgrade');
    const problem = this.#sockets.bind(id, peer);
    if (problem) throw new WorkerError(500, 'worker returned an invalid response', problem);
    const event = (type: string, data: string | ArrayBuffer | null, code = 1005, reason = '') =>
      this.disposed
        ? Promise.resolve()
        : this.#watchdogs
            .track(
              'all',
              this.#entry!.wsEvent.apply(
                undefined,
                [id, type, typeof data === 'string' || data === null ? data : new ivm.ExternalCopy(data).copyInto({ release: true }), code, reason, Date.now()],
                { timeout: this.bundle.limits.cpuMs },
              ),
            )
            .then(
              () => this.#logs.flush(),
              (e: unknown) => {
                this.#fail(e);
                peer.close(1011, 'the worker failed');
              },
            );
    return {
      message: (data) => event('message', data),
      close: async (code, reason) => {
        await event('close', null, code, reason);
        this.#sockets.closed(id);
      },
    };
  }

  /** The request is over: whatever of its body the worker did not read is not wanted. */
  #dropIncoming(seq: number): void {
    const reader = this.#incoming.get(seq);
    this.#incoming.delete(seq);
    if (reader) void reader.cancel().catch(() => {});
  }

  /**
   * Workers RPC: serve entrypoint `entrypoint` ('default' for the default export) for a caller whose
   * end of the session is `caller`; resolves with the worker's end. The session is an invocation of
   * this worker (CPU and wall-time watchdogs, as a request) until either end closes it.
   */
  async serve(entrypoint: string, props: unknown, caller: PipePeer, hooks: RequestHooks): Promise<PipePeer> {
    const { watch } = this.#enter(hooks);
    let pipe: { id: number; end: PipePeer };
    try {
      pipe = this.#pipes.serve(caller);
    } catch (e) {
      void this.#afterResponse(undefined, watch);
      throw new WorkerError(503, (e as Error).message);
    }
    this.#served.set(pipe.id, watch);
    return this.#opened(pipe.end, () =>
      this.#watchdogs.track(
        new Set([watch.account]),
        this.#entry!.rpcServe.apply(undefined, [pipe.id, entrypoint, JSON.stringify(props ?? null), Date.now()], { timeout: this.bundle.limits.cpuMs }),
      ),
    );
  }

  /** An entry point called for a pipe: a failure is the worker's (its isolate may be gone), logged once. */
  #intoIsolate(name: 'rpcDeliver' | 'rpcClosed', args: [number, string, number] | [number, string]): void {
    if (this.disposed) return;
    const id = args[0];
    const served = this.#served.get(id);
    // A served session's messages are its invocation's; a pipe the worker opened, its opener's; an object session's, unknown.
    const owners = served ? new Set([served.account]) : (this.#pipeOwners.get(id) ?? 'all');
    if (name === 'rpcClosed') this.#pipeOwners.delete(id);
    this.#watchdogs
      .track(owners, (this.#entry![name] as ivm.Reference<(...a: unknown[]) => void>).apply(undefined, args, { timeout: this.bundle.limits.cpuMs }))
      .then(
        () => this.#logs.flush(),
        (e: unknown) => {
          // Messages already on their way into a dying isolate all fail: its end is logged once.
          if (this.#pipeFailureLogged) return;
          this.#fail(e);
          // After #fail: the failure itself may be what ends the isolate (a timed-out call is a CPU kill).
          this.#pipeFailureLogged = this.disposed;
        },
      );
  }
  #pipeFailureLogged = false;

  /**
   * One request, run as a routed request is. `entrypoint`: a parent's fetch() through a stub of this
   * loaded Worker's entrypoint (worker-loader.ts), answered by that entrypoint, with its props (JSON).
   */
  async handle(
    request: WireRequest,
    hooks: RequestHooks,
    bodyStream?: ReadableStream<Uint8Array>,
    socket?: SocketPeer,
    entrypoint?: { name: string; props: string | null },
  ): Promise<HandledResponse> {
    const { seq, watch } = this.#enter(hooks);
    if (bodyStream) this.#incoming.set(seq, bodyStream.getReader());
    let result: Answer;
    try {
      const fields: RequestMeta = { method: request.method, url: request.url, headers: request.headers, streamed: bodyStream !== undefined, cf: request.cf };
      if (entrypoint) [fields.entrypoint, fields.props] = [entrypoint.name, entrypoint.props];
      const meta = JSON.stringify(fields);
      const body = request.body ? ownBuffer(request.body) : null;
      result = await this.#submit(seq, meta, body, watch);
    } catch (e) {
      const err = this.#fail(e);
      this.#dropIncoming(seq);
      void this.#afterResponse(undefined, watch);
      throw err;
    }
    const streamed = typeof result[0] === 'string' && result[0].startsWith('~');
    // The isolate is alive and idle: from here on the request only waits for its waitUntil promises,
    // unless its body streams out: then the request (and its watchdogs) lasts until the stream ends.
    if (!streamed) {
      this.#dropIncoming(seq);
      watch.stopWall();
      void this.#afterResponse(seq, watch, result[2] === true);
    }
    try {
      if (streamed) {
        const { webSocketId: _none, ...head } = readResponse([result[0].slice(1), null]);
        return { ...head, stream: this.#bodyStream(seq, watch) };
      }
      const { webSocketId, ...response } = readResponse([result[0], result[1]]);
      if (webSocketId !== undefined) return { ...response, webSocket: this.#bindSocket(webSocketId, socket) };
      if (response.objectSocket && !socket)
        throw new WorkerError(500, 'worker returned an invalid response', 'a 101 response to a request that was not a WebSocket upgrade');
      return response;
    } catch (e) {
      throw this.#fail(e);
    } finally {
      this.#logs.flush();
    }
  }

  /**
   * A request for the isolate: gathered with the others that arrive in the same turn of the event
   * loop (a socket read brings many), then all sent in one call (#sendBatch); its answer comes back
   * on its own through #answered.
   */
  #submit(seq: number, meta: string, body: ArrayBuffer | null, watch: Watch): Promise<Answer> {
    const answer = new Promise<Answer>((resolve, reject) => this.#answers.set(seq, { resolve, reject }));
    this.#batch.push({ seq, meta, body, watch });
    if (this.#batch.length === 1) process.nextTick(() => this.#sendBatch());
    return answer;
  }

  #sendBatch(): void {
    const { cpuMs } = this.bundle.limits;
    while (this.#batch.length && !this.disposed) {
      const items = this.#batch.splice(0, MAX_BATCH);
      const failed = (e: unknown) => {
        const err = this.#translate(e);
        for (const i of items) this.#answers.get(i.seq)?.reject(err);
        for (const i of items) this.#answers.delete(i.seq);
      };
      try {
        // Each body is the request's own ArrayBuffer (handle() sliced it out): moved into the isolate, not
        // copied again (an array of them would be serialised into a copy, then copied into the isolate).
        // Each request's metadata crosses as the JSON handle() made (one encoding, one parse in the isolate).
        const args: [number, ...(number | string | ivm.Copy<ArrayBuffer> | null)[]] = [Date.now()];
        for (const i of items)
          args.push(i.seq, i.meta, i.body ? new ivm.ExternalCopy(i.body, { transferOut: true }).copyInto({ release: true, transferIn: true }) : null);
        // Each request is also under its own CPU watchdog (Watchdogs.arm); this bound is the backstop for the call.
        // One task: its CPU is charged to each request in it (they run in turn, each under its own limit).
        this.#watchdogs
          .track(new Set(items.map((i) => i.watch.account)), this.#entry!.runBatch.apply(undefined, args, { timeout: cpuMs * items.length }))
          .catch(failed);
      } catch (e) {
        failed(e); // from a tick of its own, a throw here would take the whole process down
      }
    }
  }

  /** The bootstrap's answer to request `seq` (checked by readResponse like any answer). */
  #answered(seq: number, answer: Answer): void {
    const waiting = this.#answers.get(seq);
    this.#answers.delete(seq);
    waiting?.resolve(answer);
  }

  /** What requests still waiting for their answer get when the isolate goes. */
  #pendingError(): WorkerError {
    if (this.#kill) return this.#translate(null);
    if (this.#isolate.isDisposed) return this.#memoryError();
    return new WorkerError(503, 'worker was unloaded while handling the request; retry');
  }

  #memoryError(): WorkerError {
    this.#killed('memory');
    return limitError('memory', `worker exceeded its memory limit of ${this.bundle.limits.memoryMb} MB`);
  }

  /**
   * A response body the worker streams: pulled chunk by chunk from the isolate as the reader (ingress,
   * over RPC) wants more — backpressure all the way — each pull under the CPU limit, the whole under
   * the wall-time limit, at most MAX_STREAMED_BODY bytes in all.
   */
  #bodyStream(seq: number, watch: Watch): ReadableStream<Uint8Array> {
    const { cpuMs } = this.bundle.limits;
    let total = 0;
    let room = PULL_BYTES;
    // Buffers written to the client (fast-port.ts frees them through freeSole), for this stream's next pulls.
    const spares = new StreamSpares(SPARE_PULLS);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      spares.close();
      this.#dropIncoming(seq);
      watch.stopWall();
      void this.#afterResponse(seq, watch);
      this.#logs.flush();
    };
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          try {
            // A buffer of this process's, moved into the isolate, which copies the chunks it has into it and
            // moves it back out (bootstrap pull): the bytes copied once. A new one is zeroed: nothing of any
            // other buffer's in it.
            const into = spares.take() ?? new ArrayBuffer(room);
            const size = into.byteLength;
            const out = (await this.#promised(
              new Set([watch.account]),
              this.#entry!.pull.apply(undefined, [seq, new ivm.ExternalCopy(into, { transferOut: true }).copyInto({ release: true, transferIn: true })], {
                result: { promise: true, copy: true },
                timeout: cpuMs,
              }),
            )) as unknown as { bytes?: unknown } | null;
            const chunk = out === null ? null : takeBody(out.bytes);
            // The reader cancelled (the client went away) while this chunk was on its way: nothing to hand on.
            if (finished) return;
            if (chunk === null) {
              controller.close();
              return finish();
            }
            if (!(chunk instanceof Uint8Array) || chunk.byteOffset !== 0 || chunk.buffer.byteLength !== size)
              throw new WorkerError(500, 'worker returned an invalid response', 'a body chunk did not arrive as bytes');
            total += chunk.byteLength;
            if (total > MAX_STREAMED_BODY)
              throw new WorkerError(500, `worker response body exceeds the ${MAX_STREAMED_BODY / MiB} MiB limit for streamed bodies`);
            // A new buffer's size: twice what this pull brought, between MIN_PULL and PULL_BYTES (zeroing 256 KiB
            // for a stream of small events would cost more than its bytes).
            room = Math.min(PULL_BYTES, Math.max(MIN_PULL, 2 * chunk.byteLength));
            controller.enqueue(soleBytes(chunk.buffer as ArrayBuffer, chunk.byteLength, spares.reuse));
          } catch (e) {
            if (finished) return; // cancelled meanwhile: the failure of a pull nobody waits for is no worker exception
            const err = this.#fail(e);
            controller.error(err);
            finish();
          }
        },
        cancel: () => {
          if (!this.disposed)
            void this.#watchdogs.track(new Set([watch.account]), this.#entry!.cancelStream.apply(undefined, [seq], { timeout: cpuMs })).catch(() => {});
          finish();
        },
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * waitUntil (`seq`; none when the request failed), then, if this was the last request in flight,
   * `end`: all under the request's CPU watchdog. `ended`: the isolate had nothing else going on and
   * ended the request's scope itself; nothing is left to wait for or end.
   */
  async #afterResponse(seq: number | undefined, watch: Watch, ended = false): Promise<void> {
    if (seq !== undefined && !ended && !this.disposed) await this.#drain('drain', seq, watch);
    if (seq !== undefined && this.disposed && this.#kill !== 'evicted') {
      // Killed after its response had gone out: the log is the only place to say so.
      this.#logs.log('error', `${this.#translate(null).message} (after the response, in ctx.waitUntil)`);
    }
    await this.#leave(ended, watch.deadline);
    watch.stop();
    this.#logs.flush();
  }

  /**
   * One request, run or open socket fewer. The last one out drops the isolate's timers and calls
   * `end` (unless the isolate ended the scope itself: `ended`). `end` queues behind everything the
   * isolate still had to do: while it waits, the caller's CPU watchdog is still armed, and an isolate
   * still blocked (a synchronous capability call that never returns) is killed a moment after `deadline`.
   */
  async #leave(ended: boolean, deadline: number): Promise<void> {
    this.#active--;
    if (this.#active !== 0 || this.disposed) return;
    this.#timers.clearAll();
    for (const id of this.#fetched) this.#cancelFetched(id);
    if (ended) return;
    const stuck = setTimeout(() => this.#terminate('wall'), Math.max(0, deadline - Date.now()) + END_GRACE_MS);
    await this.#watchdogs.track('all', this.#entry!.end.apply(undefined, [], { timeout: this.bundle.limits.cpuMs })).catch(() => {});
    clearTimeout(stuck);
  }

  /** Until the waitUntil promises of request `seq` (drain) or served session `seq` (rpcDrain) settle, or its wall-time deadline. */
  async #drain(entry: 'drain' | 'rpcDrain', seq: number, watch: Watch): Promise<void> {
    if (this.disposed) return;
    let deadline: NodeJS.Timeout | undefined;
    try {
      // Its waitUntil promises' own continuations are charged as what resumes them is (a call's answer, a timer).
      const drained = this.#promised(
        new Set([watch.account]),
        this.#entry![entry].apply(undefined, [seq], { result: { promise: true }, timeout: this.bundle.limits.cpuMs }),
      );
      const remaining = Math.max(0, watch.deadline - Date.now());
      await Promise.race([drained, new Promise<void>((resolve) => (deadline = setTimeout(resolve, remaining)))]);
      drained.catch(() => {});
    } catch {
      // the isolate died (a watchdog or the memory limit): nothing left to wait for
    } finally {
      clearTimeout(deadline);
    }
  }

  /** What went wrong, as a WorkerError, logged to the worker's log. */
  #fail(e: unknown): WorkerError {
    const err = this.#translate(e);
    this.#logs.log('error', err.detail === err.message ? err.message : `${err.message}: ${err.detail}`);
    this.#logs.flush();
    return err;
  }

  #terminate(kind: Kill): void {
    if (this.#disposed) return;
    this.#kill = kind;
    if (kind === 'cpu' || kind === 'wall') this.#killed(kind);
    this.dispose();
  }

  /**
   * Told once when a limit ends this isolate, instead of the entries' limitHit: a Dynamic Worker's
   * parent counts it as its own (worker-loader.ts).
   */
  onKilled: ((limit: 'cpu' | 'wall' | 'memory') => void) | undefined;
  /** The entries' report of a broken limit (the last one to enter: one isolate is one worker version). */
  #limitHit: RequestHooks['limitHit'];
  #killedTold = false;
  #killed(limit: 'cpu' | 'wall' | 'memory'): void {
    if (this.#killedTold) return;
    this.#killedTold = true;
    if (this.onKilled) return this.onKilled(limit);
    // Whichever entry was running — a request, a cron tick, a workflow run, a queue batch, a served RPC
    // session, a Durable Object call — the worker broke its own limit.
    if (limit === 'cpu' || limit === 'memory') this.#limitHit?.(limit);
  }

  #translate(e: unknown): WorkerError {
    if (e instanceof WorkerError) return e;
    const { cpuMs, wallMs } = this.bundle.limits;
    if (this.#kill === 'cpu') return limitError('cpu', `worker exceeded its CPU time limit of ${cpuMs} ms`);
    if (this.#kill === 'wall') return limitError('wall', `worker exceeded its wall time limit of ${wallMs} ms`);
    if (this.#kill === 'evicted') return new WorkerError(503, 'worker was unloaded while handling the request; retry');
    // A disposed isolate rejects pending calls with `null` or with an Error.
    const message = e instanceof Error ? e.message : String(e);
    if (/memory limit/i.test(message) || (this.#isolate.isDisposed && !this.#disposed)) {
      this.dispose();
      return this.#memoryError();
    }
    if (/Script execution timed out/i.test(message)) {
      this.#terminate('cpu'); // a timed-out isolate may be mid-way through anything: start afresh
      return limitError('cpu', `worker exceeded its CPU time limit of ${cpuMs} ms`);
    }
    if (e instanceof ModuleError) return new WorkerError(e.status, 'worker failed to load', message);
    if (e === null || this.#disposed) return new WorkerError(503, 'worker was unloaded while handling the request; retry');
    // Errors thrown in the isolate during module evaluation: the tenant's own message and stack.
    return new WorkerError(500, 'worker threw an exception', e instanceof Error ? tenantStack(e.stack ?? message) : message);
  }

  /** Drop the isolate. `evicted`: the runtime unloads it (requests still in flight get a 503). */
  dispose(reason?: 'evicted'): void {
    if (this.#disposed) return;
    // Nothing of the worker's running: its isolate can be torn down on a coming turn (isolate-disposal.ts).
    const idle = this.#active === 0 && this.#answers.size === 0 && !this.#kill && !this.#watchdogs.busy;
    if (reason && !this.#kill) this.#kill = reason;
    const gone = this.#pendingError();
    this.#disposed = true;
    for (const waiting of this.#answers.values()) waiting.reject(gone);
    this.#answers.clear();
    this.#batch = [];
    this.#timers.clearAll();
    this.#dispatch?.release();
    this.#capRef?.release();
    this.#capSyncRef?.release();
    this.#bodyRef?.release();
    for (const ref of this.#unitsAhead.values()) ref.release();
    this.#sockets.closeAll(1011, 'the worker was unloaded');
    this.#pipes.closeAll(`the called worker failed: ${gone.message}`);
    for (const r of this.#incoming.values()) void r.cancel().catch(() => {});
    this.#incoming.clear();
    this.#context?.release();
    if (idle) isolateDisposal.add(this.#isolate);
    else if (!this.#isolate.isDisposed) this.#isolate.dispose();
    // deliver whatever the worker logged before it died
    this.#logs.flush();
  }
}
