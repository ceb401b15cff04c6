/**
 * Workers RPC inside the isolate. A call from one worker to another (a service binding; a Durable
 * Object stub and a loaded worker's entrypoint work the same way) is one capnweb session between the
 * two isolates, over a *pipe*: this isolate's end is here, and the hosts carry its messages verbatim
 * to the other isolate's end (runtime/rpc-pipes.ts; over the mesh when that worker runs elsewhere).
 *
 * So what is callable, and how arguments travel, is capnweb's — which follows Workers: methods and
 * getters of an RpcTarget's class are callable, its instance properties and everything of
 * Object.prototype are not; plain data is copied; functions, RpcTargets and stubs go by reference
 * (calls on them come back over the same pipe) until disposed. A session reaches nothing but what
 * the two ends put into it: no handle names anything outside it.
 *
 * Pipes this isolate opens (to a binding) have negative ids; pipes the host opens (to serve an
 * entrypoint) positive ones.
 */
import type { RpcTransport } from 'capnweb';
import type { RpcStub } from 'capnweb';
import { RpcTarget, retryable } from './capnweb.ts';
import { unit } from './units.ts';
import { Request } from './fetch-api.ts';
import { requests } from './request-state.ts';
import { INSTANCE_ENDED } from '../../../../schemas/object-sessions.ts';

/** The host's side of the pipes (abi.ts HostCallbacks: rpcOpen, rpcSend, rpcClose). */
export interface PipeHost {
  /** This isolate opened pipe `id` to `target` (a binding's name). */
  open(id: number, target: string): void;
  send(id: number, message: string): void;
  /** This end of pipe `id` is gone (its session ended or failed). */
  close(id: number, reason: string): void;
}

/** capnweb's own limits for a session between two workers (the hosts bound message sizes too). */
const LIMITS = { maxDepth: 64 };
// Taken before any tenant code runs: a worker may replace the globals.
const apply = Reflect.apply;
const startsWith = String.prototype.startsWith;
/** Messages from the other end not yet taken by capnweb; past this the pipe is broken off. */
const MAX_QUEUED = 10_000;
/**
 * Sessions this isolate keeps open before it closes idle ones (the host allows 256 pipes in all):
 * a request that calls hundreds of Durable Objects opens a session to each, and they would otherwise
 * all last until the request scope ends.
 */
const MAX_OPENED = 128;

class PipeEnd implements RpcTransport {
  /** Whether the session has nothing left the other end can use (checked between messages). */
  idle: () => boolean = () => false;
  /** Whether it ends with the request scope (closeAll); a Durable Object's session does not. */
  scoped = true;
  readonly #id: number;
  readonly #host: PipeHost;
  readonly #gone: () => void;
  readonly #queue: string[] = [];
  #waiting: { resolve(m: string): void; reject(e: Error): void } | undefined;
  #ended: Error | undefined;

  constructor(id: number, host: PipeHost, gone: () => void) {
    this.#id = id;
    this.#host = host;
    this.#gone = gone;
  }

  send(message: string): void {
    if (this.#ended) throw this.#ended;
    this.#host.send(this.#id, message);
  }

  receive(): Promise<string> {
    // capnweb asks for the next message once it has handled the last one: a release that left this
    // end serving nothing ends the pipe (the other end let go of everything it held).
    if (!this.#ended && this.#queue.length === 0 && this.idle()) this.end(new Error('the other end released everything'), true);
    if (this.#ended) return Promise.reject(this.#ended);
    const next = this.#queue.shift();
    if (next !== undefined) return Promise.resolve(next);
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  abort(reason: unknown): void {
    this.end(reason instanceof Error ? reason : new Error(String(reason)), true);
  }

  deliver(message: string): void {
    if (this.#ended) return;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (waiting) return waiting.resolve(message);
    if (this.#queue.length >= MAX_QUEUED) return this.end(new Error('too many RPC messages waiting'), true);
    this.#queue.push(message);
  }

  /** `tell`: the host hears of it (it did not close the pipe itself). */
  end(reason: Error, tell: boolean): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.#queue.length = 0;
    this.#waiting?.reject(reason);
    this.#waiting = undefined;
    this.#gone();
    if (tell) this.#host.close(this.#id, String(reason.message));
  }
}

/** This isolate's ends of its pipes. */
export class Pipes {
  readonly #host: PipeHost;
  readonly #ends = new Map<number, PipeEnd>();
  /** Sessions this isolate opened, oldest first: whether each is idle (only its main stub held, nothing pending, nothing of ours out). */
  readonly #opened = new Map<number, () => boolean>();
  #next = 0;
  /** Called when the last pipe the host opened has ended (the isolate may then end its scope). */
  onIdle: () => void = () => {};

  constructor(host: PipeHost) {
    this.#host = host;
  }

  /** Pipes open now. */
  get size(): number {
    return this.#ends.size;
  }

  #end(id: number): PipeEnd {
    const end = new PipeEnd(id, this.#host, () => {
      this.#ends.delete(id);
      this.#opened.delete(id);
      if (this.#ends.size === 0) this.onIdle();
    });
    this.#ends.set(id, end);
    return end;
  }

  /** A session to `target` (a binding the host knows): the stub of the other end's main object. */
  connect(target: string): RpcStub<Record<string, unknown>> {
    if (this.#opened.size >= MAX_OPENED) this.#closeIdle();
    const id = --this.#next;
    const end = this.#end(id);
    this.#host.open(id, target);
    const session = new (unit('rpc').RpcSession)<Record<string, unknown>>(end, undefined, { limits: LIMITS });
    this.#opened.set(id, () => {
      const { imports, exports } = session.getStats();
      return imports <= 1 && exports <= 1;
    });
    return session.getRemoteMain();
  }

  /** Close the oldest idle sessions this isolate opened (a stub of one reconnects on its next use), a quarter of the bound at most. */
  #closeIdle(): void {
    let closed = 0;
    for (const [id, idle] of [...this.#opened]) {
      if (closed >= MAX_OPENED / 4) break;
      if (!idle()) continue;
      this.#ends.get(id)?.end(new Error('closed while idle to make room for newer RPC sessions'), true);
      closed++;
    }
  }

  /**
   * Serve `main` on pipe `id`, which the host opened; the pipe ends when the other end holds nothing of
   * ours, or (`scoped`) with the request scope.
   */
  serve(id: number, main: RpcTarget, scoped = true): void {
    if (!(id > 0) || this.#ends.has(id)) throw new Error(`pipe ${id} cannot be served`);
    const end = this.#end(id);
    end.scoped = scoped;
    const session = new (unit('rpc').RpcSession)(end, main, { limits: LIMITS, onSendError: asWorkerd });
    end.idle = () => session.getStats().exports === 0;
  }

  deliver(id: number, message: string): void {
    this.#ends.get(id)?.deliver(message);
  }

  /** This end of pipe `id` ends (the host and the other end hear of it). */
  end(id: number, reason: string): void {
    this.#ends.get(id)?.end(new Error(reason), true);
  }

  /** The host closed pipe `id` (the other end went away). */
  closed(id: number, reason: string): void {
    const end = this.#ends.get(id);
    if (!end) return;
    const error = new Error(reason);
    // A Durable Object's lease ended under the session: whether a call in flight ran cannot be told, and
    // Cloudflare marks such an error retryable (an idempotent call may be sent again).
    end.end(apply(startsWith, reason, [INSTANCE_ENDED]) ? retryable(error) : error, false);
  }

  /** The scope they belong to ended: every pipe of it ends, and the host hears of each. */
  closeAll(reason: string): void {
    for (const end of [...this.#ends.values()]) if (end.scoped) end.end(new Error(reason), true);
  }
}

/** capnweb's refusals of a name, as workerd words them (no stack: the callee's stack is not the caller's to see). */
function asWorkerd(error: Error): Error | undefined {
  const message = error.message;
  // Most errors sent are neither (a session's end sends one): not matched against the expressions,
  // which V8 would compile in each new isolate, a Dynamic Worker's every time.
  if (typeof message !== 'string' || (message[0] !== "'" && message[0] !== 'A')) return;
  const name = /^'(.*)' is not a function\.$/.exec(message)?.[1] ?? /^Attempted to access property '(.*)', which is an instance property/.exec(message)?.[1];
  if (name === undefined) return;
  const rewritten = new TypeError(`The RPC receiver does not implement the method "${name}".`);
  rewritten.stack = '';
  return rewritten;
}

/** Names Workers never dispatches over RPC, whatever the entrypoint defines (handlers of other events, the stub's own). */
const RESERVED = new Set(['alarm', 'webSocketMessage', 'webSocketClose', 'webSocketError', 'dup']);

function reserved(key: string): () => never {
  return () => {
    throw new TypeError(`'${key}' is a reserved method and cannot be called over RPC.`);
  };
}

/**
 * What a session serves of `target`: everything capnweb allows, but the reserved names. The methods
 * run on the target itself (its private fields work), not on this stand-in.
 */
export function served(target: RpcTarget, fallback?: (key: string) => unknown): RpcTarget {
  return new Proxy(target, {
    get(t, key) {
      if (typeof key === 'string' && RESERVED.has(key)) return reserved(key);
      let value = Reflect.get(t, key, t);
      if (value === undefined && fallback && typeof key === 'string') value = fallback(key);
      return typeof value === 'function' ? value.bind(t) : value;
    },
  });
}

/** The `ctx` an entrypoint is constructed with for a call (props are the binding's, set by its owner). */
export interface EntrypointContext {
  waitUntil(promise: unknown): void;
  passThroughOnException(): void;
  props: unknown;
}

/**
 * A default export in object syntax (`export default { fetch, … }`): fetch, and, as in Workers, its
 * other functions called with exactly one argument, as `handler.name(arg, env, ctx)`.
 */
class ObjectEntrypoint extends RpcTarget {
  readonly #handler: { fetch(request: unknown, env: unknown, ctx: unknown): unknown };
  readonly #env: unknown;
  readonly #ctx: unknown;
  constructor(handler: { fetch(request: unknown, env: unknown, ctx: unknown): unknown }, env: unknown, ctx: unknown) {
    super();
    this.#handler = handler;
    this.#env = env;
    this.#ctx = ctx;
  }
  fetch(request: unknown): unknown {
    return this.#handler.fetch(request, this.#env, this.#ctx);
  }
}

/**
 * The object a session serves for entrypoint `name` of the worker's main module ('default' when
 * absent): a new instance of an exported `WorkerEntrypoint` class, or, for an object default export,
 * its fetch alone. Anything else is refused with a message that says what to export.
 */
export function entrypointFor(exported: Record<string, unknown>, name: string, env: unknown, ctx: EntrypointContext): RpcTarget {
  const value = exported[name];
  if (value === undefined) throw new TypeError(`the worker has no entrypoint named "${name}" (export a class that extends WorkerEntrypoint under that name)`);
  if (typeof value === 'function') {
    const instance = new (value as new (ctx: unknown, env: unknown) => unknown)(ctx, env);
    if (!(instance instanceof RpcTarget))
      throw new TypeError(`entrypoint "${name}" is a class that does not extend WorkerEntrypoint (import { WorkerEntrypoint } from 'cloudflare:workers')`);
    return served(instance);
  }
  const handler = value as Record<string, unknown> | null;
  if (name === 'default' && handler && typeof handler.fetch === 'function') {
    const topLevel = (key: string) => {
      if (key in Object.prototype || typeof handler[key] !== 'function') return undefined;
      return (...args: unknown[]) => {
        if (args.length !== 1)
          throw new TypeError(
            `Attempted to call RPC function "${key}" with the wrong number of arguments. When calling a top-level handler function that is not declared as part of a class, you must always send exactly one argument. In order to support variable numbers of arguments, the server must use class-based syntax (extending WorkerEntrypoint) instead.`,
          );
        return (handler[key] as (arg: unknown, env: unknown, ctx: unknown) => unknown)(args[0], env, ctx);
      };
    };
    return served(new ObjectEntrypoint(handler as { fetch(request: unknown, env: unknown, ctx: unknown): unknown }, env, ctx), topLevel);
  }
  throw new TypeError(`entrypoint "${name}" is neither a WorkerEntrypoint class nor a default export with a fetch() method`);
}

/**
 * fetch() of entrypoint `name` for a parent's call down the request path (a loaded Worker's stub, not a
 * session): the same instance entrypointFor serves, and the same refusal capnweb gives when its class
 * has no fetch method (an instance field is none).
 */
export function entrypointFetch(exported: Record<string, unknown>, name: string, env: unknown, ctx: EntrypointContext, request: unknown): unknown {
  const target = entrypointFor(exported, name, env, ctx) as unknown as Record<string, unknown>;
  const fetch = Object.hasOwn(target, 'fetch') ? undefined : target.fetch;
  if (typeof fetch !== 'function') throw new TypeError('The RPC receiver does not implement the method "fetch".');
  return (fetch as (request: unknown) => unknown)(request);
}

/**
 * `env.<BINDING>` for a service binding: the other worker's entrypoint, as a stub (and a Durable
 * Object's stub, whose `target` names the object and whose `own` properties are its id and name). Its session opens
 * on first use in a request and ends with the request's scope, as every I/O object does (a session
 * that broke is opened afresh on next use). `fetch` takes what the global fetch takes and sends a
 * Request; every call on the binding counts as a subrequest. `connect()` (TCP) is not offered.
 */
export function serviceBinding(pipes: Pipes, name: string, subrequest: () => void, own: Readonly<Record<string, unknown>> = {}): object {
  let current: { generation: number; stub: RpcStub<Record<string, unknown>> } | undefined;
  const connect = () => {
    if (requests.active === 0) throw new Error('a service binding can only be used while a request is being handled (not in global scope)');
    if (current?.generation !== requests.generation) {
      const opened = { generation: requests.generation, stub: pipes.connect(name) };
      opened.stub.onRpcBroken(() => {
        if (current === opened) current = undefined;
      });
      current = opened;
    }
    return current.stub as unknown as Record<string, unknown>;
  };
  // A call on the binding counts; the stub's own methods (dup) need the stub as `this`.
  const counted = (stub: Record<string, unknown>, key: string) =>
    new Proxy(stub[key] as (...args: unknown[]) => unknown, {
      apply(target, _self, args) {
        subrequest();
        return Reflect.apply(target, stub, args);
      },
    });
  const fetch = (input: unknown, init?: unknown) => {
    subrequest();
    return (connect() as unknown as { fetch(request: Request): Promise<unknown> }).fetch(new Request(input as string, init as never));
  };
  return new Proxy(Object.freeze({}), {
    get(_target, key) {
      // A Durable Object stub's own properties (id, name): the same session mechanism, another target.
      if (typeof key === 'string' && Object.hasOwn(own, key)) return own[key];
      if (key === 'fetch') return fetch;
      if (key === 'connect') return () => Promise.reject(new TypeError('connect() (TCP sockets) over a service binding is not supported'));
      // Not a thenable (awaiting env.API must not make a call), and symbols are the stub's business only.
      if (typeof key !== 'string' || key === 'then') return undefined;
      return counted(connect(), key);
    },
    has: (_target, key) => typeof key === 'string',
  });
}
