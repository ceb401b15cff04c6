/**
 * One worker version in its own isolate: created on first use, kept warm, disposed when it breaks a
 * limit. Each request gets a CPU-time and a wall-time watchdog that dispose the isolate (the only
 * reliable way to stop it: timeouts do not cover promise continuations or FinalizationRegistry).
 */
import ivm from 'isolated-vm';
import { randomBytes } from 'node:crypto';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import { MAX_BODY, type WireRequest, type WireResponse } from '../../../schemas/http.ts';
import { bootstrapSource } from './bootstrap-bundle.ts';
import { linkWorker, ModuleError } from './modules.ts';
import { decodeWire, encodeWire, type Base64 } from './bootstrap/wire-codec.ts';

/** Where a worker's capability calls go: the sandbox forwards them to the supervisor. */
export interface CapabilityHost {
  call(handle: string, method: string, args: unknown[]): Promise<unknown>;
}

const base64: Base64 = { encode: (b) => Buffer.from(b).toString('base64'), decode: (t) => new Uint8Array(Buffer.from(t, 'base64')) };

export class WorkerError extends Error {
  readonly status: number;
  /** What the worker's log gets: the tenant's own error and stack, never ours. */
  readonly detail: string;
  constructor(status: number, message: string, detail = message) {
    super(message);
    this.name = 'WorkerError';
    this.status = status;
    this.detail = detail;
  }
}

const WATCHDOG_MS = 10;

/** The part of a stack that is the tenant's: everything above isolated-vm's boundary marker. */
export function tenantStack(stack: string): string {
  const cut = stack.indexOf('\n    at (<isolated-vm boundary>)');
  return cut < 0 ? stack : stack.slice(0, cut);
}
const MAX_LOG_BUFFER = 1000;
type Kill = 'cpu' | 'wall' | undefined;
type RunRef = ivm.Reference<(meta: string, body: ArrayBuffer | null, now: number) => Promise<[string, ArrayBuffer | null]>>;
type FireRef = ivm.Reference<(id: number, now: number) => void>;

export class WorkerInstance {
  readonly bundle: WorkerBundle;
  readonly #isolate: ivm.Isolate;
  #context: ivm.Context | undefined;
  #run: RunRef | undefined;
  #fire: FireRef | undefined;
  readonly #timers = new Map<number, NodeJS.Timeout>();
  #kill: Kill;
  #disposed = false;
  #logs: LogEntry[] = [];
  #logSink: ((entries: LogEntry[]) => void) | undefined;
  #caps: CapabilityHost | undefined;
  #flushScheduled = false;
  lastUsed = Date.now();

  private constructor(bundle: WorkerBundle, onCatastrophe: (message: string) => void) {
    this.bundle = bundle;
    this.#isolate = new ivm.Isolate({ memoryLimit: bundle.limits.memoryMb, onCatastrophicError: onCatastrophe });
  }

  static async create(bundle: WorkerBundle, onCatastrophe: (message: string) => void): Promise<WorkerInstance> {
    const w = new WorkerInstance(bundle, onCatastrophe);
    try {
      await w.#init(bundle.allowEval === true);
    } catch (e) {
      w.dispose();
      throw w.#translate(e);
    }
    return w;
  }

  get disposed(): boolean {
    return this.#disposed || this.#isolate.isDisposed;
  }

  async #init(allowEval: boolean): Promise<void> {
    const context = await this.#isolate.createContext();
    this.#context = context;
    const jail = context.global;
    await jail.set('__cordonLog', new ivm.Callback((level: string, message: string) => this.#log(level, message), { ignored: true }));
    await jail.set('__cordonRandom', new ivm.Callback((n: number) => randomBytes(Math.max(0, Math.min(65536, n | 0))).toString('base64')));
    await jail.set('__cordonSetTimer', new ivm.Callback((id: number, ms: number) => this.#setTimer(id, ms), { ignored: true }));
    await jail.set('__cordonClearTimer', new ivm.Callback((id: number) => this.#clearTimer(id), { ignored: true }));
    await jail.set('__cordonCapCall', new ivm.Reference((handle: string, method: string, args: string) => this.#capCall(handle, method, args)));
    await jail.set('__cordonOptions', JSON.stringify({ allowEval, vars: this.bundle.vars, bindings: this.bundle.bindings, maxBody: MAX_BODY }));
    const script = await this.#isolate.compileScript(bootstrapSource(), { filename: 'cordon:bootstrap' });
    await script.run(context, { timeout: 5000 });
    script.release();
    const entry = (await jail.get('__cordonEntry', { reference: true })) as ivm.Reference<Record<string, unknown>>;
    this.#run = (await entry.get('run', { reference: true })) as RunRef;
    this.#fire = (await entry.get('fireTimer', { reference: true })) as FireRef;
    entry.release();
    await jail.delete('__cordonEntry');
    const main = await linkWorker(this.#isolate, context, this.bundle.mainModule, this.bundle.modules);
    await this.#guard(() => main.evaluate({ timeout: this.bundle.limits.cpuMs }));
  }

  /** A capability call from tenant code: text in, text out; errors become `{error}` with a message only. */
  async #capCall(handle: string, method: string, args: string): Promise<string> {
    try {
      if (!this.#caps) throw new Error('this worker has no capabilities');
      if (typeof handle !== 'string' || typeof method !== 'string' || typeof args !== 'string') throw new Error('malformed capability call');
      const decoded = decodeWire(args, base64);
      if (!Array.isArray(decoded)) throw new Error('malformed capability call');
      return encodeWire({ ok: (await this.#caps.call(handle, method, decoded)) ?? null }, base64);
    } catch (e) {
      return encodeWire({ error: e instanceof Error ? e.message : String(e) }, base64);
    }
  }

  async handle(request: WireRequest, logSink: (entries: LogEntry[]) => void, caps?: CapabilityHost): Promise<WireResponse> {
    this.lastUsed = Date.now();
    this.#logSink = logSink;
    this.#caps = caps ?? this.#caps;
    const meta = JSON.stringify({ method: request.method, url: request.url, headers: request.headers });
    const body = request.body
      ? new ivm.ExternalCopy(request.body.buffer.slice(request.body.byteOffset, request.body.byteOffset + request.body.byteLength) as ArrayBuffer).copyInto({ release: true })
      : null;
    const [head, out] = await this.#guard(() =>
      this.#run!.apply(undefined, [meta, body, Date.now()], { result: { promise: true, copy: true }, timeout: this.bundle.limits.cpuMs }),
    );
    if (head.startsWith('!')) {
      const { kind, message } = JSON.parse(head.slice(1)) as { kind: string; message: string };
      if (kind === 'exception') throw new WorkerError(500, 'worker threw an exception', message);
      throw new WorkerError(500, kind === 'too-large' ? 'worker response too large' : 'worker did not return a Response', message);
    }
    const parsed = JSON.parse(head) as { status: number; statusText: string; headers: [string, string][] };
    return { status: parsed.status, statusText: parsed.statusText, headers: parsed.headers, body: out ? new Uint8Array(out) : null };
  }

  /** Run isolate work under the CPU and wall watchdogs; turn every way it can die into a WorkerError. */
  async #guard<T>(work: () => Promise<T>): Promise<T> {
    const { cpuMs, wallMs } = this.bundle.limits;
    const cpuStart = this.#isolate.cpuTime;
    const cpuLimit = BigInt(cpuMs) * 1_000_000n;
    const watchdog = setInterval(() => {
      if (!this.#isolate.isDisposed && this.#isolate.cpuTime - cpuStart > cpuLimit) this.#terminate('cpu');
    }, WATCHDOG_MS);
    const wall = setTimeout(() => this.#terminate('wall'), wallMs);
    try {
      return await work();
    } catch (e) {
      throw this.#translate(e);
    } finally {
      clearInterval(watchdog);
      clearTimeout(wall);
    }
  }

  #terminate(kind: Kill): void {
    if (this.#disposed) return;
    this.#kill = kind;
    this.dispose();
  }

  #translate(e: unknown): WorkerError {
    if (e instanceof WorkerError) return e;
    const { cpuMs, wallMs, memoryMb } = this.bundle.limits;
    if (this.#kill === 'cpu') return new WorkerError(503, `worker exceeded its CPU time limit of ${cpuMs} ms`);
    if (this.#kill === 'wall') return new WorkerError(503, `worker exceeded its wall time limit of ${wallMs} ms`);
    const message = e instanceof Error ? e.message : String(e);
    if (/memory limit/i.test(message) || (this.#isolate.isDisposed && !this.#disposed)) {
      this.dispose();
      return new WorkerError(503, `worker exceeded its memory limit of ${memoryMb} MB`);
    }
    if (/Script execution timed out/i.test(message)) {
      this.dispose(); // a timed-out isolate may be mid-way through anything: start afresh
      return new WorkerError(503, `worker exceeded its CPU time limit of ${cpuMs} ms`);
    }
    if (e instanceof ModuleError) return new WorkerError(500, 'worker failed to load', message);
    // Errors thrown in the isolate during module evaluation: the tenant's own message and stack.
    return new WorkerError(500, 'worker threw an exception', e instanceof Error ? tenantStack(e.stack ?? message) : message);
  }

  #log(level: string, message: string): void {
    if (this.#logs.length >= MAX_LOG_BUFFER) return;
    const lvl = (['debug', 'info', 'log', 'warn', 'error'].includes(level) ? level : 'log') as LogEntry['level'];
    this.#logs.push({ level: lvl, message: String(message), time: Date.now() });
    this.#scheduleFlush();
  }

  /** Log from the host on the worker's behalf (limit hits, exceptions). */
  logError(message: string, sink: (entries: LogEntry[]) => void): void {
    this.#logSink ??= sink;
    this.#log('error', message);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      const entries = this.#logs.splice(0);
      if (entries.length && this.#logSink) this.#logSink(entries);
    });
  }

  #setTimer(id: number, ms: number): void {
    if (this.#disposed) return;
    this.#clearTimer(id);
    const t = setTimeout(() => {
      this.#timers.delete(id);
      if (this.disposed) return;
      this.#guard(() => this.#fire!.apply(undefined, [id, Date.now()], { timeout: this.bundle.limits.cpuMs })).catch((e: WorkerError) =>
        this.#log('error', `timer callback failed: ${e.detail}`),
      );
    }, ms);
    this.#timers.set(id, t);
  }

  #clearTimer(id: number): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    this.#run?.release();
    this.#fire?.release();
    this.#context?.release();
    if (!this.#isolate.isDisposed) this.#isolate.dispose();
    // deliver whatever the worker logged before it died
    const entries = this.#logs.splice(0);
    if (entries.length && this.#logSink) this.#logSink(entries);
  }
}
