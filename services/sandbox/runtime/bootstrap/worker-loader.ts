/**
 * `env.LOADER`, a Worker Loader binding (Dynamic Workers), inside the parent's isolate: `get(id,
 * getCode)` and `load(code)` return a stub at once; the Worker loads on the first call through it.
 * The `WorkerCode` is checked here, with workerd's messages where workerd has one, and sent to the
 * host (services/sandbox/runtime/worker-loader.ts), which checks it again and runs it in an isolate
 * of its own. `getCode` is called only when the host does not hold the Worker for that id.
 */
import { isRemoteStub, loopbackOf, markRemote, propsJson } from './entrypoints.ts';
import { MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADERS, MAX_METHOD, MAX_URL } from '../../../../schemas/http-limits.ts';
import { durableObjectClass } from './facets.ts';
import { codec } from './value-codec.ts';
import { Body, Headers, Request, Response } from './fetch-api.ts';
import { hostResponse, type HostReply, type StreamedBodies } from './fetch.ts';
import { streams } from './streams.ts';
import { requests } from './request-state.ts';
import type { Pipes } from './workers-rpc.ts';
import type { CallAsync } from './workflow-step.ts';
import { DOMException } from './encoding.ts';
import { LOADER_LIMITS, LOADER_TARGET, type EntrypointRef, type LoaderCode, type LoaderModule } from '../abi.ts';

// Captured before any tenant code runs (it can reach Body through Response's prototype chain).
const holdsBytes = Body.holdsBytes;
const takeBytes = Body.takeBytes;
const isNullBody = Body.isNull;
const rawHeaders = Headers.raw;
/** The errors a loaded Worker's thrown exception is thrown again as in its parent (by name), as Workers RPC does. */
const ERRORS: Readonly<Record<string, new (message: string) => Error>> = Object.freeze({
  __proto__: null,
  Error,
  TypeError,
  RangeError,
  ReferenceError,
  SyntaxError,
  EvalError,
  URIError,
} as unknown as Record<string, new (message: string) => Error>);
/** A request the host takes down the request path (schemas/http.ts WireRequest): else it goes over Workers RPC. */
const plainMethod = (m: string) => {
  if (m.length === 0 || m.length > MAX_METHOD) return false;
  for (let i = 0; i < m.length; i++) if (m.charCodeAt(i) < 65 || m.charCodeAt(i) > 90) return false;
  return true;
};
const plainUrl = (u: string) => u.length <= MAX_URL && (u.startsWith('http://') || u.startsWith('https://'));
/**
 * Headers as WireRequest takes them, beyond what Headers already checked (names are tokens, values hold no
 * NUL, CR, LF or character above U+00FF): names of at most MAX_HEADER_NAME, values of at most
 * MAX_HEADER_BYTES with tab and no other control character.
 */
const plainHeaders = (headers: [string, string][]) => {
  if (headers.length > MAX_HEADERS) return false;
  for (const [n, v] of headers) {
    if (n.length > MAX_HEADER_NAME || v.length > MAX_HEADER_BYTES) return false;
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
    }
  }
  return true;
};

/** A loaded Worker's answer to a fetch() down the request path (runtime/worker-loader.ts #fetchChild). */
type FetchReply = HostReply & { unloaded?: true; rpc?: true; thrown?: [string, string] };

const KINDS = ['js', 'cjs', 'text', 'data', 'json', 'py', 'wasm'] as const;
const TYPE_OF = { js: 'esm', cjs: 'cjs', text: 'text', data: 'data', json: 'json', wasm: 'wasm' } as const;
const u8 = (v: ArrayBuffer | ArrayBufferView) => (v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
const isBytes = (v: unknown): v is ArrayBuffer | ArrayBufferView => v instanceof ArrayBuffer || ArrayBuffer.isView(v);

function moduleOf(name: string, content: unknown): LoaderModule {
  if (typeof content === 'string') {
    if (/\.(ts|tsx|jsx|mts|cts)$/.test(name))
      throw new TypeError(
        `Module name must end with '.js' or '.py' (or the content must be an object indicating the type explicitly). Got: ${name}. If you're trying to load TypeScript, bundle it first with '@cloudflare/worker-bundler' and pass the generated JavaScript modules.`,
      );
    if (name.endsWith('.py')) throw new TypeError(`Module ${name}: Python Workers are not supported by Cordon`);
    if (!name.endsWith('.js'))
      throw new TypeError(`Module name must end with '.js' or '.py' (or the content must be an object indicating the type explicitly). Got: ${name}`);
    return { name, type: 'esm', content };
  }
  const WasmModule = (globalThis as { WebAssembly?: { Module: abstract new (...a: never[]) => unknown } }).WebAssembly?.Module;
  if (WasmModule && content instanceof WasmModule)
    throw new TypeError(`Module ${name}: a compiled WebAssembly.Module cannot cross into another isolate in Cordon; pass its bytes as { wasm: bytes }`);
  if (content === null || typeof content !== 'object') throw new TypeError(`Module ${name} must be a string or an object such as { js: "..." }`);
  const fields = Object.keys(content);
  if (fields.length !== 1 || !(KINDS as readonly string[]).includes(fields[0]!))
    throw new TypeError(
      `Each module must contain exactly one of 'js', 'cjs', 'text', 'data', 'json', 'py', or 'wasm'. Module '${name}' contained ${fields.length} properties.`,
    );
  const kind = fields[0] as (typeof KINDS)[number];
  const value = (content as Record<string, unknown>)[kind];
  if (kind === 'py') throw new TypeError(`Module ${name}: Python Workers are not supported by Cordon`);
  if (kind === 'json') return { name, type: 'json', content: JSON.stringify(value ?? null) };
  if (kind === 'data' || kind === 'wasm') {
    if (!isBytes(value)) throw new TypeError(`Module ${name}: '${kind}' must be an ArrayBuffer or a typed array`);
    return { name, type: kind, content: u8(value).slice() };
  }
  if (typeof value !== 'string') throw new TypeError(`Module ${name}: '${kind}' must be a string`);
  return { name, type: TYPE_OF[kind], content: value };
}

function entrypointRef(value: unknown, where: string): EntrypointRef {
  const loop = loopbackOf(value);
  if (loop) return loop;
  if (isRemoteStub(value))
    throw new DOMException(
      'Entrypoints to dynamically-loaded workers cannot be transferred to other Workers, because the system does not know how to reload this Worker from scratch. Instead, have the parent Worker expose an entrypoint which constructs the dynamic worker and forwards to it.',
      'DataCloneError',
    );
  throw new TypeError(`${where} must be an entrypoint stub from ctx.exports (such as ctx.exports.Gateway({ props }))`);
}

/** WorkerCode as the host takes it: checked, modules typed, env split into plain values and stubs. */
export function encodeCode(code: unknown): LoaderCode {
  if (code === null || typeof code !== 'object') throw new TypeError('getCode() must return a WorkerCode object: { compatibilityDate, mainModule, modules }');
  const c = code as Record<string, unknown>;
  if (typeof c.compatibilityDate !== 'string') throw new TypeError('WorkerCode.compatibilityDate is required: a date such as "2026-01-01"');
  if (typeof c.mainModule !== 'string') throw new TypeError('WorkerCode.mainModule is required: the name of one of the modules');
  if (Array.isArray(c.compatibilityFlags) && c.compatibilityFlags.length)
    throw new TypeError('WorkerCode.compatibilityFlags: compatibility flags (nodejs_compat among them) are not implemented in Cordon; remove them');
  if (c.allowExperimental === true) throw new TypeError('WorkerCode.allowExperimental: experimental features cannot be enabled in Cordon');
  for (const field of ['tails', 'streamingTails'] as const)
    if (Array.isArray(c[field]) && (c[field] as unknown[]).length) throw new TypeError(`WorkerCode.${field}: Tail Workers are not implemented in Cordon`);
  if (c.modules === null || typeof c.modules !== 'object') throw new TypeError('WorkerCode.modules must be an object of module name → content');
  const modules = Object.entries(c.modules).map(([name, content]) => moduleOf(name, content));
  if (modules.length === 0) throw new TypeError('Dynamic Worker code must contain at least one module.');
  const size = modules.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.length : m.content.byteLength), 0);
  if (size > LOADER_LIMITS.codeBytes)
    throw new Error(`Dynamic Worker code size (${size} bytes) exceeds the maximum allowed size of ${LOADER_LIMITS.codeBytes} bytes.`);
  if (!modules.some((m) => m.name === c.mainModule)) throw new TypeError(`WorkerCode.mainModule ${JSON.stringify(c.mainModule)} is not one of the modules`);

  const vars: Record<string, unknown> = {};
  const stubs: Record<string, EntrypointRef> = {};
  if (c.env !== undefined && c.env !== null) {
    if (typeof c.env !== 'object') throw new TypeError('WorkerCode.env must be an object');
    for (const [key, value] of Object.entries(c.env)) {
      if (loopbackOf(value) || isRemoteStub(value)) stubs[key] = entrypointRef(value, `env.${key}`);
      else {
        let text: string | null;
        try {
          // One of this worker's own bindings (a service binding's stub would otherwise clone as `{}`).
          if (typeof value === 'object' && value !== null && Object.values(requests.env).includes(value)) throw new Error('a binding');
          text = codec.encode(value);
        } catch {
          // A DataCloneError, as in workerd, saying what to do instead.
          throw new DOMException(
            `env.${key} cannot be passed to a Dynamic Worker (it could not be cloned): pass plain data, or an entrypoint of this worker (ctx.exports.Name({ props })) that wraps the binding`,
            'DataCloneError',
          );
        }
        // vars are JSON in the loaded worker: bytes, Dates, Maps would change shape on the way.
        if (text !== null && text !== JSON.stringify(value))
          throw new TypeError(`env.${key}: Cordon passes JSON values (and entrypoint stubs) in a Dynamic Worker's env; convert it first`);
        if (text !== null) vars[key] = JSON.parse(text);
      }
    }
  }
  const envSize = JSON.stringify(vars).length + JSON.stringify(stubs).length;
  if (envSize > LOADER_LIMITS.envBytes)
    throw new Error(`Dynamic Worker env size (${envSize} bytes) exceeds the maximum allowed size of ${LOADER_LIMITS.envBytes} bytes.`);

  const globalOutbound =
    c.globalOutbound === undefined ? 'inherit' : c.globalOutbound === null ? null : entrypointRef(c.globalOutbound, 'WorkerCode.globalOutbound');
  const limits: LoaderCode['limits'] = {};
  if (c.limits !== undefined) {
    const l = c.limits as Record<string, unknown> | null;
    if (l === null || typeof l !== 'object') throw new TypeError('WorkerCode.limits must be an object: { cpuMs?, subRequests? }');
    for (const k of ['cpuMs', 'subRequests', 'memoryMb'] as const) {
      if (l[k] === undefined) continue;
      if (typeof l[k] !== 'number' || !Number.isInteger(l[k]) || (l[k] as number) < 1) throw new TypeError(`WorkerCode.limits.${k} must be a positive integer`);
      limits[k] = l[k] as number;
    }
  }
  return { compatibilityDate: c.compatibilityDate, mainModule: c.mainModule, modules, vars, stubs, globalOutbound, limits };
}

/**
 * env.<name> for a `worker_loaders` binding. fetch() through an entrypoint stub, with no body or one held
 * as bytes, is one call to the host, which runs it in the loaded Worker as a routed request (its Response
 * comes back as a fetch()'s: runtime/worker-loader.ts #fetchChild); any other call, and a fetch() whose
 * body streams, is Workers RPC (workers-rpc.ts): a session to the loaded Worker, opened per call. Either
 * way the host holds the Worker first (else it is loaded: getCode is called then, and only then).
 */
export function loaderBinding(call: CallAsync, pipes: Pipes, handle: string, subrequest: () => void, bodies: StreamedBodies, maxBody: number): object {
  // The host serves this binding's Workers in another process (a loaded cordon): fetch() goes over Workers RPC there.
  let viaRpc = false;
  function workerStub(id: string | null, getCode: () => unknown): object {
    // The host's name for it: `id:<id>` for get(id); one the host makes (`anon:…`) for load() and get(null).
    let loadedId = id === null ? null : `id:${id}`;
    // One load at a time per stub: concurrent first calls share it.
    let loading: Promise<void> | undefined;
    const load = () =>
      (loading ??= (async () => {
        try {
          const code = encodeCode(await getCode());
          loadedId = (await call(handle, 'load', [id, code])) as string;
        } finally {
          loading = undefined;
        }
      })());
    const ensure = async () => {
      if (loadedId === null || !(await call(handle, 'held', [loadedId]))) await load();
    };

    return Object.freeze({
      getEntrypoint(name?: string | null, options?: { props?: unknown; limits?: unknown }) {
        if (name !== undefined && name !== null && typeof name !== 'string') throw new TypeError('getEntrypoint(name) takes an export name');
        const entry = name === undefined || name === null ? 'default' : name;
        const props = propsJson(options?.props);
        /**
         * One session per call, released when the call has answered: the loaded Worker is busy while a
         * call (or what its answer still streams or holds by reference) needs it, and no longer, so a
         * parent that is never idle does not keep every Worker it ever called busy.
         */
        const open = async (count = true) => {
          if (requests.active === 0) throw new Error('a Dynamic Worker can only be called while a request is being handled (not in global scope)');
          if (count) subrequest();
          await ensure();
          return pipes.connect(LOADER_TARGET + JSON.stringify([handle, loadedId, entry, props])) as unknown as Record<
            string | symbol,
            (...a: unknown[]) => unknown
          >;
        };
        const rpcCall = async (method: string, args: unknown[]): Promise<unknown> => {
          const stub = await open();
          try {
            return await stub[method]!(...args);
          } finally {
            stub[Symbol.dispose]!();
          }
        };
        /** fetch() down the request path; undefined when it must go over Workers RPC (the request untouched). */
        const plainFetch = async (request: Request): Promise<Response | undefined> => {
          if (viaRpc || !plainMethod(request.method) || !plainUrl(request.url)) return undefined;
          if (requests.active === 0) throw new Error('a Dynamic Worker can only be called while a request is being handled (not in global scope)');
          const headers = rawHeaders(request.headers);
          if (!plainHeaders(headers)) return undefined;
          const none = isNullBody(request);
          const bytes = none ? null : takeBytes(request, maxBody);
          if (!none && bytes === null) return undefined;
          subrequest();
          const wire = { method: request.method, url: request.url, headers, body: bytes };
          const fetchOnce = async () =>
            loadedId === null ? ({ unloaded: true } as FetchReply) : ((await call(handle, 'fetch', [loadedId, entry, props, wire])) as FetchReply);
          let reply = await fetchOnce();
          if (reply.unloaded) {
            await load();
            reply = await fetchOnce();
            if (reply.unloaded) throw new Error('the Dynamic Worker was unloaded; call it again to load it afresh');
          }
          if (reply.rpc) {
            viaRpc = true;
            return rpcFetch(new Request(wire.url, { method: wire.method, headers: wire.headers, body: bytes }), false);
          }
          if (reply.thrown) throw new (ERRORS[reply.thrown[0]] ?? Error)(reply.thrown[1]);
          return hostResponse(reply, request.method, bodies);
        };
        const fetch = async (input: unknown, init?: unknown) => {
          const request = new Request(input as string, init as never);
          return (await plainFetch(request)) ?? rpcFetch(request, true);
        };
        // A response body streams over the session: it is released once the body has been read (or cancelled).
        const rpcFetch = async (request: Request, count: boolean) => {
          const stub = await open(count);
          const release = () => stub[Symbol.dispose]!();
          let response: Response;
          try {
            response = (await stub.fetch!(request)) as Response;
          } catch (e) {
            release();
            throw e;
          }
          // No body, or its bytes came in the answer itself (bootstrap-bundle.ts RPC_INLINE_BODY): the session is done.
          if (holdsBytes(response) || !response.body) {
            release();
            return response;
          }
          const reader = response.body.getReader();
          const body = new (streams().ReadableStream)<Uint8Array>({
            async pull(controller) {
              const { done, value } = await reader.read();
              if (!done) return controller.enqueue(value);
              controller.close();
              release();
            },
            cancel(reason) {
              release();
              return reader.cancel(reason);
            },
          });
          return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
        };
        return markRemote(
          new Proxy(Object.freeze({}), {
            get(_t, key) {
              if (key === 'fetch') return fetch;
              // Not a thenable (awaiting a stub must not make a call); symbols are no method.
              if (typeof key !== 'string' || key === 'then') return undefined;
              return (...args: unknown[]) => rpcCall(key, args);
            },
          }),
        );
      },
      /** A class of the loaded Worker for ctx.facets.get() (facets.ts): loaded (getCode called) when a facet is first called. */
      getDurableObjectClass(name?: string | null) {
        if (name !== undefined && name !== null && typeof name !== 'string') throw new TypeError('getDurableObjectClass(name) takes an export name');
        return durableObjectClass({
          className: name ?? 'default',
          binding: handle,
          loadedId: async () => {
            await ensure();
            return loadedId!;
          },
        });
      },
    });
  }
  return Object.freeze({
    get(id: unknown, getCode: unknown) {
      if (id !== null && typeof id !== 'string') throw new TypeError('get(id, getCode): id must be a string (or null)');
      if (typeof getCode !== 'function') throw new TypeError('get(id, getCode): getCode must be a function returning the WorkerCode');
      if (typeof id === 'string' && (id.length === 0 || id.length > LOADER_LIMITS.idLength))
        throw new TypeError(`get(id, getCode): id must be 1-${LOADER_LIMITS.idLength} characters`);
      return workerStub(id, getCode as () => unknown);
    },
    load(code: unknown) {
      // Checked now, so bad code throws here; sent on the first call. Never cached by id: a Worker of its own.
      encodeCode(code);
      return workerStub(null, () => code);
    },
  });
}
