/**
 * What ingress may call on a sandbox: run one request for the worker a code key unlocks. The sandbox
 * itself holds no code: it asks the supervisor for the bundle with the key the request carries,
 * and keeps it only in memory.
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { check } from '../../lib/rpc/validate.ts';
import { SendQueue } from '../../lib/send-queue.ts';
import { WireRequest, type BrowserSocket, type WireResponse, type WorkerSocketApi } from '../../schemas/http.ts';
import { WorkerTarget, type WorkerBundle } from '../../schemas/worker.ts';
import type { SandboxApi, SupervisorForSandbox, LogEntry } from '../../schemas/services.ts';
import type { Logger } from '../../lib/log.ts';
import type { CreationReports } from './creation-reports.ts';
import type { LoaderEvents } from './runtime/worker-loader.ts';
import { WorkerError, type HandledResponse, type RunHooks, type SocketPeer, type WorkerRuntime, type WorkerSocket } from './runtime/index.ts';
import { ForwardedCapabilities, inTraceContext } from './capabilities.ts';
import { wireSize } from '../../lib/rpc/wire-size.ts';
import { supervisorCalls } from './call-gate.ts';
import type { FlightRecorder } from './flight-recorder.ts';
import { SpanKind } from '@opentelemetry/api';
import { annotateSpan, inSpan, recordedTraceId, traceAttributes } from '../../lib/telemetry.ts';
import { VersionAssets } from './assets/server.ts';

const MAX_CACHED_KEYS = 1000;

export interface SupervisorLink {
  ready(timeoutMs?: number): Promise<{ remote: SupervisorForSandbox }>;
}

/** Log entries in one call at most (as encoded): a worker's log shares the cordon's session with everyone's storage calls. */
const MAX_LOG_BATCH = 1024 * 1024;

/** Entries in order, cut into batches of at most MAX_LOG_BATCH on the wire (a line is at most 64 Ki characters, so always fits). */
export function logBatches(entries: LogEntry[]): LogEntry[][] {
  const batches: LogEntry[][] = [];
  let batch: LogEntry[] = [];
  let size = 0;
  for (const entry of entries) {
    const n = wireSize(entry);
    if (batch.length && size + n > MAX_LOG_BATCH) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(entry);
    size += n;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/** Where a worker's console output goes: the supervisor's log for that worker (named by code key). */
/** Made in the span of what the worker runs (a request, a run): each line names that trace when it is recorded. */
export function logSink(supervisor: SupervisorLink, codeKey: string, log: Logger): (entries: LogEntry[]) => void {
  const traceId = recordedTraceId();
  return (entries) => {
    const lines = traceId ? entries.map((e) => ({ ...e, traceId })) : entries;
    void supervisor
      .ready(1000)
      .then(async (s) => {
        for (const batch of logBatches(lines)) await supervisorCalls.run(() => s.remote.log(codeKey, batch));
      })
      .catch((e: Error) => log.debug('dropped worker log entries', { error: e.message }));
  };
}

/** A broken CPU or memory limit of the worker (or of a Dynamic Worker it loaded): a quarantine signal against it. */
function reportLimit(deps: Pick<SandboxDeps, 'supervisor' | 'log'>, codeKey: string, kind: 'cpu' | 'memory'): void {
  void deps.supervisor
    .ready(1000)
    .then((s) => s.remote.limitHit(codeKey, kind))
    .catch((err: Error) => deps.log.debug('could not report a limit hit', { error: err.message }));
}

/** What the Dynamic Workers a worker loads do that counts against it: each load, and each limit one breaks. */
function loaderEvents(deps: Pick<SandboxDeps, 'supervisor' | 'log' | 'creations'>, codeKey: string): LoaderEvents {
  return { created: () => deps.creations.add(codeKey, 'dynamic-worker'), limitHit: (kind) => reportLimit(deps, codeKey, kind) };
}

/**
 * What the runtime gets for one entry into worker `codeKey` (a request, a cron tick, a workflow run, a
 * queue batch, a served Workers RPC session, a Durable Object call): its log, its capabilities in the
 * caller's trace, the events of the Dynamic Workers it loads, and the report of a limit it breaks
 * itself (a quarantine signal) — made in one place, so no entry point forgets one. Call it
 * inside the entry's span (the log lines carry its trace id).
 */
export function entryHooks(deps: SandboxDeps, codeKey: string, capabilities: RunHooks['capabilities']): RunHooks {
  return {
    log: logSink(deps.supervisor, codeKey, deps.log),
    capabilities: inTraceContext(capabilities),
    events: loaderEvents(deps, codeKey),
    limitHit: (kind) => reportLimit(deps, codeKey, kind),
  };
}

function textResponse(status: number, text: string): HandledResponse & WireResponse {
  return { status, statusText: '', headers: [['content-type', 'text/plain; charset=utf-8']], body: new TextEncoder().encode(text + '\n') };
}

interface Loaded {
  bundle: WorkerBundle;
  capabilities: ForwardedCapabilities | undefined;
  /** Its static assets, when it has some (served here, docs/static-assets.md). */
  assets?: VersionAssets;
}

/** Bundles and capabilities by code key, fetched once from the supervisor and kept in memory (oldest dropped first). */
export class BundleCache {
  readonly #bundles = new Map<string, Promise<Loaded>>();
  readonly #supervisor: SupervisorLink;
  constructor(supervisor: SupervisorLink) {
    this.#supervisor = supervisor;
  }

  /** Forget everything: the supervisor restarted, so the capabilities we held are gone. */
  clear(): void {
    this.#bundles.clear();
  }

  get(codeKey: string): Promise<Loaded> {
    let p = this.#bundles.get(codeKey);
    if (!p) {
      p = this.#supervisor.ready().then(async (s) => {
        const bundle = await s.remote.loadWorker(codeKey);
        let assets: VersionAssets | undefined;
        const capabilities = new ForwardedCapabilities(await s.remote.capabilities(codeKey), bundle.bindings, (method, args) =>
          method === 'fetch' ? assets!.bindingFetch(args) : assets!.part(args),
        );
        if (bundle.assets) assets = new VersionAssets(bundle.workerId, bundle.assets, (handle, method, args) => capabilities.call(handle, method, args));
        return { bundle, capabilities, assets };
      });
      this.#bundles.set(codeKey, p);
      p.catch(() => this.#bundles.delete(codeKey));
      if (this.#bundles.size > MAX_CACHED_KEYS) this.#bundles.delete(this.#bundles.keys().next().value!);
    }
    return p;
  }
}

/** What a worker's WebSocket may have sent that the client has not yet taken, before it is closed. */
const MAX_UNSENT = 16 * 1024 * 1024;
/** Messages on their way to ingress at once (its quota of calls in flight is per session, shared by all). */
const MAX_SENDING = 32;

/**
 * The browser's end as the worker's socket sees it. Messages go to ingress a few at a time, in order;
 * the rest wait here, and a client that does not read is closed rather than buffered for.
 */
function socketPeer(browser: RpcStub<BrowserSocket>): SocketPeer {
  const sizeOf = (data: string | Uint8Array) => (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength);
  let unsent = 0;
  let closing: [number, string] | undefined;
  const close = () => void browser.close(...closing!).catch(() => {});
  const queue = new SendQueue<string | Uint8Array>(
    MAX_SENDING,
    (data) => browser.send(data),
    (data) => {
      unsent -= sizeOf(data);
      if (closing && queue.size === 0) close(); // after what was sent before it
    },
  );
  return {
    send(data) {
      if (closing) return;
      const message = typeof data === 'string' ? data : new Uint8Array(data);
      if ((unsent += sizeOf(message)) > MAX_UNSENT) {
        queue.clear();
        closing = [1011, 'the client does not read fast enough'];
        return close();
      }
      queue.push(message);
    },
    close(code, reason) {
      if (closing) return;
      closing = [code, reason];
      if (queue.size === 0) close();
    },
  };
}

/** The worker's end of a WebSocket, for ingress to deliver what the browser sends. */
class WorkerSocketTarget extends RpcTarget implements WorkerSocketApi {
  readonly #socket: WorkerSocket;
  readonly #closed: () => void;
  constructor(socket: WorkerSocket, closed: () => void) {
    super();
    this.#socket = socket;
    this.#closed = closed;
  }
  message(data: unknown): Promise<void> {
    if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new TypeError('a message is text or bytes');
    if (typeof data === 'string') return this.#socket.message(data);
    // The isolate gets an ArrayBuffer: the one behind the bytes when they fill it, else a copy of them.
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    return this.#socket.message(whole ? (data.buffer as ArrayBuffer) : (data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer));
  }
  /** The browser's end closed (every way a socket ends comes through here): the worker hears of it. */
  close(code: unknown, reason: unknown): Promise<void> {
    return this.#socket.close(typeof code === 'number' ? code : 1005, typeof reason === 'string' ? reason.slice(0, 123) : '').finally(this.#closed);
  }
}

/** What a sandbox's RPC targets (the port ingress calls, the runner the supervisor calls) work with. */
export interface SandboxDeps {
  runtime: WorkerRuntime;
  bundles: BundleCache;
  supervisor: SupervisorLink;
  log: Logger;
  recorder: FlightRecorder;
  creations: CreationReports;
}

export class SandboxPort extends RpcTarget implements SandboxApi {
  readonly #deps: SandboxDeps;

  constructor(deps: SandboxDeps) {
    super();
    this.#deps = deps;
  }

  handle(targetArg: unknown, requestArg: unknown): Promise<WireResponse> {
    return inSpan('sandbox handle', SpanKind.SERVER, {}, async (span) => {
      const response = await this.#handle(targetArg, requestArg);
      span.setAttributes(traceAttributes({ status: response.status }));
      return response;
    });
  }

  async #handle(targetArg: unknown, requestArg: unknown): Promise<WireResponse> {
    const target = check(WorkerTarget, targetArg, 'worker target');
    const request = check(WireRequest, requestArg, 'request');
    // A body that streams in arrives as a stream beside the (then empty) bytes.
    const stream = (requestArg as { stream?: unknown }).stream;
    if (stream !== undefined && (!(stream instanceof ReadableStream) || request.body !== null))
      throw new TypeError('request: stream must be a ReadableStream, and only without body bytes');
    // A WebSocket upgrade comes with the browser's end (a capability ingress holds). Stubs in params
    // are disposed when the call returns: keep a copy for as long as the socket lives.
    const socketArg = (requestArg as { socket?: unknown }).socket;
    if (socketArg !== undefined && typeof (socketArg as { dup?: unknown } | null)?.dup !== 'function')
      throw new TypeError('request: socket must be a capability');
    const browser = (socketArg as RpcStub<BrowserSocket> | undefined)?.dup();
    const peer = browser && socketPeer(browser);
    let keepBrowser = false;
    try {
      const { webSocket, objectSocket, ...response } = await this.#run(target, request, stream, peer);
      // A Durable Object's socket: the supervisor keeps it and takes the browser's end (it holds its own copy).
      if (objectSocket) return { ...response, webSocket: await this.#attachObjectSocket(target, objectSocket.handle, objectSocket.sid, browser) };
      if (!webSocket) return response;
      keepBrowser = true;
      return { ...response, webSocket: new WorkerSocketTarget(webSocket, () => browser?.[Symbol.dispose]()) };
    } finally {
      if (!keepBrowser) browser?.[Symbol.dispose]();
    }
  }

  async #attachObjectSocket(target: WorkerTarget, handle: string, sid: string, browser: RpcStub<BrowserSocket> | undefined): Promise<WorkerSocketApi> {
    const { capabilities } = await this.#deps.bundles.get(target.codeKey);
    if (!browser || !capabilities) throw new Error('a 101 response to a request that was not a WebSocket upgrade');
    return capabilities.attachSocket(handle, sid, browser);
  }

  async #run(target: WorkerTarget, request: WireRequest, stream: unknown, peer: SocketPeer | undefined): Promise<HandledResponse> {
    let bundle: WorkerBundle;
    let capabilities: ForwardedCapabilities | undefined;
    let assets: VersionAssets | undefined;
    try {
      ({ bundle, capabilities, assets } = await this.#deps.bundles.get(target.codeKey));
    } catch (e) {
      this.#deps.log.warn('could not load worker', { worker: target.workerId, error: (e as Error).message });
      throw new Error('worker code unavailable');
    }
    if (bundle.workerId !== target.workerId || bundle.version !== target.version) throw new Error('code key does not match the requested worker version');
    annotateSpan({ workerId: bundle.workerId, version: bundle.version });
    // An asset the request meets before the worker is answered here: no isolate, no tenant code.
    // Awaited only where there are assets: a worker without them costs no promise here.
    const served = assets && (await assets.beforeWorker(request));
    if (served) {
      void (stream as ReadableStream | undefined)?.cancel().catch(() => {});
      return served;
    }
    const hooks = entryHooks(this.#deps, target.codeKey, capabilities);
    const leave = this.#deps.recorder.enter(bundle.workerId);
    try {
      return await this.#deps.runtime.handle(bundle, request, hooks, stream as ReadableStream<Uint8Array> | undefined, peer);
    } catch (e) {
      if (e instanceof WorkerError) {
        // A broken limit was reported through the hooks (the runtime reports it for every entry).
        return textResponse(e.status, `${e.message} (worker ${bundle.workerId}; see: npx cordon logs ${bundle.workerId})`);
      }
      throw e;
    } finally {
      leave();
    }
  }
}
