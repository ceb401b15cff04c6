/**
 * The isolate's bootstrap: bundled once per process with esbuild and run in every new context
 * before any tenant code. It installs the Workers globals, freezes the clock, removes what the
 * Spectre and code-generation mitigations forbid, captures the host callbacks it was handed and
 * deletes them from the global scope, and leaves one entry object for the host to take.
 *
 * Host → isolate traffic is strings and ArrayBuffer copies only; nothing of the host stays reachable.
 */
import './install-encoding.ts';
import { atob, btoa, DOMException, TextDecoder, TextEncoder } from './encoding.ts';
import { Body, Headers, Request, Response, URL, URLSearchParams } from './fetch-api.ts';
import { asyncCapCaller, capCaller, directoryBinding, storageBinding } from './bindings.ts';

interface HostCallbacks {
  log(level: string, message: string): void;
  random(bytes: number): string; // base64
  setTimer(id: number, ms: number): void;
  clearTimer(id: number): void;
}

const g = globalThis as Record<string, unknown>;
// The host sets its callbacks (isolated-vm Callbacks) as globals; keep them here and remove them.
const host = { log: g.__cordonLog, random: g.__cordonRandom, setTimer: g.__cordonSetTimer, clearTimer: g.__cordonClearTimer } as HostCallbacks;
// A Reference to the host's capability dispatcher, called with applySyncPromise (blocks this isolate only).
const capRef = g.__cordonCapCall as {
  applySyncPromise(recv: undefined, args: string[]): string;
  apply(recv: undefined, args: string[], opts: { result: { promise: true } }): Promise<string>;
};
for (const name of ['__cordonLog', '__cordonRandom', '__cordonSetTimer', '__cordonClearTimer', '__cordonCapCall']) delete g[name];
const options = JSON.parse(g.__cordonOptions as string) as {
  allowEval: boolean;
  vars: Record<string, string>;
  bindings: { type: 'storage' | 'directory'; name: string }[];
  maxBody: number;
};
delete g.__cordonOptions;

// --- the frozen clock: it moves only when the host says so (request start, timer fire) ---------------
let clock = 0;
const OrigDate = Date;
class CordonDate extends OrigDate {
  constructor(...args: unknown[]) {
    if (args.length === 0) super(clock);
    else super(...(args as [number]));
  }
  static now(): number {
    return clock;
  }
}
const DateProxy = new Proxy(CordonDate, {
  apply: () => new OrigDate(clock).toString(), // Date() called without new
});
Object.defineProperty(OrigDate.prototype, 'constructor', { value: DateProxy, writable: true, configurable: true });
g.Date = DateProxy;
const DTF = Intl.DateTimeFormat.prototype;
const origFormatToParts = DTF.formatToParts;
const formatGetter = Object.getOwnPropertyDescriptor(DTF, 'format')!.get!;
Object.defineProperty(DTF, 'formatToParts', {
  value: function (this: Intl.DateTimeFormat, date?: Date | number) {
    return origFormatToParts.call(this, date === undefined ? clock : date);
  },
  writable: true,
  configurable: true,
});
Object.defineProperty(DTF, 'format', {
  get(this: Intl.DateTimeFormat) {
    const f = formatGetter.call(this) as (d?: Date | number) => string;
    return (date?: Date | number) => f(date === undefined ? clock : date);
  },
  configurable: true,
});
const timeOrigin = { value: 0 };
g.performance = Object.freeze({
  now: () => clock - timeOrigin.value,
  get timeOrigin() {
    return timeOrigin.value;
  },
});

// --- what Workers forbids: shared memory, weak refs (their callbacks escape timeouts), code generation
for (const name of ['SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry']) delete g[name];
if (!options.allowEval) {
  const refuse = function () {
    throw new EvalError('Code generation from strings is disallowed for this worker (deploy with --allow-eval to opt in)');
  };
  for (const fn of [function () {}, async function () {}, function* () {}, async function* () {}]) {
    Object.defineProperty(Object.getPrototypeOf(fn), 'constructor', { value: refuse, writable: false, configurable: false });
  }
  Object.defineProperty(refuse, 'prototype', { value: Function.prototype });
  g.Function = refuse;
  g.eval = refuse;
  const wasm = g.WebAssembly as Record<string, unknown>;
  for (const name of ['compile', 'instantiate', 'compileStreaming', 'instantiateStreaming', 'validate']) delete wasm[name];
  const OrigModule = wasm.Module as new (b: unknown) => unknown;
  const RefusedModule = function () {
    throw new EvalError('Compiling WebAssembly from bytes at run time is disallowed; ship .wasm modules with the worker');
  };
  Object.defineProperty(RefusedModule, 'prototype', { value: OrigModule.prototype });
  Object.defineProperty(OrigModule.prototype, 'constructor', { value: RefusedModule, writable: false, configurable: false });
  wasm.Module = RefusedModule;
}

// --- console, crypto, timers, misc globals ------------------------------------------------------------
function show(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
const consoleObj: Record<string, (...a: unknown[]) => void> = {};
for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
  consoleObj[level] = (...args: unknown[]) => host.log(level, args.map(show).join(' ').slice(0, 64 * 1024));
}
consoleObj.trace = consoleObj.debug!;
g.console = Object.freeze(consoleObj);

function getRandomValues<T extends ArrayBufferView | null>(array: T): T {
  if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) {
    throw new TypeError('getRandomValues needs an integer typed array');
  }
  if (array.byteLength > 65536) throw new DOMException(`The ArrayBufferView's byte length (${array.byteLength}) exceeds 65536`, 'QuotaExceededError');
  const bytes = atob(host.random(array.byteLength));
  const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  for (let i = 0; i < view.length; i++) view[i] = bytes.charCodeAt(i);
  return array;
}
g.crypto = Object.freeze({
  getRandomValues,
  randomUUID(): string {
    const b = getRandomValues(new Uint8Array(16));
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  },
});

const MAX_TIMERS = 10_000;
const timers = new Map<number, { fn: (...a: unknown[]) => void; args: unknown[]; interval: number | undefined }>();
let nextTimer = 1;
function addTimer(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
  if (typeof fn !== 'function') throw new TypeError('setTimeout/setInterval need a function (strings are not evaluated)');
  if (timers.size >= MAX_TIMERS) throw new RangeError(`too many pending timers (limit ${MAX_TIMERS})`);
  const delay = Math.max(0, Math.min(Number(ms) || 0, 2 ** 31 - 1));
  const id = nextTimer++;
  timers.set(id, { fn: fn as (...a: unknown[]) => void, args, interval: repeat ? delay : undefined });
  host.setTimer(id, delay);
  return id;
}
function clearTimer(id: unknown): void {
  if (timers.delete(Number(id))) host.clearTimer(Number(id));
}
g.setTimeout = (fn: unknown, ms?: unknown, ...args: unknown[]) => addTimer(fn, ms, args, false);
g.setInterval = (fn: unknown, ms?: unknown, ...args: unknown[]) => addTimer(fn, ms, args, true);
g.clearTimeout = clearTimer;
g.clearInterval = clearTimer;
g.queueMicrotask = (fn: unknown) => {
  if (typeof fn !== 'function') throw new TypeError('queueMicrotask needs a function');
  Promise.resolve().then(fn as () => void).catch((e) => consoleObj.error!('uncaught exception in a microtask:', e));
};

function structuredCloneImpl(value: unknown, seen = new Map<unknown, unknown>()): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw new DOMException(`${String(value)} could not be cloned`, 'DataCloneError');
    return value;
  }
  if (seen.has(value)) return seen.get(value);
  let out: unknown;
  if (Array.isArray(value)) {
    const a: unknown[] = [];
    seen.set(value, a);
    for (let i = 0; i < value.length; i++) a[i] = structuredCloneImpl(value[i], seen);
    return a;
  }
  if (value instanceof OrigDate) out = new CordonDate(value.getTime());
  else if (value instanceof RegExp) out = new RegExp(value.source, value.flags);
  else if (value instanceof ArrayBuffer) out = value.slice(0);
  else if (ArrayBuffer.isView(value)) {
    const C = value.constructor as new (b: ArrayBuffer, o: number, l: number) => unknown;
    const buf = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    out = value instanceof DataView ? new DataView(buf) : new C(buf as ArrayBuffer, 0, (value as unknown as { length: number }).length);
  } else if (value instanceof Map) {
    const m = new Map();
    seen.set(value, m);
    for (const [k, v] of value) m.set(structuredCloneImpl(k, seen), structuredCloneImpl(v, seen));
    return m;
  } else if (value instanceof Set) {
    const s = new Set();
    seen.set(value, s);
    for (const v of value) s.add(structuredCloneImpl(v, seen));
    return s;
  } else if (value instanceof Error) {
    out = new Error(value.message);
  } else {
    const o: Record<string, unknown> = {};
    seen.set(value, o);
    for (const k of Object.keys(value)) o[k] = structuredCloneImpl((value as Record<string, unknown>)[k], seen);
    return o;
  }
  seen.set(value, out);
  return out;
}
g.structuredClone = (v: unknown) => structuredCloneImpl(v);

Object.assign(g, { TextEncoder, TextDecoder, atob, btoa, DOMException, Headers, Request, Response, URL, URLSearchParams, self: globalThis });

// --- the entry the host calls -------------------------------------------------------------------------
interface Handler {
  fetch?(request: Request, env: unknown, ctx: unknown): unknown;
}
let handler: Handler | undefined;
const callCap = capCaller((handle, method, args) => capRef.applySyncPromise(undefined, [handle, method, args]));
const callCapAsync = asyncCapCaller((handle, method, args) => capRef.apply(undefined, [handle, method, args], { result: { promise: true } }));

// fetch(): only through the worker's fetch capability (egress); a refusal is a TypeError whose message
// starts "egress denied:", as the platform promises.
const MAX_SUBREQUESTS = 50;
let subrequests = 0;
g.fetch = async (input: unknown, init?: Record<string, unknown>) => {
  const request = new Request(input as string, init as never);
  if (++subrequests > MAX_SUBREQUESTS) throw new TypeError(`Too many subrequests: a request may make at most ${MAX_SUBREQUESTS}`);
  let reply: { status: number; statusText: string; headers: [string, string][]; body: Uint8Array | null; url: string; redirected: boolean };
  try {
    reply = (await callCapAsync('$fetch', 'fetch', [{ method: request.method, url: request.url, headers: Headers.raw(request.headers), body: Body.peek(request), redirect: request.redirect }])) as typeof reply;
  } catch (e) {
    throw new TypeError((e as Error).message);
  }
  const nullBody = reply.status === 204 || reply.status === 205 || reply.status === 304 || request.method === 'HEAD';
  const response = new Response(nullBody ? null : reply.body, { status: reply.status, statusText: reply.statusText, headers: reply.headers });
  Object.defineProperties(response, { url: { value: reply.url }, redirected: { value: reply.redirected } });
  return response;
};
const bindingObjects: Record<string, object> = {};
for (const b of options.bindings) bindingObjects[b.name] = b.type === 'storage' ? storageBinding(callCap, b.name) : directoryBinding(callCap, b.name);
const env = Object.freeze({ ...options.vars, ...bindingObjects });
const JSONstringify = JSON.stringify;
const U8 = Uint8Array;

/** Called once by the host's entry module with the main module's default export. */
g.__cordonSetHandler = (h: Handler) => {
  handler = h;
  delete g.__cordonSetHandler;
};

function fail(kind: string, message: string): [string, null] {
  return ['!' + JSONstringify({ kind, message }), null];
}

async function run(metaJson: string, body: ArrayBuffer | null, now: number): Promise<[string, ArrayBuffer | null]> {
  clock = now;
  subrequests = 0;
  if (!timeOrigin.value) timeOrigin.value = now;
  const meta = JSON.parse(metaJson) as { method: string; url: string; headers: [string, string][] };
  if (!handler || typeof handler.fetch !== 'function') return fail('no-handler', 'the worker has no default export with a fetch(request, env, ctx) method');
  const request = new Request(meta.url, { method: meta.method, headers: meta.headers, body: body === null ? null : new U8(body) });
  const waitUntil: Promise<unknown>[] = [];
  const ctx = Object.freeze({
    waitUntil: (p: unknown) => void waitUntil.push(Promise.resolve(p).catch((e) => consoleObj.error!('waitUntil promise rejected:', e))),
    passThroughOnException: () => {},
  });
  let response: unknown;
  try {
    response = await handler.fetch(request, env, ctx);
  } catch (e) {
    return fail('exception', e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : `uncaught: ${show(e)}`);
  }
  if (!(response instanceof Response)) return fail('not-a-response', `fetch() returned ${response === null ? 'null' : typeof response}, not a Response`);
  const bytes = Body.peek(response);
  if (bytes && bytes.byteLength > options.maxBody) return fail('too-large', `the response body is ${bytes.byteLength} bytes; the limit is ${options.maxBody}`);
  const head = JSONstringify({ status: response.status, statusText: String(response.statusText), headers: Headers.raw(response.headers) });
  const out = bytes ? (bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer) : null;
  return [head, out];
}

function fireTimer(id: number, now: number): void {
  const t = timers.get(id);
  if (!t) return;
  clock = now;
  if (t.interval === undefined) timers.delete(id);
  else host.setTimer(id, t.interval);
  try {
    t.fn(...t.args);
  } catch (e) {
    consoleObj.error!('uncaught exception in a timer:', e);
  }
}

g.__cordonEntry = { run, fireTimer };
