/**
 * Durable Objects inside the isolate, both ends:
 * - the caller's `env.<BINDING>` (a namespace): ids minted by the supervisor (synchronous, as in
 *   Workers), and stubs whose RPC methods are a Workers RPC session (workers-rpc.ts) to the object's
 *   one live instance — stubs, RpcTargets and functions by reference, as for a service binding — and
 *   whose `fetch()` is one capability call (so a WebSocket it answers with can be joined);
 * - the objects this isolate hosts: one instance per object key, made on its first call with
 *   `new Class(ctx, env)`, and `ctx` = { id, storage, waitUntil, blockConcurrencyWhile, … }.
 *
 * Gates (docs/durable-objects.md, "Gates"): every storage call blocks this isolate until the
 * supervisor has answered (a write is on disk before it returns), so no other event reaches an object
 * while its storage call is pending, and nothing can answer before a write it follows is durable.
 * blockConcurrencyWhile holds every new call to the object until its callback settles.
 */
import { Headers, Request, Response, Body } from './fetch-api.ts';
import { TextDecoder, TextEncoder } from './encoding.ts';
import { storageBinding, type CapCall } from './bindings.ts';
import type { CallAsync } from './workflow-step.ts';
import { decodeValue, encodeValue as encodeAny } from './tagged-values.ts';
import { makeFacets } from './facets.ts';
import { served } from './workers-rpc.ts';
import { RpcTarget, remote, resetBy, retryable } from './capnweb.ts';

/** What crosses an object call or its storage: structured clone as Workers RPC has it (class instances refused). */
const encodeValue = (v: unknown) => encodeAny(v, { instances: 'refuse' });
import { errorText } from './response-out.ts';
import { objectSockets, type ObjectSocketsHost } from './do-websockets.ts';
import { sockets as socketInternals } from './websocket.ts';
import type { ObjectSocketEvent } from '../../../../schemas/durable-objects.ts';

const PromiseCtor = Promise;
const rawHeaders = Headers.raw;
const readBody = Body.read;
const checkBody = Body.check;
const isNullBody = Body.isNull;
const freeze = Object.freeze;
const ObjectProto = Object.prototype;
const getProto = Object.getPrototypeOf;

/** An id as the tenant sees it: 64 hex digits, and the name it was made from, if any. */
export class DurableObjectId {
  readonly #hex: string;
  readonly name: string | undefined;
  constructor(hex: string, name?: string) {
    this.#hex = hex;
    this.name = name;
    freeze(this);
  }
  toString(): string {
    return this.#hex;
  }
  toJSON(): string {
    return this.#hex;
  }
  equals(other: unknown): boolean {
    return other instanceof DurableObjectId && other.#hex === this.#hex;
  }
}

/** What a call answered: its value, or (with a leading '!') the error it threw. */
function decodeResult(text: string): unknown {
  if (text.startsWith('!')) throw remote(decodeValue(text.slice(1)));
  return decodeValue(text);
}

/** Names that are never RPC methods of a stub (a stub is not a thenable; these are its own). */
const NOT_METHODS = new Set(['then', 'catch', 'finally', 'constructor', 'toJSON']);

/** A Workers RPC stub for session target `target` (workers-rpc.ts serviceBinding). */
export type SessionStub = (target: string) => object;

/**
 * An object's stub: `fetch()` one capability call (objectStub), its RPC methods on a Workers RPC
 * session whose target is `[binding, id, name]` as JSON (the host hands it to the binding's
 * capability, which checks the id again).
 */
function stubFor(handle: string, call: CallAsync, id: DurableObjectId, session: SessionStub): object {
  const base = objectStub(
    async (kind, method, payload) => (await call(handle, 'call', [id.toString(), id.name ?? null, kind, method, payload])) as string,
    { id, name: id.name },
    handle,
  ) as Record<string, unknown>;
  let rpc: Record<string, unknown> | undefined;
  return new Proxy(freeze({}), {
    get(_target, p) {
      if (typeof p !== 'string' || NOT_METHODS.has(p)) return undefined;
      if (p === 'id' || p === 'name' || p === 'fetch' || p === 'connect') return base[p];
      rpc ??= session(JSONstringify([handle, id.toString(), id.name ?? null])) as Record<string, unknown>;
      return rpc[p];
    },
  });
}

/** Names whose ids one namespace binding remembers, and stubs it keeps for reuse (bounds on the isolate's memory). */
const MAX_CACHED_NAMES = 4096;
const MAX_CACHED_STUBS = 128;
const JSONstringify = JSON.stringify;

/**
 * A stub whose fetch() and RPC methods each make one call through `invoke` (an object's, or a facet's:
 * facets.ts). `socketHandle`: the namespace binding a WebSocket its object answers with is joined through
 * (a facet's: FACET_SOCKET, its parent's 101 passes it on).
 */
export function objectStub(
  invoke: (kind: 'fetch' | 'rpc', method: string, payload: string) => Promise<string>,
  fields: Record<string, unknown>,
  socketHandle: string,
): object {
  const call = async (kind: 'fetch' | 'rpc', method: string, payload: string) => decodeResult(await invoke(kind, method, payload));
  const own: Record<string, unknown> = {
    ...fields,
    async fetch(input: unknown, init?: unknown): Promise<Response> {
      const req = new Request(input as string, init as undefined);
      const body = isNullBody(req) ? null : new Uint8Array(await req.arrayBuffer());
      const r = (await call('fetch', 'fetch', encodeValue({ method: req.method, url: req.url, headers: rawHeaders(req.headers), body }))) as {
        status: number;
        statusText: string;
        headers: [string, string][];
        body: Uint8Array | null;
        webSocket?: string;
      };
      // The object accepted a WebSocket: its client end here stands for the socket the supervisor keeps.
      if (r.status === 101 && typeof r.webSocket === 'string') {
        return new Response(null, { status: 101, headers: r.headers, webSocket: socketInternals.remoteClient(socketHandle, r.webSocket) });
      }
      const nullBody = r.status === 101 || r.status === 204 || r.status === 205 || r.status === 304;
      return new Response(nullBody ? null : r.body, { status: r.status, statusText: r.statusText, headers: r.headers });
    },
    connect() {
      throw new TypeError('connect() on a Durable Object stub is not supported by Cordon');
    },
  };
  return new Proxy(freeze(own), {
    get(target, p) {
      if (typeof p !== 'string') return undefined;
      if (Object.hasOwn(target, p)) return target[p];
      if (NOT_METHODS.has(p)) return undefined;
      return (...args: unknown[]) => call('rpc', p, encodeValue(args));
    },
  });
}

/** `env.<BINDING>` for a Durable Object class: ids of this namespace only, and stubs. */
export function namespaceBinding(callCap: CapCall, callAsync: CallAsync, handle: string, session: SessionStub): object {
  const mint = (kind: 'unique' | 'name' | 'string', arg: string | null) => {
    const r = callCap(handle, 'mint', [kind, arg]) as { id: string; name?: string };
    return new DurableObjectId(r.id, r.name);
  };
  // A name's id never changes (the supervisor derives it): asked once, not on every getByName.
  const named = new Map<string, DurableObjectId>();
  const byName = (name: string) => {
    let id = named.get(name);
    if (!id) {
      if (named.size >= MAX_CACHED_NAMES) named.clear();
      named.set(name, (id = mint('name', name)));
    }
    return id;
  };
  // Stubs to one object share one session while it lasts (a session per get() would pile up).
  const stubs = new Map<string, object>();
  const stub = (id: DurableObjectId) => {
    const key = `${id.toString()}:${id.name ?? ''}`;
    let s = stubs.get(key);
    if (!s) {
      if (stubs.size >= MAX_CACHED_STUBS) stubs.delete(stubs.keys().next().value as string);
      stubs.set(key, (s = stubFor(handle, callAsync, id, session)));
    }
    return s;
  };
  const self = freeze({
    newUniqueId(_options?: unknown): DurableObjectId {
      return mint('unique', null);
    },
    idFromName(name: unknown): DurableObjectId {
      return byName(String(name));
    },
    idFromString(hex: unknown): DurableObjectId {
      return mint('string', String(hex));
    },
    get(id: unknown, _options?: unknown): object {
      if (!(id instanceof DurableObjectId)) throw new TypeError('get() takes a DurableObjectId (from idFromName, newUniqueId or idFromString)');
      return stub(id);
    },
    getByName(name: unknown, _options?: unknown): object {
      return stub(byName(String(name)));
    },
    jurisdiction(_name: unknown): object {
      return self; // one mesh, one jurisdiction: ids are the same
    },
  });
  return self;
}

// --- the objects this isolate hosts ----------------------------------------------------------------

interface KvListOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

/** `ctx.storage` of one object: the SQL API, the synchronous and async KV APIs, transactions, alarms. */
function objectStorage(callCap: CapCall, handle: string): object {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const base = storageBinding(callCap, handle) as { sql: object; transactionSync<T>(fn: () => T): T };
  const pack = (v: unknown) => enc.encode(encodeValue(v));
  const unpack = (b: Uint8Array | null) => (b === null ? undefined : decodeValue(dec.decode(b)));
  const key = (k: unknown) => {
    if (typeof k !== 'string') throw new TypeError('a storage key is a string');
    return k;
  };
  const getOne = (k: unknown) => unpack(callCap(handle, 'kvGet', [key(k)]) as Uint8Array | null);
  const putOne = (k: unknown, v: unknown) => {
    if (v === undefined) throw new TypeError('put() needs a value (undefined cannot be stored)');
    callCap(handle, 'kvPut', [key(k), pack(v)]);
  };
  const deleteOne = (k: unknown) => callCap(handle, 'kvDelete', [key(k)]) as boolean;
  const list = (o: KvListOptions = {}): [string, unknown][] => {
    if (o.start !== undefined && o.startAfter !== undefined) throw new TypeError('list() takes start or startAfter, not both');
    const start = o.startAfter !== undefined ? `${String(o.startAfter)}\0` : o.start === undefined ? null : String(o.start);
    const limit = o.limit === undefined ? 10_000 : Number(o.limit);
    if (!(limit >= 1)) throw new RangeError('list() limit must be positive');
    const rows = callCap(handle, 'kvScan', [
      start,
      o.end === undefined ? null : String(o.end),
      String(o.prefix ?? ''),
      o.reverse === true,
      Math.min(limit | 0, 10_000),
    ]);
    return (rows as [string, Uint8Array][]).map(([k, v]) => [k, unpack(v)]);
  };
  const kv = freeze({
    get: (k: unknown) => getOne(k),
    put: (k: unknown, v: unknown) => putOne(k, v),
    delete: (k: unknown) => deleteOne(k),
    list: (o?: KvListOptions) => list(o)[Symbol.iterator](),
  });
  const storage = freeze({
    sql: base.sql,
    kv,
    transactionSync: <T>(fn: () => T) => base.transactionSync(fn),
    async get(k: unknown, _options?: unknown): Promise<unknown> {
      if (Array.isArray(k)) {
        if (k.length > 128) throw new RangeError('get() takes at most 128 keys');
        const out = new Map<string, unknown>();
        for (const one of k) {
          const v = getOne(one);
          if (v !== undefined) out.set(one, v);
        }
        return out;
      }
      return getOne(k);
    },
    async put(k: unknown, v?: unknown, _options?: unknown): Promise<void> {
      if (typeof k === 'object' && k !== null) {
        const entries = Object.entries(k);
        if (entries.length > 128) throw new RangeError('put() takes at most 128 entries');
        base.transactionSync(() => entries.forEach(([ek, ev]) => putOne(ek, ev)));
        return;
      }
      putOne(k, v);
    },
    async delete(k: unknown, _options?: unknown): Promise<boolean | number> {
      if (Array.isArray(k)) {
        if (k.length > 128) throw new RangeError('delete() takes at most 128 keys');
        return base.transactionSync(() => k.filter((one) => deleteOne(one)).length);
      }
      return deleteOne(k);
    },
    async list(o?: KvListOptions): Promise<Map<string, unknown>> {
      return new Map(list(o));
    },
    async deleteAll(_options?: unknown): Promise<void> {
      callCap(handle, 'deleteAll', []);
    },
    /**
     * On SQLite every storage call inside is part of the transaction; `txn` is `ctx.storage` itself
     * plus rollback(). Calls of other events that interleave at an await that is not storage's join
     * it too (docs/durable-objects.md).
     */
    async transaction<T>(fn: (txn: unknown) => Promise<T> | T): Promise<T> {
      let rolledBack = false;
      callCap(handle, 'begin', []);
      const txn = freeze({
        ...storage,
        rollback() {
          if (!rolledBack) callCap(handle, 'rollback', []);
          rolledBack = true;
        },
      });
      try {
        const out = await fn(txn);
        if (!rolledBack) callCap(handle, 'commit', []);
        return out;
      } catch (e) {
        if (!rolledBack) callCap(handle, 'rollback', []);
        throw e;
      }
    },
    async getAlarm(_options?: unknown): Promise<number | null> {
      return callCap(handle, 'getAlarm', []) as number | null;
    },
    async setAlarm(time: unknown, _options?: unknown): Promise<void> {
      const t = time instanceof Date ? time.getTime() : Number(time);
      if (!Number.isFinite(t)) throw new TypeError('setAlarm() takes a Date or milliseconds since the epoch');
      callCap(handle, 'setAlarm', [Math.round(t)]);
    },
    async deleteAlarm(_options?: unknown): Promise<void> {
      callCap(handle, 'setAlarm', [null]);
    },
    /** Every write is durable when its call returns: nothing to wait for. */
    async sync(): Promise<void> {},
  });
  return storage;
}

interface Hosted {
  instance: Record<string, unknown>;
  sockets: ObjectSocketsHost;
  /** While set, a blockConcurrencyWhile callback runs: new calls wait for it. */
  blocked: Promise<unknown> | null;
  /** The object left this isolate (moved, deleted): no session may make it here again. */
  dropped: boolean;
}

export interface ObjectHostDeps {
  exported(): Record<string, unknown>;
  env(): object;
  /** ctx.exports of this worker (entrypoints.ts). */
  exports(): object;
  callCap: CapCall;
  callAsync: CallAsync;
  logError: (...args: unknown[]) => void;
  maxBody: number;
}

/** The objects this isolate hosts, by key (the host's `<worker>:<class>:<id>`). */
export function makeObjectHost({ exported, env, exports, callCap, callAsync, logError, maxBody }: ObjectHostDeps) {
  const hosted = new Map<string, Hosted>();

  function instantiate(key: string, className: string, id: DurableObjectId, storageHandle: string): Hosted {
    const cls = exported()[className];
    if (typeof cls !== 'function') throw new TypeError(`the worker exports no Durable Object class ${className}`);
    const sockets = objectSockets(callCap, key);
    const h: Hosted = { instance: {}, sockets, blocked: null, dropped: false };
    const ctx = freeze({
      id,
      storage: objectStorage(callCap, storageHandle),
      facets: makeFacets(callAsync, storageHandle, id),
      exports: exports(),
      waitUntil(p: unknown) {
        PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e));
      },
      blockConcurrencyWhile<T>(fn: () => Promise<T> | T): Promise<T> {
        const run = PromiseCtor.resolve().then(fn);
        const settled = run.then(
          () => undefined,
          // As in Workers, the object is reset when the callback throws, and its error says so (registered
          // before any caller awaits `run`, so marked before they see it).
          (e: unknown) => {
            hosted.delete(key);
            resetBy(e);
          },
        );
        h.blocked = settled;
        void settled.then(() => {
          if (h.blocked === settled) h.blocked = null;
        });
        return run;
      },
      abort(reason?: unknown) {
        hosted.delete(key);
        // workerd's words: the reason as a string (an Error's is "Error: <message>"), or its own line without one.
        throw resetBy(new Error(reason === undefined ? 'Application called abort() to reset Durable Object.' : String(reason)));
      },
      ...sockets.ctx,
    });
    h.instance = new (cls as new (ctx: unknown, env: unknown) => Record<string, unknown>)(ctx, env());
    hosted.set(key, h);
    return h;
  }

  async function dispatch(h: Hosted, kind: string, method: string, payload: string): Promise<unknown> {
    const obj = h.instance;
    if (kind === 'fetch') {
      if (typeof obj.fetch !== 'function') throw new Error('Handler does not export a fetch() function.');
      const r = decodeValue(payload) as { method: string; url: string; headers: [string, string][]; body: Uint8Array | null };
      const response = await (obj.fetch as (r: Request) => unknown)(new Request(r.url, { method: r.method, headers: r.headers, body: r.body }));
      checkBody(response as Response);
      const res = response as Response;
      if (res.status === 101)
        return { status: 101, statusText: '', headers: rawHeaders(res.headers), body: null, webSocket: h.sockets.answer101(res.webSocket) };
      return { status: res.status, statusText: res.statusText, headers: rawHeaders(res.headers), body: await readBody(res, maxBody) };
    }
    if (kind === 'websocket') {
      // The supervisor's own payload (plain JSON): an event of one of the object's sockets.
      await h.sockets.deliver(obj, JSON.parse(payload) as ObjectSocketEvent);
      return undefined;
    }
    if (kind === 'alarm') {
      if (typeof obj.alarm !== 'function') throw new TypeError('the Durable Object has no alarm() method');
      // The supervisor's own payload (plain JSON): how many times this alarm has been retried.
      const info = JSON.parse(payload) as { retryCount: number; isRetry: boolean };
      await (obj.alarm as (i: unknown) => unknown)(freeze({ retryCount: Number(info.retryCount) | 0, isRetry: info.isRetry === true }));
      return undefined;
    }
    // RPC: a method of the class (its prototype chain short of Object.prototype), never a field or a built-in.
    let fn: unknown;
    for (let p = getProto(obj) as object | null; p && p !== ObjectProto; p = getProto(p) as object | null) {
      const d = Object.getOwnPropertyDescriptor(p, method);
      if (d) {
        fn = d.value;
        break;
      }
    }
    if (method === 'constructor' || typeof fn !== 'function') throw new TypeError(`The RPC receiver does not implement the method "${method}".`);
    const args = decodeValue(payload);
    if (!Array.isArray(args)) throw new TypeError('malformed RPC arguments');
    return await Reflect.apply(fn as (...a: unknown[]) => unknown, obj, args);
  }

  /** One call on an object: made on first use, waited for while blockConcurrencyWhile holds it. Answers encodeValue(result) or '!' + the error. */
  async function call(
    key: string,
    className: string,
    idHex: string,
    name: string | null,
    storageHandle: string,
    kind: string,
    method: string,
    payload: string,
  ) {
    try {
      let h = hosted.get(key) ?? instantiate(key, className, new DurableObjectId(idHex, name ?? undefined), storageHandle);
      for (let i = 0; h.blocked && i < 1000; i++) {
        await h.blocked;
        h = hosted.get(key) ?? instantiate(key, className, new DurableObjectId(idHex, name ?? undefined), storageHandle);
      }
      return encodeValue(await dispatch(h, kind, method, payload));
    } catch (e) {
      try {
        return '!' + encodeValue(e instanceof Error ? e : new Error(errorText(e)));
      } catch {
        return '!' + encodeValue(new Error('the Durable Object threw a value that could not be cloned'));
      }
    }
  }

  /** Until no blockConcurrencyWhile holds the object (bounded: a callback that keeps re-blocking is waited for 1000 times at most). */
  async function admitted(make: () => Hosted): Promise<Hosted> {
    let h = make();
    for (let i = 0; h.blocked && i < 1000; i++) {
      await h.blocked;
      h = make();
    }
    return h;
  }

  /**
   * What a session to object `key` serves (a stub's RPC methods): the instance's methods (Workers RPC's
   * rules, workers-rpc.ts `served`; a class that does not extend DurableObject serves nothing). Each
   * call — on the object, or on an RpcTarget or function it returned — is an event of the object: an
   * invocation (`enter`), admitted only when blockConcurrencyWhile does not hold the object. A method
   * of the object is looked up on the instance that is the object's when the call is admitted: after a
   * reset here (a throwing blockConcurrencyWhile, abort()) the session goes on with the new instance,
   * so a stub that a later request gets again does not fail on the old one. What an instance returned
   * by reference is refused once it is not the object's any more. Once the object left this isolate
   * (moved, deleted: the supervisor ends its sessions then), a call that still arrives is refused and
   * ends the session (`end`) with why: the caller's stub reconnects on its next use.
   */
  function target(
    key: string,
    className: string,
    idHex: string,
    name: string | null,
    storageHandle: string,
    enter: () => () => void,
    end: (reason: string) => void,
  ): RpcTarget {
    const make = () => hosted.get(key) ?? instantiate(key, className, new DurableObjectId(idHex, name ?? undefined), storageHandle);
    let mine = make();
    const inst = mine.instance;
    if (!(inst instanceof RpcTarget))
      throw new TypeError(
        `Durable Object class ${className} does not extend DurableObject (import { DurableObject } from 'cloudflare:workers'): it has no RPC methods`,
      );
    let servedMine = { of: mine, target: served(inst) };
    const current = () => {
      if (hosted.get(key) !== mine) {
        // It never ran: retryable, as Cloudflare marks a call that did not reach its object.
        if (mine.dropped)
          throw retryable(new Error('the Durable Object was moved or deleted since this stub connected to it: the next call reaches its new instance'));
        mine = make();
      }
      return mine;
    };
    /** What instance `owner` returned may be called only while it is the object's (no new instance is made for it). */
    const ownerOnly = (owner: Hosted) => () => {
      if (hosted.get(key) !== owner) throw new Error('this was returned by an instance of the Durable Object that has since been reset');
      return owner;
    };
    /** A call admitted on the object's current instance `h`, to what `pick(h)` names; `owner`: the instance that returned it, if any. */
    const event =
      (owner: Hosted | null, pick: (h: Hosted) => (...a: unknown[]) => unknown) =>
      async (...args: unknown[]): Promise<unknown> => {
        const leave = enter();
        try {
          const h = await admitted(owner === null ? current : ownerOnly(owner)).catch((e: unknown) => {
            // The session's own object went: the session ends. A stale returned target is refused alone.
            if (owner === null) end(errorText(e));
            throw e;
          });
          return gated(h, await Reflect.apply(pick(h), undefined, args));
        } finally {
          leave();
        }
      };
    const ownedBy = (owner: Hosted): ProxyHandler<RpcTarget> => ({
      get(t, p) {
        const value = Reflect.get(t, p, t);
        return typeof value === 'function' ? event(owner, () => value as (...a: unknown[]) => unknown) : value;
      },
    });
    // What a call answers by reference (an RpcTarget, a function) is the instance's: its calls are events of the object while that instance is its.
    const gated = (h: Hosted, v: unknown): unknown =>
      v instanceof RpcTarget ? new Proxy(served(v), ownedBy(h)) : typeof v === 'function' ? event(h, () => v as (...a: unknown[]) => unknown) : v;
    const onCurrent = (h: Hosted) => {
      if (servedMine.of !== h) servedMine = { of: h, target: served(h.instance as unknown as RpcTarget) };
      return servedMine.target;
    };
    return new Proxy(servedMine.target, {
      get(_t, p) {
        // Off the object's current instance, as a call is (a getter is read, not admitted, as before).
        const value = Reflect.get(onCurrent(mine.dropped ? mine : current()), p);
        if (typeof value !== 'function') return value;
        return event(null, (h) => {
          const fn = Reflect.get(onCurrent(h), p) as unknown;
          if (typeof fn !== 'function') throw new TypeError(`The RPC receiver does not implement the method "${String(p)}".`);
          return fn as (...a: unknown[]) => unknown;
        });
      },
    });
  }

  return {
    call,
    target,
    drop(key: string): void {
      const h = hosted.get(key);
      if (h) h.dropped = true;
      hosted.delete(key);
    },
  };
}
