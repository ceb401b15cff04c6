/**
 * The request path: the entry points the host calls to load the worker and to run its requests,
 * workflow runs and cron events, and to end them. index.ts takes the host's callbacks and installs the
 * APIs; this builds what the entry object calls, over the shared request state (request-state.ts).
 */
import { handOver, Request, Response } from './fetch-api.ts';
import { resetClock, setClock } from './clock.ts';
import { compileShipped } from './lockdown.ts';
import { WebSocket } from './websocket.ts';
import { makeStep, NonRetryableError, SUSPEND } from './workflow-step.ts';
import { decodeWire, inText, type WireMessage } from './wire-codec.ts';
import { serviceWorkerHandler } from './service-worker.ts';
import { runQueueHandler } from './queue-event.ts';
import { show } from './console.ts';
import type { Timers } from './timers.ts';
import { b64 } from './bindings.ts';
import { codec, makeEnv, type EnvDeps } from './env.ts';
import { entrypointFetch, entrypointFor, Pipes, type EntrypointContext } from './workers-rpc.ts';
import { RpcTarget } from './capnweb.ts';
import { makeExports } from './entrypoints.ts';
import { cancelAllStreams, errorText, fail, MOVE_OUT, serialize, streamsOpen, thrown } from './response-out.ts';
import { requestEpoch, requests, type Handler, type HandlerClass } from './request-state.ts';
import { asyncHooks, enterRoot } from './async-context.ts';
import type { SyncSubtle } from './subtle.ts';
import { makeObjectHost } from './durable-objects.ts';
import { hostBody } from './host-body.ts';
import { streams } from './streams.ts';
import { url } from './url.ts';
import { brotliModule } from './brotli.ts';
import {
  BUILTINS_GLOBAL,
  SHIPPED_GLOBAL,
  type BodyCopy,
  type BootOptions,
  type Entry,
  type HostCallbacks,
  type HostReferences,
  type IsolateRef,
  type RequestMeta,
} from '../abi.ts';

// --- what the response path needs, captured before tenant code can patch anything ------------------
const apply = Reflect.apply;
const JSONstringify = JSON.stringify;
const JSONparse = JSON.parse;
const U8 = Uint8Array;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
// Taken before tenant code, which may replace Promise.resolve: sendAnswers is queued on it.
const settled = Promise.resolve();
const allSettled = Promise.allSettled.bind(Promise);
const StringCtor = String;
const defineProperty = Object.defineProperty;
const abByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;
/** The largest answer body that crosses to the host inside done's call rather than as a BodyCopy. */
const INLINE_BODY = 4096;
const freeze = Object.freeze;

export interface RequestPathDeps {
  g: Record<string, unknown>;
  host: Pick<HostCallbacks, 'done' | 'objectBusy'>;
  /** Pulls the next chunk of a request body that streams in (an ArrayBuffer copy, or null at its end). */
  bodyRef: IsolateRef<HostReferences['bodyPull']>;
  /** isolated-vm's ExternalCopy: an answer's body leaves the isolate as one (abi.ts BodyCopy). */
  BodyCopyCtor: new (
    bytes: ArrayBuffer,
    options: typeof MOVE_OUT,
  ) => BodyCopy;
  options: BootOptions;
  timers: Timers;
  resetSubrequests: () => void;
  envDeps: EnvDeps;
  pipes: Pipes;
  logError: (...args: unknown[]) => void;
  /** cloudflare:sockets' connect (sockets.ts). */
  connect: (address: unknown, options?: unknown) => unknown;
  /** crypto.subtle run synchronously, for node:crypto (the `node-internal:crypto` module). */
  syncSubtle: SyncSubtle;
}

/** The entry points other than those of an API (timers, response streams), as the host calls them. */
export type RequestPath = Omit<Entry, 'fireTimer' | 'pull' | 'cancelStream'>;

export function makeRequestPath({
  g,
  host,
  bodyRef,
  BodyCopyCtor,
  options,
  timers,
  resetSubrequests,
  envDeps,
  pipes,
  logError,
  connect,
  syncSubtle,
}: RequestPathDeps): RequestPath {
  const { callCapAsync } = envDeps;
  // Captured before tenant code, as everything used after it (no tenant code can reach the class or a copy anyway).
  const releaseCopy = BodyCopyCtor.prototype.release;
  let configurable = true;

  /**
   * A context made ahead of need (a spare) is initialised before it knows its worker: the host then
   * gives it the worker's vars and bindings, once, before any module of the worker is loaded.
   */
  function configure(json: string): void {
    if (!configurable) throw new Error('configure() comes before the worker is loaded, once');
    configurable = false;
    const o = JSON.parse(json) as { vars: typeof options.vars; bindings: typeof options.bindings };
    requests.env = makeEnv(o.vars, o.bindings, envDeps);
  }

  // --- loading: data and WebAssembly modules shipped with the worker --------------------------------------
  // The host copies their bytes in (and this compiles wasm with the original constructor) before any tenant
  // module is evaluated; the generated module for `x.wasm` or `x.bin` takes its value from this
  // load-time-only global, which `loaded()` removes. It hands out nothing the bundle does not contain.
  const shipped = new Map<string, WebAssembly.Module | ArrayBuffer>();
  Object.defineProperty(g, SHIPPED_GLOBAL, { value: (name: string) => shipped.get(name), configurable: true, enumerable: false, writable: false });
  // The classes of the `cloudflare:*` built-in modules that this bootstrap must recognise (load time only, too).
  Object.defineProperty(g, BUILTINS_GLOBAL, {
    value: Object.freeze({ NonRetryableError, RpcTarget, asyncHooks, syncSubtle, env: () => requests.env, connect, brotliModule, requestEpoch }),
    configurable: true,
    enumerable: false,
    writable: false,
  });

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

  let exported: Record<string, unknown> = {};
  // ctx.exports and calls from other isolates into this worker's entrypoints (a Dynamic Worker and its parent).
  const ctxExports = makeExports({ exported: () => exported, env: () => requests.env, logError });

  function callHandler(request: Request, ctx: unknown): unknown {
    const h = requests.handler;
    if (typeof h === 'function') {
      if (!h.prototype || typeof h.prototype.fetch !== 'function') return NO_HANDLER;
      return new h(ctx, requests.env).fetch!(request);
    }
    if (!h || typeof h.fetch !== 'function') return NO_HANDLER;
    return h.fetch(request, requests.env, ctx);
  }
  const NO_HANDLER = Symbol('no handler');

  /**
   * A spare's rehearsal, before it knows its worker: requests through runBatch to a handler of the
   * bootstrap's own, so that the request path is compiled before the first real request (V8 compiles
   * functions on first use: ~1–2 ms of a cold start otherwise; and a loaded Worker, made without a spare
   * in a burst, compiles from the code cache made after this). Nothing of it stays: the handler is
   * unset again, the request's scope ended as after any request, and the clock is back at its start.
   * `rpc`: Workers RPC too (rehearseRpc) — only in the isolate the host makes its code caches in.
   * `withUrl`: the url unit is loaded, and stays — a spare for a worker whose code names URL (spares.ts).
   */
  async function rehearse(now: number, rpc: boolean, withUrl: boolean): Promise<void> {
    if (!configurable || requests.handler !== undefined) throw new Error('rehearse() is for a spare, before its worker');
    const handler = { fetch: (request: Request) => new Response(request.url, { headers: { 'content-type': 'text/plain' } }) };
    requests.handler = handler;
    exported = { default: handler };
    try {
      // Two requests in one batch, as the host sends them: a routed one and a parent's fetch() of a loaded
      // Worker's entrypoint. Answered through the host's `done` as requests 0 and -1, which no request is.
      const meta = { method: 'GET', url: 'http://spare.invalid/', headers: [['accept', '*/*']], streamed: false };
      await new PromiseCtor<void>((resolve) => {
        let left = 2;
        rehearsing = () => --left === 0 && resolve();
        runBatch(now, 0, JSONstringify(meta), null, -1, JSONstringify({ ...meta, entrypoint: 'default', props: null }), null);
      });
      if (withUrl) url();
      if (rpc) {
        await rehearseRpc(handler);
        await rehearseStreams();
        rehearseUrl();
      }
    } finally {
      rehearsing = undefined;
      exported = {};
      requests.handler = undefined;
      resetClock();
    }
  }
  /** While a rehearsal runs: told of each of its answers. */
  let rehearsing: (() => unknown) | undefined;

  /**
   * What a loaded Worker's first Workers RPC calls run, rehearsed over a pair of pipes looped back
   * inside this isolate (no host, no other worker): a session serving an entrypoint as rpcServe does,
   * the RPC unit's session code on both ends, a fetch() with a body and a method call with arguments.
   * The host then compiles the init half and the unit again here, and their code caches carry these
   * functions compiled (instance.ts rehearsedCaches).
   */
  async function rehearseRpc(handler: Handler): Promise<void> {
    class Rehearsal extends RpcTarget {
      echo(value: unknown): unknown {
        return { value };
      }
    }
    const ends: Pipes[] = [];
    // A message goes on a turn of its own, as one from the host does.
    const loop = (to: number) => ({
      open: () => {},
      send: (id: number, message: string) => void apply(promiseThen, settled, [() => ends[to]!.deliver(-id, message)]),
      close: (id: number, reason: string) => ends[to]!.closed(-id, reason),
    });
    const [caller, callee] = [new Pipes(loop(1)), new Pipes(loop(0))];
    ends.push(caller, callee);
    const ctx = freeze({ waitUntil: () => {}, passThroughOnException: () => {}, props: freeze({}) });
    const exported = { default: handler, Rehearsal };
    try {
      const main = caller.connect('rehearsal') as unknown as { fetch(request: Request): Promise<Response> };
      callee.serve(1, entrypointFor(exported, 'default', requests.env, ctx));
      await (await main.fetch(new Request('http://spare.invalid/rpc', { method: 'POST', body: 'rehearsal' }))).text();
      const named = caller.connect('rehearsal') as unknown as Rehearsal;
      callee.serve(2, entrypointFor(exported, 'Rehearsal', requests.env, ctx));
      await named.echo({ a: [1, 'b'], c: new U8(2) });
    } finally {
      caller.closeAll('rehearsed');
      callee.closeAll('rehearsed');
    }
  }

  /**
   * What a worker's first streams run (streams.ts, a lazy unit): a stream made and piped through a transform,
   * read to its end, and a body's byte stream read. Only in the isolate the host makes its code caches in,
   * so the streams unit's cache carries these functions compiled (instance.ts rehearsedCaches).
   */
  async function rehearseStreams(): Promise<void> {
    const { ReadableStream, TransformStream } = streams();
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new U8(1));
        controller.close();
      },
    });
    const reader = source.pipeThrough(new TransformStream<Uint8Array, Uint8Array>()).getReader();
    while (!(await reader.read()).done) {}
    await new Response('rehearsal').body!.getReader().read();
  }

  /**
   * What a worker's first URLs commonly run (url.ts, a lazy unit): a request's URL taken apart and its query
   * read, a URL that is not its own href parsed for a Request. Only in the isolate the host makes its code
   * caches in, so the url unit's cache carries these functions compiled. Not more: every isolate that loads
   * the unit keeps the compiled code of all of it (rehearsing setters, relative URLs and the rest as well
   * cost such an isolate 42 KB, for a first request within noise).
   */
  function rehearseUrl(): void {
    const { URL } = url();
    const u = new URL('http://spare.invalid/a/b?c=d&e=f#g');
    void (u.hostname + u.pathname + u.search + u.href);
    u.searchParams.get('c');
    void new Request('HTTP://Spare.invalid/./p').url;
  }

  /** Called by the host once the main module has been evaluated, with its namespace. */
  function loaded(namespace: Record<string, unknown>): string {
    configurable = false;
    delete g[SHIPPED_GLOBAL];
    delete g[BUILTINS_GLOBAL];
    shipped.clear();
    exported = namespace;
    try {
      requests.handler = namespace.default as Handler | HandlerClass | undefined;
    } catch (e) {
      return show(e);
    }
    // Service-worker syntax: no default export, listeners instead; its bindings are globals, as in Workers.
    const listening = serviceWorkerHandler();
    if (requests.handler === undefined && listening) {
      requests.handler = listening;
      for (const [name, value] of Object.entries(requests.env)) if (!Object.hasOwn(g, name)) g[name] = value;
    }
    return '';
  }

  const drains = new Map<number, Promise<unknown>>();
  /** Served Workers RPC sessions (by pipe) whose waitUntil promises the host has not drained yet. */
  const served = new Map<number, Promise<unknown>[]>();
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
    if (running > 0 || settling.size > 0 || drains.size > 0 || pipes.size > 0 || served.size > 0 || streamsOpen() || WebSocket.anyLive()) return out;
    end();
    return [out[0], out[1], true];
  }

  /**
   * Requests the host gathered (those that arrived together), in one call: one trip into the isolate
   * rather than one each, which is most of what a small request costs. Each starts at once, as if it
   * had come alone, and its answer goes back through the host's `done` as soon as it is ready (with
   * the others ready in the same turn of microtasks, in one call: `ready`): a slow request holds up no other.
   */
  function runBatch(now: number, ...requests: (number | string | ArrayBuffer | null)[]): void {
    enterRoot();
    for (let i = 0; i + 2 < requests.length; i += 3) {
      const seq = requests[i] as number;
      const answer = (r: [string, ArrayBuffer | null, boolean?]) => ready(seq, r[0], r[1], r[2] === true);
      apply(promiseThen, run(requests[i + 1] as string, requests[i + 2] as ArrayBuffer | null, now, seq), [
        answer,
        (e: unknown) => answer(fail('exception', errorText(e))),
      ]);
    }
  }

  /**
   * Answers ready in the same turn of the isolate's microtasks go to the host in one call (each call
   * is a task on the host's event loop): gathered here, sent from a microtask queued by the first.
   * Kept with defineProperty: no index setter a tenant put on Array.prototype sees them.
   */
  let answers: (number | string | BodyCopy | ArrayBuffer | null | boolean)[] = [];
  /** The BodyCopies among the answers (released once sent). */
  let copies: BodyCopy[] = [];
  const sendAnswers = () => {
    const out = answers;
    const made = copies;
    answers = [];
    copies = [];
    try {
      apply(host.done, undefined, out);
    } finally {
      // The host holds its own handle on each copy (taken with the call's arguments): this isolate's goes now.
      for (let i = 0; i < made.length; i++) apply(releaseCopy, made[i], []);
    }
  };
  function ready(seq: number, head: string, body: ArrayBuffer | null, ended: boolean): void {
    const n = answers.length;
    // The body's buffer is the runtime's alone (serialize): moved out of the heap here, not copied; only the
    // copy's handle crosses with the call (not the bytes, serialised, then copied again).
    // A small body crosses in the call itself: a handle costs more than copying a few bytes twice.
    let copy: BodyCopy | ArrayBuffer | null = body;
    if (body !== null && apply(abByteLength, body, []) > INLINE_BODY) {
      try {
        copy = new BodyCopyCtor(body, MOVE_OUT);
        defineProperty(copies, copies.length, { value: copy, writable: true, enumerable: true, configurable: true });
      } catch (e) {
        [head, copy] = fail('exception', errorText(e));
      }
    }
    if (n === 0) apply(promiseThen, settled, [sendAnswers]);
    defineProperty(answers, n, { value: seq, writable: true, enumerable: true, configurable: true });
    defineProperty(answers, n + 1, { value: head, writable: true, enumerable: true, configurable: true });
    defineProperty(answers, n + 2, { value: copy, writable: true, enumerable: true, configurable: true });
    defineProperty(answers, n + 3, { value: ended, writable: true, enumerable: true, configurable: true });
    if (seq <= 0) rehearsing?.();
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
    requests.active++;
    setClock(now);
    resetSubrequests();
    const meta = JSONparse(metaJson) as RequestMeta;
    const request = new Request(meta.url, {
      method: meta.method,
      headers: meta.headers,
      body: meta.streamed ? hostBody(bodyRef, seq) : body === null ? null : handOver(new U8(body)),
    });
    // What the edge knows of the connection (ingress), read-only as in Workers; a spare's rehearsal has none.
    if (meta.cf !== undefined) defineProperty(request, 'cf', { value: freeze(meta.cf), enumerable: true });
    const waitUntil: Promise<unknown>[] = [];
    // A parent's fetch() through a loaded Worker's entrypoint stub: that entrypoint answers, with its props.
    const entrypoint = meta.entrypoint;
    const ctx = Object.freeze({
      waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))),
      passThroughOnException: () => {},
      ...(entrypoint === undefined ? {} : { props: freeze(JSONparse(meta.props ?? 'null')) as unknown }),
      exports: ctxExports(),
    });
    let response: unknown;
    try {
      response = entrypoint === undefined ? callHandler(request, ctx) : entrypointFetch(exported, entrypoint, requests.env, ctx as EntrypointContext, request);
      if (response === NO_HANDLER)
        return fail('no-handler', 'the worker has no default export with a fetch(request, env, ctx) method (or a class with a fetch(request) method)');
      response = await response;
    } catch (e) {
      return entrypoint === undefined ? fail('exception', errorText(e)) : thrown(e);
    }
    if (waitUntil.length) {
      settling.add(seq);
      drains.set(
        seq,
        allSettled(waitUntil).finally(() => settling.delete(seq)),
      );
    }
    return serialize(response, seq, options);
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
    requests.active = 0;
    settling.clear(); // what is still pending is cut off: its replies are not delivered
    requests.generation++;
    timers.clearAll();
    drains.clear();
    served.clear();
    cancelAllStreams();
    pipes.closeAll('the request that opened this RPC session has ended');
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
    requests.active++;
    setClock(now);
    enterRoot();
    resetSubrequests();
    const cls = exported[className] as WorkflowClass | undefined;
    if (typeof cls !== 'function' || typeof (cls.prototype as { run?: unknown } | undefined)?.run !== 'function') {
      return JSONstringify({ outcome: 'errored', name: 'Error', message: `the worker exports no class ${className} with a run(event, step) method` });
    }
    let suspended = false;
    const step = makeStep(
      callCapAsync,
      stepHandle,
      codec,
      (fn, ms) => {
        const id = timers.add(fn, ms, [], false);
        return () => timers.clear(id);
      },
      () => (suspended = true),
    );
    const raw = decodeWire(eventWire, inText(b64)) as { payload: unknown; timestamp: number; instanceId: string; workflowName: string };
    const event = Object.freeze({ payload: raw.payload, timestamp: new Date(raw.timestamp), instanceId: raw.instanceId, workflowName: raw.workflowName });
    const ctx = Object.freeze({ waitUntil: () => {}, passThroughOnException: () => {}, exports: ctxExports() });
    try {
      const output = await new cls(ctx, requests.env).run(event, step);
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
    requests.active++;
    setClock(now);
    enterRoot();
    resetSubrequests();
    const h = requests.handler;
    const target = typeof h === 'function' ? (h.prototype as Handler | undefined) : h;
    if (!target || typeof target.scheduled !== 'function') return 'the worker has no scheduled(event, env, ctx) handler in its default export';
    const waitUntil: Promise<unknown>[] = [];
    const ctx = Object.freeze({
      waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))),
      noRetry: () => {},
      exports: ctxExports(),
    });
    const event = Object.freeze({ type: 'scheduled', cron, scheduledTime });
    try {
      if (typeof h === 'function') await (new h(ctx, requests.env) as Handler).scheduled!(event, requests.env, ctx);
      else await h!.scheduled!(event, requests.env, ctx);
    } catch (e) {
      return errorText(e);
    }
    await allSettled(waitUntil);
    return '';
  }

  const objects = makeObjectHost({
    exported: () => exported,
    env: () => requests.env,
    exports: ctxExports,
    callCap: envDeps.callCap,
    callAsync: callCapAsync,
    logError,
    maxBody: options.maxBody,
  });

  /**
   * A Workers RPC session on pipe `pipe` (the host opened it for a caller) to Durable Object `key`,
   * hosted here: a stub's RPC methods. The session is not an invocation: each call on it is (the host
   * hears of it, for its watchdogs), as each event of an object is in Workers; so the session outlives
   * this isolate's request scope, and a caller in this same isolate does not keep that scope open
   * through it. Answers '' or why not.
   */
  function objectServe(pipe: number, key: string, className: string, id: string, name: string | null, storageHandle: string, now: number): string {
    setClock(now);
    let calls = 0;
    const enter = () => {
      const call = ++calls;
      host.objectBusy(pipe, call, true);
      requests.active++;
      resetSubrequests();
      return () => host.objectBusy(pipe, call, false);
    };
    try {
      pipes.serve(
        pipe,
        objects.target(key, className, id, name, storageHandle, enter, (reason) => pipes.end(pipe, reason)),
        false,
      );
      return '';
    } catch (e) {
      return errorText(e);
    }
  }

  /** A call on a Durable Object this isolate hosts: entered like a request (clock, subrequest count). */
  async function objectCall(
    key: string,
    className: string,
    id: string,
    name: string | null,
    storageHandle: string,
    kind: string,
    method: string,
    payload: string,
    now: number,
  ): Promise<string> {
    requests.active++;
    setClock(now);
    resetSubrequests();
    return objects.call(key, className, id, name, storageHandle, kind, method, payload);
  }

  async function runQueue(queue: string, messages: WireMessage, now: number): Promise<string> {
    requests.active++;
    setClock(now);
    resetSubrequests();
    return runQueueHandler(requests.handler, requests.env, queue, messages, logError);
  }

  /** An event from the client end of a WebSocket (through ingress and the host) for the server end here. */
  function wsEvent(id: number, type: string, data: string | ArrayBuffer | null, code: number, reason: string, now: number): void {
    setClock(now);
    enterRoot();
    try {
      WebSocket.deliver(id, type, data, code, reason);
    } catch (e) {
      logError('uncaught exception in a WebSocket event listener:', e);
    }
  }

  /**
   * Workers RPC: a session on pipe `pipe` (the host opened it for a caller) serving entrypoint
   * `entrypoint`, a new instance per session as in Workers, with the binding's props in `ctx.props`.
   * It is an invocation of its own (the host enters it like a request) until the pipe ends.
   */
  function rpcServe(pipe: number, entrypoint: string, propsJson: string, now: number): string {
    requests.active++;
    setClock(now);
    resetSubrequests();
    const waitUntil: Promise<unknown>[] = [];
    const ctx = Object.freeze({
      waitUntil: (p: unknown) => void waitUntil.push(PromiseCtor.resolve(p).catch((e) => logError('waitUntil promise rejected:', e))),
      passThroughOnException: () => {},
      props: Object.freeze(JSONparse(propsJson) as unknown),
      exports: ctxExports(),
    });
    try {
      pipes.serve(pipe, entrypointFor(exported, entrypoint, requests.env, ctx));
      served.set(pipe, waitUntil);
      return '';
    } catch (e) {
      return errorText(e);
    }
  }

  /**
   * The session on `pipe` has ended: its waitUntil promises run on, as after a request's response,
   * until they settle (those they add too) or the host ends all requests.
   */
  function rpcDrain(pipe: number): Promise<void> | undefined {
    const waitUntil = served.get(pipe);
    if (!waitUntil) return undefined;
    const settle = async (): Promise<void> => {
      for (let seen = 0; seen < waitUntil.length; ) {
        const batch = waitUntil.slice(seen);
        seen += batch.length;
        await allSettled(batch);
      }
    };
    return PromiseCtor.race([settle(), ended]).finally(() => served.delete(pipe));
  }

  function rpcDeliver(pipe: number, message: string, now: number): void {
    setClock(now);
    pipes.deliver(pipe, message);
  }

  return {
    rpcServe,
    rpcDeliver,
    rpcClosed: (pipe: number, reason: string) => pipes.closed(pipe, reason),
    rpcDrain,
    runBatch,
    drain,
    end,
    ship,
    loaded,
    runWorkflow: (className: string, eventWire: string, stepHandle: string, now: number) => holding(() => runWorkflow(className, eventWire, stepHandle, now)),
    runScheduled: (cron: string, scheduledTime: number, now: number) => holding(() => runScheduled(cron, scheduledTime, now)),
    objectCall: (...args: Parameters<typeof objectCall>) => holding(() => objectCall(...args)),
    objectServe,
    objectDrop: objects.drop,
    runQueue: (queue: string, messages: WireMessage, now: number) => holding(() => runQueue(queue, messages, now)),
    wsEvent,
    configure,
    rehearse,
  };
}
