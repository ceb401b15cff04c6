/**
 * The interface between the host (instance.ts) and the isolate's bootstrap (bootstrap/index.ts): the
 * globals the host hands over before the bootstrap runs, the callbacks and references behind them, the
 * options, the entry object the bootstrap leaves for the host, and the library modules of the start-up
 * snapshot. Both halves import this file, so `tsc` catches a name or a signature that differs.
 *
 * It is bundled into the isolate too: types and plain constants only, no imports of values.
 */
import type * as encoding from './bootstrap/encoding.ts';
import type * as fetchApi from './bootstrap/fetch-api.ts';
import type * as web from './bootstrap/web-globals.ts';
import type * as idna from './bootstrap/idna.ts';
import type * as capnweb from './bootstrap/capnweb.ts';
import type * as digest from './bootstrap/digest-stream.ts';
import type * as units from './bootstrap/units.ts';
import type * as streams from './bootstrap/streams.ts';
import type * as url from './bootstrap/url.ts';
import type * as rpcUnit from './bootstrap/rpc-unit.ts';
import type * as hashesUnit from './bootstrap/hashes-unit.ts';
import type * as fflateUnit from './bootstrap/fflate-unit.ts';
import type * as multibyteUnit from './bootstrap/multibyte-unit.ts';
import type * as urlpatternUnit from './bootstrap/urlpattern-unit.ts';
import type * as streamsUnit from './bootstrap/streams-unit.ts';
import type * as urlUnit from './bootstrap/url-unit.ts';
import type * as rpcClone from './bootstrap/rpc-clone.ts';
import type { NodeCryptoCall, NodeCryptoResult } from './bootstrap/node-crypto-wire.ts';
import type { WireCall, WireResult } from './bootstrap/subtle-wire.ts';
import type { WireMessage } from './bootstrap/wire-codec.ts';
import type { Binding, VarValue } from '../../../schemas/worker.ts';

/**
 * The host's callbacks (isolated-vm Callbacks): primitives and ArrayBuffer copies in and out. Those
 * returning void are called without waiting for the host (ASYNC_CALLBACKS).
 */
export interface HostCallbacks {
  /** A console line: text as it is, or the arguments as LogValues for the host to format as workerd does (log-format.ts). */
  log(level: string, message: string | LogValue[]): void;
  random(bytes: number): ArrayBuffer;
  wsSend(id: number, data: string | ArrayBuffer): void;
  wsClose(id: number, code: number, reason: string): void;
  wsOpened(id: number): void;
  setTimer(id: number, ms: number): void;
  clearTimer(id: number): void;
  idna(domain: string, options: string): string | null;
  /** The legacy multi-byte encodings' tables, as JSON text (bootstrap/legacy-tables.ts). */
  encodingTables(): string;
  /** lol-html's WebAssembly, for HTMLRewriter (bootstrap/html-rewriter.ts). */
  htmlRewriterWasm(): ArrayBuffer;
  /** The Brotli codec's WebAssembly, for node:zlib (cli/node-polyfills/brotli.ts). */
  brotliWasm(): ArrayBuffer;
  /** console's describer of values (bootstrap/log-mirror.ts): a function body returning its module, for the first line with a value. */
  logMirror(): string;
  /**
   * Lazy unit `name` (LAZY_UNITS) compiled and run in the isolate's context: a reference to its factory
   * (bootstrap/units.ts), or null for a name that is not a unit.
   */
  unit(name: string): UnitRef | null;
  /**
   * Answers to requests of batches (see Entry.runBatch): each four arguments, `seq, head, body, ended`.
   * A body over a few KiB is an isolated-vm ExternalCopy the isolate moved the bytes' buffer into (BodyCopy):
   * only its handle crosses, and the host takes the bytes over without copying them (a callback's
   * ArrayBuffer argument is serialised, then copied once more into the host's heap: kept for small ones).
   */
  done(...answers: (number | string | BodyCopy | ArrayBuffer | null | boolean)[]): void;
  /** Workers RPC (bootstrap/workers-rpc.ts): the isolate opened pipe `pipe` to a binding. */
  rpcOpen(pipe: number, target: string): void;
  /** A capnweb message from the isolate's end of a pipe, for the other end. */
  rpcSend(pipe: number, message: string): void;
  /** The isolate's end of a pipe is gone. */
  rpcClose(pipe: number, reason: string): void;
  /** The worker cancelled fetched body `id` (see HostReferences.bodyPull): its connection to the origin closes. */
  bodyCancel(id: number): void;
  /**
   * A call on a Durable Object session (served on `pipe`) starts (`busy`) or ends: each call, not the
   * session, is an invocation of the worker (watchdogs, the scope's end), as each event of an object is.
   */
  objectBusy(pipe: number, call: number, busy: boolean): void;
}

/**
 * A logged value as the isolate describes it (bootstrap/log-mirror.ts) for the host to format with Node's
 * util.format (log-format.ts): primitives as they are (the structured copy keeps bigint, undefined, -0,
 * NaN), anything else a LogNode; shared and cyclic nodes stay so in the copy. Bounded in the isolate
 * (depth, 100 items per container, 2,000 nodes per line) and checked again on the host.
 */
export type LogValue = string | number | boolean | null | undefined | bigint | LogNode;
export interface LogNode {
  k: LogKind;
  /** Its constructor's name (null: none, a null-prototype object). */
  c: string | null;
  /** Own properties shown: key (a string or a `symbol` node), value, 0 a value / 1 a getter / 2 a setter / 3 both, true if not enumerable. */
  p: [string | LogNode, LogValue, 0 | 1 | 2 | 3, boolean][];
  /**
   * The kind's content (containers: none past the depth shown). array and set:
   * LogValue[] (a `hole` node for a hole); map: [LogValue, LogValue][]; date: its time; regexp: [source,
   * flags]; error: [stack, message, name, cause?]; function: [name, form, length, superclass name];
   * symbol: its description; boxed: the primitive; typed: its first elements; arraybuffer: its first bytes
   * (a number[]); json: `%j`'s text (`c: 'circular'` if it had a cycle); string: the first 10,000 characters of a long one.
   */
  v?: unknown;
  /** How many elements (or characters, or bytes) are left out; past the depth shown, 1 if it has any. */
  more?: number;
  /** Past the depth shown: its kind and name only (util.inspect prints `[Array]`, `[Point]`, or `{}` if empty). */
  deep?: true;
  /** A Symbol.toStringTag of its prototype's that differs from its constructor's name. */
  t?: string;
}
export type LogKind =
  | 'object'
  | 'array'
  | 'map'
  | 'set'
  | 'date'
  | 'regexp'
  | 'error'
  | 'function'
  | 'symbol'
  | 'boxed'
  | 'typed'
  | 'arraybuffer'
  | 'promise'
  | 'weakmap'
  | 'weakset'
  | 'hole'
  | 'json'
  | 'string';

/** The global each callback is handed over as (the bootstrap takes and deletes it before tenant code). */
export const CALLBACK_GLOBALS = {
  log: '__cordonLog',
  random: '__cordonRandom',
  wsSend: '__cordonWsSend',
  wsClose: '__cordonWsClose',
  wsOpened: '__cordonWsOpened',
  setTimer: '__cordonSetTimer',
  clearTimer: '__cordonClearTimer',
  idna: '__cordonIdna',
  encodingTables: '__cordonEncodingTables',
  htmlRewriterWasm: '__cordonHtmlRewriterWasm',
  brotliWasm: '__cordonBrotliWasm',
  logMirror: '__cordonLogMirror',
  unit: '__cordonUnit',
  done: '__cordonDone',
  rpcOpen: '__cordonRpcOpen',
  rpcSend: '__cordonRpcSend',
  rpcClose: '__cordonRpcClose',
  bodyCancel: '__cordonBodyCancel',
  objectBusy: '__cordonObjectBusy',
} as const satisfies { [K in keyof HostCallbacks]: `__cordon${Capitalize<K>}` };

type VoidCallback = { [K in keyof HostCallbacks]: ReturnType<HostCallbacks[K]> extends void ? K : never }[keyof HostCallbacks];
/** Callbacks the isolate does not wait for (isolated-vm's `ignored`): only those with nothing to return. */
export const ASYNC_CALLBACKS: readonly VoidCallback[] = [
  'log',
  'wsSend',
  'wsClose',
  'wsOpened',
  'setTimer',
  'clearTimer',
  'done',
  'rpcOpen',
  'rpcSend',
  'rpcClose',
  'bodyCancel',
];

/** The host's References (isolated-vm): functions the isolate calls and waits for as promises. */
export interface HostReferences {
  /**
   * A capability call: the arguments in, `{ok}` or `{error}` out, each a WireMessage crossing as a
   * structured copy (its bytes as ArrayBuffers beside the text, never as base64).
   */
  capCall(handle: string, method: string, args: WireMessage): Promise<WireMessage>;
  /**
   * The same for the isolate's blocking calls: applySyncPromise takes no result options, so its answer
   * is a transferred copy. (The asynchronous calls take theirs as `result: { copy: true }`: a transferred
   * copy returned by an async host function reaches the isolate only with its next task.)
   */
  capCallSync(handle: string, method: string, args: WireMessage): Promise<WireMessage>;
  /** The next chunk of request `seq`'s streamed body, or of a fetch() response's (its number instead), as an ArrayBuffer copy; null at its end. */
  bodyPull(seq: number): Promise<ArrayBuffer | null>;
  /** crypto.subtle's host (host-crypto.ts), and node:crypto's beyond it (host-node-crypto.ts): one call, a structured copy each way. */
  crypto(call: WireCall | NodeCryptoCall): Promise<WireResult | NodeCryptoResult>;
}

export const REFERENCE_GLOBALS = {
  capCall: '__cordonCapCall',
  capCallSync: '__cordonCapCallSync',
  bodyPull: '__cordonBodyPull',
  crypto: '__cordonCrypto',
} as const satisfies { [K in keyof HostReferences]: `__cordon${Capitalize<K>}` };

/** Bytes the isolate moved out of its heap (isolated-vm's ExternalCopy, BODY_COPY_GLOBAL's class); the host takes them over. */
export interface BodyCopy {
  release(): void;
}
/** A pull's bytes: the host's buffer moved back out, as a view of the bytes put in it (in an object without a prototype). */
export interface PulledBytes {
  bytes: BodyCopy;
}
/**
 * An empty ExternalCopy, from which the bootstrap takes isolated-vm's ExternalCopy class (its constructor)
 * and nothing else of isolated-vm (taken and deleted before tenant code).
 */
export const BODY_COPY_GLOBAL = '__cordonBodyCopy';

/** A host Reference as the isolate calls it (the part of isolated-vm's Reference the bootstrap uses). */
export interface IsolateRef<F extends (...args: never[]) => Promise<unknown>> {
  apply(recv: undefined, args: Parameters<F>, opts: { arguments?: { copy: true }; result: { promise: true; copy?: true } }): ReturnType<F>;
  /** Blocks this isolate only, until the host's promise settles. */
  applySyncPromise(recv: undefined, args: Parameters<F>, opts?: { arguments: { copy: true } }): Awaited<ReturnType<F>>;
}

/** What the bootstrap is told about its worker (JSON, in OPTIONS_GLOBAL). */
export interface BootOptions {
  allowEval: boolean;
  vars: Record<string, VarValue>;
  bindings: { type: Binding['type']; name: string }[];
  maxBody: number;
  maxHead: number;
  /** The worker's memory limit in bytes (isolated-vm's memoryLimit). */
  memoryLimit: number;
}
export const OPTIONS_GLOBAL = '__cordonOptions';

/** A request's metadata as runBatch takes it (JSON); `streamed`: its body streams in (HostReferences.bodyPull), none came with it. */
export interface RequestMeta {
  method: string;
  url: string;
  headers: [string, string][];
  streamed: boolean;
  cf?: Record<string, string>;
  /**
   * A parent's fetch() through a loaded Worker's entrypoint stub (worker-loader.ts): the entrypoint whose
   * fetch answers ('default' for the default export) and its props as JSON (`ctx.props`).
   */
  entrypoint?: string;
  props?: string | null;
}

/** What the bootstrap leaves in ENTRY_GLOBAL for the host to take (as References) and delete. */
export interface Entry {
  /**
   * Requests gathered by the host, each three arguments: `seq`, its metadata (RequestMeta as JSON, encoded
   * once) and its body (moved in, not copied); each answers through HostCallbacks.done.
   */
  runBatch(now: number, ...requests: (number | string | ArrayBuffer | null)[]): void;
  /**
   * A spare's rehearsal of the request path, before it knows its worker; `rpc`: Workers RPC's too (the isolate
   * code caches are made in); `withUrl`: the url unit loaded, to stay (a spare for a worker that names URL).
   */
  rehearse(now: number, rpc: boolean, withUrl: boolean): Promise<void>;
  runWorkflow(className: string, event: string, stepHandle: string, now: number): Promise<string>;
  runScheduled(cron: string, scheduledTime: number, now: number): Promise<string>;
  /**
   * One call on Durable Object `key` (made with `new className(ctx, env)` on its first call here), its
   * storage calls going to capability `storageHandle`; answers the encoded result, or '!' + the error.
   */
  objectCall(
    key: string,
    className: string,
    id: string,
    name: string | null,
    storageHandle: string,
    kind: string,
    method: string,
    payload: string,
    now: number,
  ): Promise<string>;
  /**
   * A Workers RPC session on pipe `pipe` (a stub's RPC methods) to Durable Object `key`, made on first
   * use as for objectCall; answers '' or why not.
   */
  objectServe(pipe: number, key: string, className: string, id: string, name: string | null, storageHandle: string, now: number): string;
  /** Forget object `key`'s instance (its lease ended): its next call makes a new one. */
  objectDrop(key: string): void;
  /** queue(batch, env, ctx): `messages` is QueueMessageWire[] as a WireMessage (bodies beside the text); answers a QueueOutcome as JSON. */
  runQueue(queue: string, messages: WireMessage, now: number): Promise<string>;
  drain(seq: number): Promise<void> | undefined;
  /** The next bytes of a streamed response body, copied into `into` (moved in by the host) and moved back out; null at its end. */
  pull(seq: number, into: ArrayBuffer): Promise<PulledBytes | null>;
  cancelStream(seq: number): void;
  wsEvent(id: number, type: string, data: string | ArrayBuffer | null, code: number, reason: string, now: number): void;
  configure(json: string): void;
  end(): void;
  fireTimer(id: number, now: number): void;
  ship(name: string, type: string, bytes: ArrayBuffer): string;
  loaded(namespace: Record<string, unknown>): string;
  /**
   * Workers RPC: serve entrypoint `entrypoint` of the main module on pipe `pipe` (opened by the host),
   * constructed with `ctx.props` from `props` (JSON). Answers '' or why it cannot.
   */
  rpcServe(pipe: number, entrypoint: string, props: string, now: number): string;
  /** A capnweb message from the other end of pipe `pipe`. */
  rpcDeliver(pipe: number, message: string, now: number): void;
  /** The other end of pipe `pipe` is gone. */
  rpcClosed(pipe: number, reason: string): void;
  /** Resolves when the waitUntil promises of the session served on pipe `pipe` have settled (after it ended), or when the host ends all requests. */
  rpcDrain(pipe: number): Promise<void> | undefined;
}
const ENTRY_KEYS: { [K in keyof Entry]: true } = {
  runBatch: true,
  rehearse: true,
  runWorkflow: true,
  runScheduled: true,
  objectCall: true,
  objectServe: true,
  objectDrop: true,
  runQueue: true,
  drain: true,
  pull: true,
  cancelStream: true,
  wsEvent: true,
  configure: true,
  end: true,
  fireTimer: true,
  ship: true,
  loaded: true,
  rpcServe: true,
  rpcDeliver: true,
  rpcClosed: true,
  rpcDrain: true,
};
/** Every entry point, for the host to call by name (checked complete against Entry). */
export const ENTRY_NAMES = Object.keys(ENTRY_KEYS) as (keyof Entry)[];
/**
 * What the bootstrap leaves in ENTRY_GLOBAL: entry point `name` called with `args`. One function, so the
 * host takes one Reference per isolate rather than one per entry point (each a trip into the isolate).
 */
export type EntryDispatch = <K extends keyof Entry>(name: K, ...args: Parameters<Entry[K]>) => ReturnType<Entry[K]>;
export const ENTRY_GLOBAL = '__cordonEntry';
/**
 * Appended to the init half: the script's completion value is the dispatcher, taken out of the global
 * scope in the same run (the host gets it as the run's result, with no call of its own into the isolate).
 */
export const TAKE_ENTRY = `\n;(() => { const entry = globalThis.${ENTRY_GLOBAL}; delete globalThis.${ENTRY_GLOBAL}; return entry; })();\n`;

/** Load-time globals, removed by Entry.loaded: a shipped data or wasm module's value, and the `cloudflare:*` classes. */
export const SHIPPED_GLOBAL = '__cordonShipped';
export const BUILTINS_GLOBAL = '__cordonBuiltins';

/**
 * The library modules evaluated into the start-up snapshot (bootstrap/libs.ts), by the name they are
 * left under in LIBS_GLOBAL; in the init half (bootstrap/index.ts) an import of one of these files is
 * the snapshot's object (bootstrap-bundle.ts).
 */
export interface SnapshotLibs {
  encoding: typeof encoding;
  fetchApi: typeof fetchApi;
  web: typeof web;
  idna: typeof idna;
  capnweb: typeof capnweb;
  digest: typeof digest;
  units: typeof units;
  streams: typeof streams;
  url: typeof url;
}
/** Their files, relative to bootstrap/. */
export const SNAPSHOT_MODULES = {
  encoding: './encoding.ts',
  fetchApi: './fetch-api.ts',
  web: './web-globals.ts',
  idna: './idna.ts',
  capnweb: './capnweb.ts',
  digest: './digest-stream.ts',
  units: './units.ts',
  streams: './streams.ts',
  url: './url.ts',
} as const satisfies { [K in keyof SnapshotLibs]: `./${string}.ts` };
/** Snapshot modules imported for their effect only: nothing of them is evaluated again in the init half. */
export const SNAPSHOT_EFFECTS = ['./install-encoding.ts'] as const;
export const LIBS_GLOBAL = '__cordonLibs';

/**
 * Libraries left out of the snapshot and loaded by an isolate on first use (bootstrap/units.ts), by
 * name: their exports. Each is bundled on its own; its imports of snapshot modules are the snapshot's objects.
 */
export interface LazyUnits {
  rpc: typeof rpcUnit;
  hashes: typeof hashesUnit;
  fflate: typeof fflateUnit;
  multibyte: typeof multibyteUnit;
  urlpattern: typeof urlpatternUnit;
  streams: typeof streamsUnit;
  url: typeof urlUnit;
}
/** Their entry files, relative to bootstrap/. */
export const LAZY_UNITS = {
  rpc: './rpc-unit.ts',
  hashes: './hashes-unit.ts',
  fflate: './fflate-unit.ts',
  multibyte: './multibyte-unit.ts',
  urlpattern: './urlpattern-unit.ts',
  streams: './streams-unit.ts',
  url: './url-unit.ts',
} as const satisfies { [K in keyof LazyUnits]: `./${string}.ts` };
/**
 * What a unit's factory is given: the snapshot's library objects, and the init half's modules a unit
 * imports (UNIT_INIT_MODULES), so that a unit shares them rather than loading copies of its own after
 * tenant code has run (they capture built-ins as they load).
 */
export interface UnitImports extends SnapshotLibs {
  rpcClone: typeof rpcClone;
}
/** The init half's modules in UnitImports, by name: their files, relative to bootstrap/. */
export const UNIT_INIT_MODULES = { rpcClone: './rpc-clone.ts' } as const satisfies { [K in Exclude<keyof UnitImports, keyof SnapshotLibs>]: `./${string}.ts` };
/** What running a unit's script leaves: its factory, called once with UnitImports. */
export type UnitFactory = (imports: UnitImports) => unknown;
/** isolated-vm's Reference to a unit's factory, as the isolate holds it. */
export interface UnitRef {
  deref(): UnitFactory;
  release(): void;
}

/** A module of a Dynamic Worker's code as the parent's isolate sends it (bytes for data and wasm). */
export interface LoaderModule {
  name: string;
  type: 'esm' | 'cjs' | 'text' | 'data' | 'json' | 'wasm';
  content: string | Uint8Array;
}
/** An entrypoint of the parent (ctx.exports) named in a Dynamic Worker's env or as its globalOutbound; props as JSON, kept by the host. */
export interface EntrypointRef {
  exportName: string;
  props: string | null;
}
/** WorkerCode as the parent's isolate sends it to the host (bootstrap/worker-loader.ts checks it first, the host again). */
export interface LoaderCode {
  compatibilityDate: string;
  mainModule: string;
  modules: LoaderModule[];
  vars: Record<string, unknown>;
  stubs: Record<string, EntrypointRef>;
  /** `inherit`: the parent's own fetch; null: none (workerd's message); an entrypoint: every fetch goes to it. */
  globalOutbound: 'inherit' | null | EntrypointRef;
  limits: { cpuMs?: number; subRequests?: number; memoryMb?: number };
}
/** A Workers RPC pipe to a loaded Worker's entrypoint names this, then JSON `[binding, id, entrypoint, props]`. */
export const LOADER_TARGET = 'loader:';
/** A Dynamic Worker whose globalOutbound is a gateway has a service binding of this name (not in its env): its fetch() goes there. */
export const OUTBOUND_BINDING = '$outbound';
/** workerd's limits on what is loaded (MAX_DYNAMIC_WORKER_CODE_SIZE, MAX_DYNAMIC_WORKER_ENV_SIZE), and the longest id. */
export const LOADER_LIMITS = { codeBytes: 64 * 1024 * 1024, envBytes: 1024 * 1024, idLength: 256 } as const;
/** A Dynamic Worker loaded with `globalOutbound: null` has a stub of this name (not in its env): connect() then throws at once. */
export const NO_OUTBOUND_BINDING = '$no-outbound';
/** workerd's message when a Worker loaded with `globalOutbound: null` calls fetch() or connect(). */
export const NO_GLOBAL_OUTBOUND =
  "This worker is not permitted to access the internet via global functions like fetch(). It must use capabilities (such as bindings in 'env') to talk to the outside world.";
