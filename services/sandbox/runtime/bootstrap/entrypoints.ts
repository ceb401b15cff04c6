/**
 * `ctx.exports`: a loopback stub per export of this worker, callable as `ctx.exports.Name({ props })`
 * for one that carries props. Used here, it calls the export in this isolate; handed to a Dynamic
 * Worker (in its env, or as its globalOutbound), it names the export and props for the host, which
 * serves them to the loaded Worker over Workers RPC (workers-rpc.ts). Also which stubs are a loaded
 * Worker's: those cannot be handed on.
 */
import { Request } from './fetch-api.ts';
import { structuredClone } from './structured-clone.ts';
import { entrypointFor, type EntrypointContext } from './workers-rpc.ts';
import type { EntrypointRef } from '../abi.ts';

const loopbacks = new WeakMap<object, EntrypointRef>();
/** The export and props a value names, if it is a ctx.exports stub (nothing else is). */
export function loopbackOf(value: unknown): EntrypointRef | undefined {
  return (typeof value === 'object' || typeof value === 'function') && value !== null ? loopbacks.get(value) : undefined;
}

const remoteStubs = new WeakSet<object>();
/** Marks a stub of a loaded Worker's entrypoint (refused as env or globalOutbound of another, as workerd refuses it). */
export function markRemote<T extends object>(stub: T): T {
  remoteStubs.add(stub);
  return stub;
}
export function isRemoteStub(value: unknown): boolean {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && remoteStubs.has(value);
}

/** Props as they travel: JSON of a structured clone (a function or a stub in them is a DataCloneError). */
export function propsJson(props: unknown): string | null {
  return props === undefined ? null : JSON.stringify(structuredClone(props));
}

export function makeExports(deps: { exported: () => Record<string, unknown>; env: () => object; logError: (...a: unknown[]) => void }): () => object {
  let madeFor: Record<string, unknown> | undefined;
  let made: object = Object.freeze({});

  function ctxFor(props: string | null): EntrypointContext {
    return Object.freeze({
      props: props === null ? undefined : Object.freeze(JSON.parse(props) as unknown),
      waitUntil: (p: unknown) => void Promise.resolve(p).catch((e) => deps.logError('waitUntil promise rejected:', e)),
      passThroughOnException: () => {},
    });
  }

  function loopbackStub(exportName: string, props: string | null): object {
    // A call here runs the export in this isolate, constructed afresh for the call, as over RPC.
    const target = () => entrypointFor(deps.exported(), exportName, deps.env(), ctxFor(props)) as unknown as Record<string, (...a: unknown[]) => unknown>;
    const specialise = (options?: { props?: unknown }) => loopbackStub(exportName, propsJson(options?.props));
    const stub = new Proxy(specialise, {
      get(_t, key) {
        if (key === 'fetch') return (input: unknown, init?: unknown) => target().fetch!(new Request(input as string, init as never));
        if (typeof key !== 'string' || key === 'then') return undefined;
        return (...args: unknown[]) => target()[key]!(...args);
      },
      set: () => false,
      defineProperty: () => false,
      deleteProperty: () => false,
    });
    loopbacks.set(stub, { exportName, props });
    return stub;
  }

  /** ctx.exports, made once per loaded namespace (not per request). */
  return () => {
    const exported = deps.exported();
    if (madeFor === exported) return made;
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(exported)) out[name] = loopbackStub(name, null);
    madeFor = exported;
    made = Object.freeze(out);
    return made;
  };
}
