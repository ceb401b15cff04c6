/**
 * Entrypoints inside the isolate: calling into this worker's exports (`fetch` and RPC methods of a
 * `WorkerEntrypoint` class, with `ctx.props`), `ctx.exports` (loopback stubs of those exports, each
 * able to carry props), and the stub that calls an entrypoint somewhere else through the host
 * (a Dynamic Worker's, or its parent's). Values cross as the capability wire encoding, checked to be
 * structured-clonable first (env.ts `codec`): an RPC argument or result that holds a function or a
 * stub is refused with a clear error rather than half-copied.
 *
 * Workers RPC proper (service bindings) is being built beside this; this is the part the Worker
 * Loader needs, kept in one module so the two can become one.
 */
import { Body, Headers, Request, Response } from './fetch-api.ts';
import { codec } from './value-codec.ts';
import { b64 } from './bindings.ts';
import { decodeWire, encodeWire } from './wire-codec.ts';
import { structuredClone } from './structured-clone.ts';
import type { EntrypointRef } from '../abi.ts';

export type CallAsync = (handle: string, method: string, args: unknown[]) => Promise<unknown>;

/** A request or response as it crosses the host: head and the whole body. */
export interface WireMessage {
  method?: string;
  url?: string;
  status?: number;
  statusText?: string;
  headers: [string, string][];
  body: Uint8Array | null;
}

/** What a loopback stub (ctx.exports) stands for: passed in a Dynamic Worker's env, the host keeps it; the loaded code never sees props. */
export type Loopback = EntrypointRef;
const loopbacks = new WeakMap<object, Loopback>();
/** The loopback a value is, if it is one (only stubs made by ctx.exports are). */
export function loopbackOf(value: unknown): Loopback | undefined {
  return (typeof value === 'object' || typeof value === 'function') && value !== null ? loopbacks.get(value) : undefined;
}

/** Stubs of a Dynamic Worker's entrypoints: refused as env or globalOutbound of another (as workerd refuses them). */
const remoteStubs = new WeakSet<object>();
export function isRemoteStub(value: unknown): boolean {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && remoteStubs.has(value);
}

/** Names a stub answers with something other than an RPC method: awaiting a stub must not call it. */
const NOT_METHODS = new Set(['then', 'constructor', 'toJSON', 'valueOf', 'toString']);

export async function toWire(request: Request, maxBody: number): Promise<WireMessage> {
  return { method: request.method, url: request.url, headers: Headers.raw(request.headers), body: await Body.read(request, maxBody) };
}

async function responseToWire(response: unknown, maxBody: number): Promise<WireMessage> {
  if (!(response instanceof Response)) throw new TypeError('fetch() of an entrypoint must return a Response');
  return { status: response.status, statusText: response.statusText, headers: Headers.raw(response.headers), body: await Body.read(response, maxBody) };
}

export function responseFromWire(w: WireMessage): Response {
  const nullBody = w.status === 101 || w.status === 204 || w.status === 205 || w.status === 304;
  return new Response(nullBody ? null : w.body, { status: w.status, statusText: w.statusText, headers: w.headers });
}

/** An answer of `invoke` (here or in another isolate, through the host): its value, or what it threw, thrown here. */
function unwrap(answer: unknown): unknown {
  if (typeof answer !== 'string') throw new TypeError('malformed entrypoint answer');
  const a = decodeWire(answer, b64) as { ok?: unknown; error?: string; name?: string };
  if (a.error !== undefined) {
    const err = new Error(a.error);
    err.name = typeof a.name === 'string' ? a.name : 'Error';
    throw err;
  }
  return a.ok;
}

/**
 * A stub for an entrypoint reached through `send` (method, wire-encoded arguments → an answer of
 * `invoke`): `fetch(input, init)`, and any other name as an RPC method. `remote`: a Dynamic Worker's
 * (it cannot be handed on).
 */
export function entrypointStub(send: (method: string, args: string) => Promise<unknown>, maxBody: number, remote: boolean): object {
  const fetch = async (input: unknown, init?: unknown) => {
    const request = await toWire(new Request(input as string, init as never), maxBody);
    return responseFromWire(unwrap(await send('fetch', encodeWire([request], b64))) as WireMessage);
  };
  // A function target: structuredClone refuses it (DataCloneError) instead of copying it into `{}`.
  const stub: object = new Proxy(() => {}, {
    apply() {
      throw new TypeError('an entrypoint stub is not a function: call its fetch() or its RPC methods');
    },
    get(_t, name) {
      if (name === 'fetch') return fetch;
      if (typeof name !== 'string' || NOT_METHODS.has(name)) return undefined;
      return async (...args: unknown[]) => unwrap(await send(name, codec.encode(args) ?? '[]'));
    },
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
  });
  if (remote) remoteStubs.add(stub);
  return stub;
}

type EntrypointClass = new (ctx: unknown, env: unknown) => Record<string, unknown>;

/** Calling into this worker's own exports: what the host's `invoke` and ctx.exports loopbacks run. */
export function makeDispatcher(deps: { exported: () => Record<string, unknown>; env: () => object; maxBody: number; logError: (...a: unknown[]) => void }) {
  let exportsFor: Record<string, unknown> | undefined;
  let exportsObject: object = Object.freeze({});
  /** `ctx.exports`: a stub per export (callable with `{ props }` for one that carries props); made once per loaded namespace. */
  function ctxExports(): object {
    const exported = deps.exported();
    if (exportsFor === exported) return exportsObject;
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(exported)) out[name] = loopbackStub(name, null);
    exportsFor = exported;
    exportsObject = Object.freeze(out);
    return exportsObject;
  }

  function loopbackStub(exportName: string, props: string | null): object {
    // Called here, it runs here, its values copied as they would be between isolates.
    const local = entrypointStub((method, args) => invoke(exportName, props ?? '', method, args), deps.maxBody, false);
    // Callable too: ctx.exports.Name({ props }) is the same entrypoint with props (a copy: the caller cannot change them later).
    const specialise = (options?: { props?: unknown }) => loopbackStub(exportName, options?.props === undefined ? null : codec.encode(options.props));
    const stub = new Proxy(specialise, {
      get: (_t, name) => Reflect.get(local, name),
      set: () => false,
      defineProperty: () => false,
      deleteProperty: () => false,
    });
    loopbacks.set(stub, { exportName, props });
    return stub;
  }

  function ctxFor(props: unknown): object {
    return Object.freeze({
      props,
      exports: ctxExports(),
      waitUntil: (p: unknown) => void Promise.resolve(p).catch((e) => deps.logError('waitUntil promise rejected:', e)),
      passThroughOnException: () => {},
    });
  }

  /** One call of `method` on export `exportName` (default when null), with `props`; `fetch` takes and gives wire messages. */
  async function invokeLocal(exportName: string | null, props: string | null, method: string, args: unknown[]): Promise<unknown> {
    const name = exportName ?? 'default';
    const target = Object.hasOwn(deps.exported(), name) ? deps.exported()[name] : undefined;
    if (target === undefined) throw new TypeError(`the worker has no export named ${JSON.stringify(name)}`);
    const ctx = ctxFor(props === null ? undefined : codec.decode(props));
    const env = deps.env();
    if (method === 'fetch') {
      const w = args[0] as WireMessage;
      const request = new Request(w.url!, { method: w.method, headers: w.headers, body: w.body });
      let response: unknown;
      if (typeof target === 'function') {
        const instance = new (target as EntrypointClass)(ctx, env);
        if (typeof instance.fetch !== 'function') throw new TypeError(`entrypoint ${name} has no fetch() method`);
        response = await (instance.fetch as (r: Request) => unknown)(request);
      } else if (target !== null && typeof target === 'object' && typeof (target as { fetch?: unknown }).fetch === 'function') {
        response = await (target as { fetch(r: Request, e: unknown, c: unknown): unknown }).fetch(request, env, ctx);
      } else throw new TypeError(`entrypoint ${name} has no fetch() handler`);
      return responseToWire(response, deps.maxBody);
    }
    if (typeof target !== 'function')
      throw new TypeError(`entrypoint ${name} is not a class: RPC methods need class-based syntax (export class ${name} extends WorkerEntrypoint)`);
    const instance = new (target as EntrypointClass)(ctx, env);
    // Only the class's own methods (up its chain, short of Object.prototype) are callable: not the constructor, not a field holding a function.
    let proto = Object.getPrototypeOf(instance) as object | null;
    let fn: unknown;
    while (proto && proto !== Object.prototype) {
      const d = Object.getOwnPropertyDescriptor(proto, method);
      if (d) {
        fn = d.value;
        break;
      }
      proto = Object.getPrototypeOf(proto) as object | null;
    }
    // workerd's message.
    if (method === 'constructor' || typeof fn !== 'function') throw new TypeError(`The RPC receiver does not implement the method ${JSON.stringify(method)}.`);
    return await (fn as (...a: unknown[]) => unknown).apply(instance, args);
  }

  /**
   * The host's `invoke` (a call from another isolate through the host): `args` and the answer in the
   * wire encoding; the answer is `{ok}` or `{error, name}`, so the caller's stub throws what was thrown.
   */
  async function invoke(exportName: string, props: string, method: string, args: string): Promise<string> {
    try {
      const decoded = decodeWire(args, b64);
      if (!Array.isArray(decoded)) throw new TypeError('malformed entrypoint call');
      const result = await invokeLocal(exportName === '' ? null : exportName, props === '' ? null : props, method, decoded);
      return encodeWire({ ok: method === 'fetch' ? result : structuredClone(result) }, b64);
    } catch (e) {
      const err = e as { name?: unknown; message?: unknown } | null;
      return JSON.stringify({ error: String(err?.message ?? e), name: String(err?.name ?? 'Error') });
    }
  }

  return { ctxExports, invokeLocal, invoke };
}
