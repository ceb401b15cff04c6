/**
 * What ingress may call on a sandbox: run one request for the worker a code key unlocks. The sandbox
 * itself holds no code: it asks the supervisor for the bundle with the key the request carries,
 * and keeps it only in memory.
 */
import { RpcTarget } from 'capnweb';
import { check } from '../../lib/rpc/validate.ts';
import { WireRequest, type WireResponse } from '../../schemas/http.ts';
import { WorkerTarget, type WorkerBundle } from '../../schemas/worker.ts';
import type { SandboxApi, SupervisorForSandbox, LogEntry } from '../../schemas/services.ts';
import type { Logger } from '../../lib/log.ts';
import { WorkerError, type WorkerRuntime } from './runtime/index.ts';
import { ForwardedCapabilities } from './capabilities.ts';
import type { FlightRecorder } from './flight-recorder.ts';
import { SpanKind } from '@opentelemetry/api';
import { inSpan } from '../../lib/telemetry.ts';

const MAX_CACHED_KEYS = 1000;

export interface SupervisorLink {
  ready(timeoutMs?: number): Promise<{ remote: SupervisorForSandbox }>;
}

/** Where a worker's console output goes: the supervisor's log for that worker (named by code key). */
export function logSink(supervisor: SupervisorLink, codeKey: string, log: Logger): (entries: LogEntry[]) => void {
  return (entries) => {
    void supervisor
      .ready(1000)
      .then((s) => s.remote.log(codeKey, entries))
      .catch((e: Error) => log.debug('dropped worker log entries', { error: e.message }));
  };
}

function textResponse(status: number, text: string): WireResponse {
  return { status, statusText: '', headers: [['content-type', 'text/plain; charset=utf-8']], body: new TextEncoder().encode(text + '\n') };
}

interface Loaded {
  bundle: WorkerBundle;
  capabilities: ForwardedCapabilities | undefined;
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
        const capabilities = new ForwardedCapabilities(await s.remote.capabilities(codeKey), bundle.bindings);
        return { bundle, capabilities };
      });
      this.#bundles.set(codeKey, p);
      p.catch(() => this.#bundles.delete(codeKey));
      if (this.#bundles.size > MAX_CACHED_KEYS) this.#bundles.delete(this.#bundles.keys().next().value!);
    }
    return p;
  }
}

export class SandboxPort extends RpcTarget implements SandboxApi {
  readonly #runtime: WorkerRuntime;
  readonly #bundles: BundleCache;
  readonly #supervisor: SupervisorLink;
  readonly #log: Logger;
  readonly #recorder: FlightRecorder;

  constructor(runtime: WorkerRuntime, bundles: BundleCache, supervisor: SupervisorLink, log: Logger, recorder: FlightRecorder) {
    super();
    this.#recorder = recorder;
    this.#runtime = runtime;
    this.#bundles = bundles;
    this.#supervisor = supervisor;
    this.#log = log;
  }

  handle(targetArg: unknown, requestArg: unknown): Promise<WireResponse> {
    return inSpan('sandbox handle', SpanKind.SERVER, {}, () => this.#handle(targetArg, requestArg));
  }

  async #handle(targetArg: unknown, requestArg: unknown): Promise<WireResponse> {
    const target = check(WorkerTarget, targetArg, 'worker target');
    const request = check(WireRequest, requestArg, 'request');
    // A body that streams in arrives as a stream beside the (then empty) bytes.
    const stream = (requestArg as { stream?: unknown }).stream;
    if (stream !== undefined && (!(stream instanceof ReadableStream) || request.body !== null)) throw new TypeError('request: stream must be a ReadableStream, and only without body bytes');
    let bundle: WorkerBundle;
    let capabilities: ForwardedCapabilities | undefined;
    try {
      ({ bundle, capabilities } = await this.#bundles.get(target.codeKey));
    } catch (e) {
      this.#log.warn('could not load worker', { worker: target.workerId, error: (e as Error).message });
      throw new Error('worker code unavailable');
    }
    if (bundle.workerId !== target.workerId || bundle.version !== target.version) throw new Error('code key does not match the requested worker version');
    const log = logSink(this.#supervisor, target.codeKey, this.#log);
    const leave = this.#recorder.enter(bundle.workerId);
    try {
      return await this.#runtime.handle(bundle, request, { log, capabilities }, stream as ReadableStream<Uint8Array> | undefined);
    } catch (e) {
      if (e instanceof WorkerError) {
        if (e.limit === 'cpu' || e.limit === 'memory') {
          const kind = e.limit;
          void this.#supervisor
            .ready(1000)
            .then((s) => s.remote.limitHit(target.codeKey, kind))
            .catch((err: Error) => this.#log.debug('could not report a limit hit', { error: err.message }));
        }
        return textResponse(e.status, `${e.message} (worker ${bundle.workerId}; see: npx cordon logs ${bundle.workerId})`);
      }
      throw e;
    } finally {
      leave();
    }
  }
}
