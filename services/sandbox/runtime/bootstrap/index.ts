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
 * leaves the entry points the host calls (the request path: entry.ts). docs/contributing.md: adding an API.
 */
import './install-encoding.ts';
import { atob, btoa, DOMException, setLegacyTablesSource, TextDecoder, TextEncoder } from './encoding.ts';
import { Blob, File, FormData, Headers, Request, Response } from './fetch-api.ts';
import { asyncCapCaller, capCaller } from './bindings.ts';
import type { WireMessage } from './wire-codec.ts';
import * as web from './web-globals.ts';
import { installStreamGlobals } from './streams.ts';
import { installUrlGlobals } from './url.ts';
import { installClock, setClock } from './clock.ts';
import { lockdown } from './lockdown.ts';
import { CryptoKey } from './subtle.ts';
import { installCrypto } from './crypto.ts';
import { setIdnaHost } from './idna.ts';
import { setUnitHost } from './units.ts';
import * as rpcClone from './rpc-clone.ts';
import { makeCaches } from './cache-api.ts';
import { CloseEvent, MessageEvent, setSocketHost, WebSocket, WebSocketPair } from './websocket.ts';
import { WebSocketRequestResponsePair } from './do-websockets.ts';
import { addEventListener, removeEventListener } from './service-worker.ts';
import { installConsole } from './console.ts';
import { installTimers } from './timers.ts';
import { installScheduler } from './scheduler.ts';
import { structuredClone } from './structured-clone.ts';
import { HTMLRewriter, setHtmlRewriterWasm } from './html-rewriter.ts';
import { setBrotliWasm } from './brotli.ts';
import { installFetch } from './fetch.ts';
import { makeConnect } from './sockets.ts';
import { makeEnv, type EnvDeps } from './env.ts';
import { Pipes, serviceBinding } from './workers-rpc.ts';
import { loaderBinding } from './worker-loader.ts';
import { makeEventSource, type Fetch as EventSourceFetch, type SetTimeout } from './event-source.ts';
import { cancelStream, pull, type BodyCopyClass } from './response-out.ts';
import { inRequest, requests } from './request-state.ts';
import { makeRequestPath } from './entry.ts';
import { enterRoot } from './async-context.ts';
import {
  CALLBACK_GLOBALS,
  ENTRY_GLOBAL,
  BODY_COPY_GLOBAL,
  LIBS_GLOBAL,
  OPTIONS_GLOBAL,
  REFERENCE_GLOBALS,
  type BodyCopy,
  type BootOptions,
  type Entry,
  type EntryDispatch,
  type HostCallbacks,
  type HostReferences,
  type IsolateRef,
} from '../abi.ts';

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
setUnitHost(host.unit, { rpcClone });
setLegacyTablesSource(host.encodingTables);
setHtmlRewriterWasm(host.htmlRewriterWasm);
setBrotliWasm(host.brotliWasm);
setSocketHost({ send: host.wsSend, close: host.wsClose, opened: host.wsOpened });
// The host's capability dispatcher, called with applySyncPromise (blocks this isolate only) or apply.
const capRef = take(REFERENCE_GLOBALS.capCall) as IsolateRef<HostReferences['capCall']>;
const capSyncRef = take(REFERENCE_GLOBALS.capCallSync) as IsolateRef<HostReferences['capCallSync']>;
// crypto.subtle's host (host-crypto.ts): one call, a structured copy each way (crypto.ts).
const cryptoRef = take(REFERENCE_GLOBALS.crypto) as IsolateRef<HostReferences['crypto']>;
// Pulls the next chunk of a body that streams in, a request's or a fetch() response's (an ArrayBuffer copy, or null at its end).
const bodyRef = take(REFERENCE_GLOBALS.bodyPull) as IsolateRef<HostReferences['bodyPull']>;
const options = JSON.parse(take(OPTIONS_GLOBAL) as string) as BootOptions;
// isolated-vm's ExternalCopy class, taken from an empty copy the host set (released at once): kept in
// this closure, for answers' bodies to leave the isolate moved, not copied (abi.ts BodyCopy). No copy nor the
// class is reachable from tenant code, which therefore cannot patch its prototype (release is captured too).
const bodyCopySample = take(BODY_COPY_GLOBAL) as BodyCopy;
const BodyCopyCtor = Object.getPrototypeOf(bodyCopySample).constructor as new (bytes: ArrayBuffer, options: { transferOut: true }) => BodyCopy;
bodyCopySample.release();

// Used after tenant code has run (callCapAsync): captured before it can patch it.
const PromiseCtor = Promise;

installClock(g);
lockdown(g, options.allowEval, options.memoryLimit);

// --- console, crypto, timers, misc globals ------------------------------------------------------------
const logError = installConsole(g, host.log, host.logMirror);

const syncSubtle = installCrypto(g, host.random, cryptoRef);

const timers = installTimers(g, host, inRequest, logError);
installScheduler(g, timers);

g.structuredClone = (v: unknown, options?: { transfer?: unknown[] }) => structuredClone(v, options);
// Workers logs what is reported as an uncaught exception; the request goes on.
g.reportError = (e: unknown) => logError('Uncaught', e);

Object.assign(
  g,
  {
    addEventListener,
    removeEventListener,
    WebSocket,
    WebSocketPair,
    WebSocketRequestResponsePair,
    MessageEvent,
    CloseEvent,
    CryptoKey,
    HTMLRewriter,
    TextEncoder,
    TextDecoder,
    atob,
    btoa,
    DOMException,
    Blob,
    File,
    FormData,
    Headers,
    Request,
    Response,
    self: globalThis,
  },
  web,
);
// esbuild renames a class whose name collides inside the bundle (`AbortSignal` became `_AbortSignal`):
// a global constructor's `name` is its global name, as in every runtime. A capital first letter is
// checked by its code, not a RegExp: V8 compiles a RegExp in each new isolate (~0.1-0.2 ms per isolate).
for (const name of Object.keys(g)) {
  const first = name.charCodeAt(0);
  if (first < 65 || first > 90) continue;
  const value = g[name];
  if (typeof value === 'function' && value.name !== name) Object.defineProperty(value, 'name', { value: name, configurable: true });
}
// The streams' and the URL classes' globals load them on first read (streams.ts, url.ts), and name themselves then.
installStreamGlobals(g);
installUrlGlobals(g);

// --- capabilities and fetch -----------------------------------------------------------------------------
const callCap = capCaller((handle, method, args) => capSyncRef.applySyncPromise(undefined, [handle, method, args], { arguments: { copy: true } }));
const callCapAsync = asyncCapCaller(async (handle, method, args) => {
  if (requests.active === 0) throw new Error('fetch and other I/O can only be used while a request is being handled (not in global scope)');
  const started = requests.generation;
  const reply = await capRef.apply(undefined, [handle, method, args], { arguments: { copy: true }, result: { promise: true, copy: true } });
  // The request this call belonged to has ended: its continuations never run (they would run
  // outside every CPU and wall-time watchdog).
  if (started !== requests.generation) return new PromiseCtor<WireMessage>(() => {});
  return reply;
}, setClock);

const streamedBodies = { bodyRef, cancel: host.bodyCancel };
const subrequests = installFetch(g, callCapAsync, options.maxBody, streamedBodies);
// cloudflare:sockets (the module takes it from the built-ins): through the same capability as fetch().
const connect = makeConnect({ callCapAsync, bodies: streamedBodies, count: () => subrequests.count() });
// A Dynamic Worker with a gateway: fetch() is a fetch() of that entrypoint of its parent (worker-loader.ts).
const directFetch = g.fetch as (input: unknown, init?: unknown) => Promise<unknown>;
g.fetch = (input: unknown, init?: unknown) => (requests.outbound ? requests.outbound.fetch(input, init) : directFetch(input, init));
// EventSource connects with the worker's fetch and timers as the runtime installed them (not as a tenant may replace them).
g.EventSource = makeEventSource(g.fetch as EventSourceFetch, g.setTimeout as SetTimeout);
g.caches = makeCaches(callCapAsync);
// Workers RPC: this isolate's ends of its capnweb sessions with other workers (workers-rpc.ts).
const pipes = new Pipes({ open: host.rpcOpen, send: host.rpcSend, close: host.rpcClose });
const envDeps: EnvDeps = {
  callCap,
  callCapAsync,
  service: (name, own) => serviceBinding(pipes, name, subrequests.count, own),
  loader: (name) => loaderBinding(callCapAsync, pipes, name, subrequests.count, streamedBodies, options.maxBody),
};
requests.env = makeEnv(options.vars, options.bindings, envDeps);

// --- the entry the host calls -------------------------------------------------------------------------
const entry: Entry = {
  ...makeRequestPath({ g, host, bodyRef, BodyCopyCtor, options, timers, resetSubrequests: subrequests.reset, envDeps, pipes, logError, connect, syncSubtle }),
  fireTimer: timers.fire,
  // A response body pulled by the host runs the worker's pull() from the empty async context, as any host entry.
  pull: (seq: number, into: ArrayBuffer) => (enterRoot(), pull(seq, into, BodyCopyCtor as unknown as BodyCopyClass)),
  cancelStream,
};
// Taken by the host as the init half's result (abi.ts TAKE_ENTRY). The host names only Entry's keys.
const call = Reflect.apply;
const dispatch: EntryDispatch = (name, ...args) => call(entry[name] as (...a: unknown[]) => never, undefined, args);
g[ENTRY_GLOBAL] = dispatch;
