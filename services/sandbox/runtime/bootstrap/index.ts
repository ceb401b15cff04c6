/**
 * The isolate's bootstrap: bundled once per process with esbuild and run in every new context
 * before any tenant code. It installs the Workers globals, freezes the clock, removes what the
 * Spectre and code-generation mitigations forbid, captures the host callbacks it was handed and
 * deletes them from the global scope, and leaves one entry object for the host to take.
 *
 * Host → isolate traffic is strings and ArrayBuffer copies only; nothing of the host stays reachable.
 * Everything used after tenant code has run (serialising the response above all) is captured before
 * it, here or at the top of the module that uses it, so a tenant that patches prototypes changes only
 * what it sees itself.
 *
 * Each Web API is a file of its own; this file takes the host's callbacks (abi.ts), freezes the clock
 * and locks down, installs the APIs in order (console first: the others report through it), and
 * leaves the entry points the host calls. docs/contributing.md: adding an API.
 */
import './install-encoding.ts';
import { atob, btoa, DOMException, TextDecoder, TextEncoder } from './encoding.ts';
import { Blob, File, FormData, Headers, Request, Response, URL, URLSearchParams } from './fetch-api.ts';
import { asyncCapCaller, b64, capCaller } from './bindings.ts';
import * as web from './web-globals.ts';
import { installClock, resetClock, setClock } from './clock.ts';
import { compileShipped, lockdown } from './lockdown.ts';
import { CryptoKey } from './subtle.ts';
import { installCrypto } from './crypto.ts';
import { setIdnaHost } from './idna.ts';
import { makeCaches } from './cache-api.ts';
import { CloseEvent, MessageEvent, setSocketHost, WebSocket, WebSocketPair } from './websocket.ts';
import { makeStep, NonRetryableError, SUSPEND } from './workflow-step.ts';
import { decodeWire } from './wire-codec.ts';
import { addEventListener, removeEventListener, serviceWorkerHandler } from './service-worker.ts';
import { installConsole, show } from './console.ts';
import { installTimers } from './timers.ts';
import { installScheduler } from './scheduler.ts';
import { structuredClone } from './structured-clone.ts';
import { installFetch } from './fetch.ts';
import { codec, makeEnv } from './env.ts';
import { cancelAllStreams, cancelStream, errorText, fail, pull, serialize, streamsOpen } from './response-out.ts';
import { BUILTINS_GLOBAL, CALLBACK_GLOBALS, ENTRY_GLOBAL, LIBS_GLOBAL, OPTIONS_GLOBAL, REFERENCE_GLOBALS, SHIPPED_GLOBAL, type BootOptions, type Entry, type HostCallbacks, type HostReferences, type IsolateRef } from '../abi.ts';

const g = globalThis as Record<string, unknown>;
delete g[LIBS_GLOBAL]; // read by the imports above (the snapshot's library objects); gone before tenant code
function take(name: string): unknown {
  const v = g[name];
  delete g[name];
  return v;
}
// The host sets its callbacks (isolated-vm Callbacks) as globals; keep them in this closure and remove them.
const taken: Partial<Record<keyof HostCallbacks, unknown>> = {};
for (const [name, global] of Object.entries(CALLBACK_GLOBALS)) taken[name as keyof HostCallbacks] = take(global);
const host = taken as HostCallbacks;
setIdnaHost(host.idna);
setSocketHost({ send: host.wsSend, close: host.wsClose, opened: host.wsOpened });
// The host's capability dispatcher, called with applySyncPromise (blocks this isolate only) or apply.
const capRef = take(REFERENCE_GLOBALS.capCall) as IsolateRef<HostReferences['capCall']>;
// crypto.subtle's host (host-crypto.ts): one call, a structured copy each way (crypto.ts).
const cryptoRef = take(REFERENCE_GLOBALS.crypto) as IsolateRef<HostReferences['crypto']>;
// Pulls the next chunk of a request body that streams in (an ArrayBuffer copy, or null at its end).
const bodyRef = take(REFERENCE_GLOBALS.bodyPull) as IsolateRef<HostReferences['bodyPull']>;
const options = JSON.parse(take(OPTIONS_GLOBAL) as string) as BootOptions;

// --- what the response path needs, captured before tenant code can patch anything ------------------
const apply = Reflect.apply;
const JSONstringify = JSON.stringify;
const JSONparse = JSON.parse;
const U8 = Uint8Array;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const allSettled = Promise.allSettled.bind(Promise);
const StringCtor = String;

installClock(g);
lockdown(g, options.allowEval, options.memoryLimit);

// --- console, crypto, timers, misc globals ------------------------------------------------------------
const logError = installConsole(g, host.log);

installCrypto(g, host.random, cryptoRef);

// Requests in flight. Timers, fetch and their callbacks belong to requests: outside one there are none.
let active = 0;
// Bumped whenever the host ends all requests: replies to calls made before then are dropped.
let generation = 0;

const timers = installTimers(g, host, () => active > 0, logError);
installScheduler(g, timers);

g.structuredClone = (v: unknown) => structuredClone(v);
// Workers logs what is reported as an uncaught exception; the request goes on.
g.reportError = (e: unknown) => logError('Uncaught', e);

Object.assign(g, { addEventListener, removeEventListener, WebSocket, WebSocketPair, MessageEvent, CloseEvent, CryptoKey, TextEncoder, TextDecoder, atob, btoa, DOMException, Blob, File, FormData, Headers, Request, Response, URL, URLSearchParams, self: globalThis }, web);

// --- capabilities and fetch -----------------------------------------------------------------------------
const callCap = capCaller((handle, method, args) => capRef.applySyncPromise(undefined, [handle, method, args]));
const callCapAsync = asyncCapCaller(async (handle, method, args) => {
  if (active === 0) throw new Error('fetch and other I/O can only be used while a request is being handled (not in global scope)');
  const started = generation;
  const reply = await capRef.apply(undefined, [handle, method, args], { result: { promise: true } });
  // The request this call belonged to has ended: its continuations never run (they would run
  // outside every CPU and wall-time watchdog).
  if (started !== generation) return new PromiseCtor<string>(() => {});
  return reply;
}, setClock);

const resetSubrequests = installFetch(g, callCapAsync, options.maxBody);
g.caches = makeCaches(callCapAsync);
let env = makeEnv(options.vars, options.bindings, callCap, callCapAsync);
let configurable = true;

/**
 * A context made ahead of need (a spare) is initialised before it knows its worker: the host then
 * gives it the worker's vars and bindings, once, before any module of the worker is loaded.
 */
function configure(json: string): void {
  if (!configurable) throw new Error('configure() comes before the worker is loaded, once');
  configurable = false;
  const o = JSON.parse(json) as { vars: typeof options.vars; bindings: typeof options.bindings };
  env = makeEnv(o.vars, o.bindings, callCap, callCapAsync);
}

// --- loading: data and WebAssembly modules shipped with the worker --------------------------------------
// The host copies their bytes in (and this compiles wasm with the original constructor) before any tenant
// module is evaluated; the generated module for `x.wasm` or `x.bin` takes its value from this
// load-time-only global, which `loaded()` removes. It hands out nothing the bundle does not contain.
const shipped = new Map<string, WebAssembly.Module | ArrayBuffer>();
Object.defineProperty(g, SHIPPED_GLOBAL, { value: (name: string) => shipped.get(name), configurable: true, enumerable: false, writable: false });
// The classes of the `cloudflare:*` built-in modules that this bootstrap must recognise (load time only, too).
Object.defineProperty(g, BUILTINS_GLOBAL, { value: Object.freeze({ NonRetryableError }), configurable: true, enumerable: false, writable: false });

function ship(name: string, type: string, bytes: ArrayBuffer): string {
  if (type === 'data') {
    shipped.set(name, bytes);
    return '';
  }
  const compiled = compileShipped(new U8(bytes));
  if (typeof compiled === 'string') return compiled;
  shipped.set(name, compiled);
  return '';
}

// --- the entry the host calls -------------------------------------------------------------------------
interface Handler {
  fetch?(request: Request, env: unknown, ctx: unknown): unknown;
  scheduled?(event: unknown, env: unknown, ctx: unknown): unknown;
}
/** `export default class extends WorkerEntrypoint { fetch(request) {} }`: one instance per request. */
type HandlerClass = (new (ctx: unknown, env: unknown) => { fetch?(request: Request): unknown }) & { prototype: { fetch?: unknown } };
let handler: Handler | HandlerClass | undefined;
let exported: Record<string, unknown> = {};

function callHandler(request: Request, ctx: unknown): unknown {
  const h = handler;
  if (typeof h === 'function') {
    if (!h.prototype || typeof h.prototype.fetch !== 'function') return NO_HANDLER;
    return new h(ctx, env).fetch!(request);
  }
  if (!h || typeof h.fetch !== 'function') return NO_HANDLER;
  return h.fetch(request, env, ctx);
}
const NO_HANDLER = Symbol('no handler');

/**
 * A spare's rehearsal, before it knows its worker: one request through run() to a handler of the
 * bootstrap's own, so that the request path is compiled before the first real request (V8 compiles
 * functions on first use: ~1–2 ms of a cold start otherwise). Nothing of it stays: the handler is
 * unset again, the request's scope ended as after any request, and the clock is back at its start.
 */
async function rehearse(now: number): Promise<void> {
  if (!configurable || handler !== undefined) throw new Error('rehearse() is for a spare, before its worker');
  handler = { fetch: (request) => new Response(request.url, { headers: { 'content-type': 'text/plain' } }) };
  try {
    await run(JSONstringify({ method: 'GET', url: 'http://spare.invalid/', headers: [['accept', '*/*']], streamed: false }), null, now, 0);
  } finally {
    handler = undefined;
    resetClock();
  }
}

/** Called by the host once the main module has been evaluated, with its namespace. */
function loaded(namespace: Record<string, unknown>): string {
  configurable = false;
  delete g[SHIPPED_GLOBAL];
  delete g[BUILTINS_GLOBAL];
  shipped.clear();
  exported = namespace;
  try {
    handler = namespace.default as Handler | HandlerClass | undefined;
  } catch (e) {
    return show(e);
  }
  // Service-worker syntax: no default export, listeners instead; its bindings are globals, as in Workers.
  const listening = serviceWorkerHandler();
  if (handler === undefined && listening) {
    handler = listening;
    for (const [name, value] of Object.entries(env)) if (!Object.hasOwn(g, name)) g[name] = value;
  }
  return '';
}

const drains = new Map<number, Promise<unknown>>();
let endAll: () => void = () => {};
let ended = new PromiseCtor<void>((r) => (endAll = r));

/** Handlers in progress (requests, workflow runs, cron events), and requests whose waitUntil promises have not all settled. */
let running = 0;
const settling = new Set<number>();

/**
 * A request, answered as serialize() says. When nothing else is going on in the isolate afterwards
 * (no other handler, waitUntil, streamed body or WebSocket), the request's scope ends here, as the
 * host's `end` would end it, and the answer says so (a third element, true): the host then skips
 * its drain and end calls, two trips through the isolate's task queue on nearly every request.
 */
async function run(metaJson: string, body: ArrayBuffer | null, now: number, seq: number): Promise<[string, ArrayBuffer | null, boolean?]> {
  const out = await holding(() => respond(metaJson, body, now, seq));
  if (running > 0 || settling.size > 0 || drains.size > 0 || streamsOpen() || WebSocket.anyLive()) return out;
  end();
  return [out[0], out[1], true];
}

/**
 * Requests the host gathered (those that arrived together), in one call: one trip into the isolate
 * rather than one each, which is most of what a small request costs. Each starts at once, as if it
 * had come alone, and its answer goes back through the host's `done` as soon as it is ready: a slow
 * request holds up no other.
 */
function runBatch(batchJson: string, bodies: (ArrayBuffer | null)[] | null, now: number): void {
  const batch = JSONparse(batchJson) as [string, number][];
  for (let i = 0; i < batch.length; i++) {
    const meta = batch[i]![0];
    const seq = batch[i]![1];
    const answer = (r: [string, ArrayBuffer | null, boolean?]) => host.done(seq, r[0], r[1], r[2] === true);
    apply(promiseThen, run(meta, bodies === null ? null : (bodies[i] ?? null), now, seq), [answer, (e: unknown) => answer(fail('exception', errorText(e)))]);
  }
}

async function holding<T>(handler: () => Promise<T>): Promise<T> {
  running++;
  try {
    return await handler();
  } finally {
    running--;
  }
}

async function respond(metaJson: string, body: ArrayBuffer | null, now: number, seq: number): Promise<[string, ArrayBuffer | null]> {
  active++;
  setClock(now);
  resetSubrequests();
  const meta = JSONparse(metaJson) as { method: string; url: string; headers: [string, string][]; streamed: boolean };
  const request = new Request(meta.url, { method: meta.method, headers: meta.headers, body: meta.streamed ? incomingStream(seq) : body === null ? null : new U8(body) });
  const waitUntil: Promise<unknown>[] = [];
  const ctx = Object.freeze({
    waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))),
    passThroughOnException: () => {},
  });
  let response: unknown;
  try {
    response = callHandler(request, ctx);
    if (response === NO_HANDLER) return fail('no-handler', 'the worker has no default export with a fetch(request, env, ctx) method (or a class with a fetch(request) method)');
    response = await response;
  } catch (e) {
    return fail('exception', errorText(e));
  }
  if (waitUntil.length) {
    settling.add(seq);
    drains.set(seq, allSettled(waitUntil).finally(() => settling.delete(seq)));
  }
  return serialize(response, seq, options);
}

/** A request body streaming in: each chunk is pulled from the host when the worker reads. */
function incomingStream(seq: number): web.ReadableStream<Uint8Array> {
  const started = generation;
  return new web.ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const chunk = await bodyRef.apply(undefined, [seq], { result: { promise: true, copy: true } });
        if (started !== generation) return new PromiseCtor<void>(() => {}); // the request has ended
        if (chunk === null) controller.close();
        else controller.enqueue(new U8(chunk));
      },
    },
    { highWaterMark: 0 },
  );
}

/** Resolves when the request's waitUntil promises have settled, or when the host ends all requests. */
function drain(seq: number): Promise<void> | undefined {
  const p = drains.get(seq);
  drains.delete(seq);
  if (!p) return undefined;
  return PromiseCtor.race([p, ended]).then(() => undefined);
}

/** No request is in flight any more: drop every timer and stop delivering replies to earlier calls. */
function end(): void {
  active = 0;
  settling.clear(); // what is still pending is cut off: its replies are not delivered
  generation++;
  timers.clearAll();
  drains.clear();
  cancelAllStreams();
  endAll();
  ended = new PromiseCtor<void>((r) => (endAll = r));
}

type WorkflowClass = new (ctx: unknown, env: unknown) => { run(event: unknown, step: unknown): unknown };

/**
 * A run of a workflow instance: `run(event, step)` of the exported class, with its step calls going
 * to capability `stepHandle`. The answer is JSON: complete (with the wire-encoded output), errored,
 * or suspended (the engine ended the run at a step; the tenant cannot turn that into anything else).
 */
async function runWorkflow(className: string, eventWire: string, stepHandle: string, now: number): Promise<string> {
  active++;
  setClock(now);
  resetSubrequests();
  const cls = exported[className] as WorkflowClass | undefined;
  if (typeof cls !== 'function' || typeof (cls.prototype as { run?: unknown } | undefined)?.run !== 'function') {
    return JSONstringify({ outcome: 'errored', name: 'Error', message: `the worker exports no class ${className} with a run(event, step) method` });
  }
  let suspended = false;
  const step = makeStep(callCapAsync, stepHandle, codec, (fn, ms) => {
    const id = timers.add(fn, ms, [], false);
    return () => timers.clear(id);
  }, () => (suspended = true));
  const raw = decodeWire(eventWire, b64) as { payload: unknown; timestamp: number; instanceId: string; workflowName: string };
  const event = Object.freeze({ payload: raw.payload, timestamp: new Date(raw.timestamp), instanceId: raw.instanceId, workflowName: raw.workflowName });
  const ctx = Object.freeze({ waitUntil: () => {}, passThroughOnException: () => {} });
  try {
    const output = await new cls(ctx, env).run(event, step);
    if (suspended) return '{"outcome":"suspended"}';
    return JSONstringify({ outcome: 'complete', output: codec.encode(output) });
  } catch (e) {
    if (suspended || e === SUSPEND) return '{"outcome":"suspended"}';
    const err = e as { name?: unknown; message?: unknown } | null;
    return JSONstringify({ outcome: 'errored', name: StringCtor(err?.name ?? 'Error'), message: StringCtor(err?.message ?? errorText(e)) });
  }
}

/**
 * scheduled(event, env, ctx) of the default export for a cron trigger, and its waitUntil promises.
 * Answers '' when it went well, else what went wrong (the tenant's error and stack).
 */
async function runScheduled(cron: string, scheduledTime: number, now: number): Promise<string> {
  active++;
  setClock(now);
  resetSubrequests();
  const h = handler;
  const target = typeof h === 'function' ? (h.prototype as Handler | undefined) : h;
  if (!target || typeof target.scheduled !== 'function') return 'the worker has no scheduled(event, env, ctx) handler in its default export';
  const waitUntil: Promise<unknown>[] = [];
  const ctx = Object.freeze({ waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))), noRetry: () => {} });
  const event = Object.freeze({ type: 'scheduled', cron, scheduledTime });
  try {
    if (typeof h === 'function') await (new h(ctx, env) as Handler).scheduled!(event, env, ctx);
    else await h!.scheduled!(event, env, ctx);
  } catch (e) {
    return errorText(e);
  }
  await allSettled(waitUntil);
  return '';
}

/** An event from the client end of a WebSocket (through ingress and the host) for the server end here. */
function wsEvent(id: number, type: string, data: string | ArrayBuffer | null, code: number, reason: string, now: number): void {
  setClock(now);
  try {
    WebSocket.deliver(id, type, data, code, reason);
  } catch (e) {
    logError('uncaught exception in a WebSocket event listener:', e);
  }
}

const entry: Entry = {
  runBatch,
  drain,
  end,
  fireTimer: timers.fire,
  ship,
  loaded,
  runWorkflow: (className: string, eventWire: string, stepHandle: string, now: number) => holding(() => runWorkflow(className, eventWire, stepHandle, now)),
  runScheduled: (cron: string, scheduledTime: number, now: number) => holding(() => runScheduled(cron, scheduledTime, now)),
  pull,
  cancelStream,
  wsEvent,
  configure,
  rehearse,
};
g[ENTRY_GLOBAL] = entry;
