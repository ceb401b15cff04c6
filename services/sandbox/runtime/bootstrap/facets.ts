/**
 * `ctx.facets` of a Durable Object (docs/durable-objects.md, "Facets"): `get(name, getStartupOptions)`
 * returns a stub at once (fetch + RPC, no id or name: a Fetcher, as in workerd); the startup options are
 * asked for when the facet is not started in this instance, and each call goes to the host on this
 * object's own storage handle (services/sandbox/facets.ts), which runs it on the facet's instance where
 * its class lives. This isolate never holds a facet's storage. `abort(name, reason)` stops the facet
 * (its stubs throw `reason`; its storage stays), `delete(name)` also wipes its storage, `clone(src, dst)`
 * makes `dst`'s storage a copy of `src`'s.
 */
import { loopbackOf } from './entrypoints.ts';
import type { CallAsync } from './workflow-step.ts';
import { DurableObjectId, objectStub } from './durable-objects.ts';
import { FACET_SOCKET } from './do-websockets.ts';

const PromiseCtor = Promise;
const freeze = Object.freeze;
/** workerd's MAX_FACET_NAME_LENGTH (the supervisor checks it again, with the depth). */
const MAX_NAME = 256;

/** A Durable Object class a facet can be made of: the class, and where it lives (a loaded Worker, or this worker). */
interface FacetClass {
  className: string;
  /** The Worker Loader binding that loaded it, and its loaded id once loaded (null: this worker's own export). */
  binding: string | null;
  loadedId: (() => Promise<string>) | null;
}
const classes = new WeakMap<object, FacetClass>();

/** What `workerStub.getDurableObjectClass(name)` returns (worker-loader.ts): opaque to tenant code. */
export function durableObjectClass(c: FacetClass): object {
  const handle = freeze({ toString: () => `[DurableObjectClass ${c.className}]` });
  classes.set(handle, c);
  return handle;
}

function classOf(value: unknown): FacetClass {
  const c = typeof value === 'object' && value !== null ? classes.get(value) : undefined;
  if (c) return c;
  const loop = loopbackOf(value);
  if (loop) {
    if (loop.props !== null) throw new TypeError('a facet class from ctx.exports takes no props');
    return { className: loop.exportName, binding: null, loadedId: null };
  }
  throw new TypeError(
    'FacetStartupOptions.class must be a Durable Object class: env.LOADER.get(...).getDurableObjectClass(name), or ctx.exports.Name of this worker',
  );
}

interface Started {
  cls: FacetClass;
  id: string;
  idName: string | null;
}

interface FacetState {
  start: Promise<Started>;
  aborted: { reason: unknown } | null;
}

function checkName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError('a facet name is a string');
  if (name.length === 0 || name.length > MAX_NAME) throw new RangeError(`a facet name is 1 to ${MAX_NAME} characters`);
  return name;
}

/** `ctx.facets` of the object whose storage handle is `handle` and whose id is `parentId`. */
export function makeFacets(callAsync: CallAsync, handle: string, parentId: DurableObjectId): object {
  const state = new Map<string, FacetState>();
  /** A delete or clone in progress: the facet's next calls wait for it (its storage is being wiped or copied). */
  const settling = new Map<string, Promise<unknown>>();

  function startup(getStartupOptions: () => unknown): Promise<Started> {
    return PromiseCtor.resolve()
      .then(getStartupOptions)
      .then((o) => {
        if (o === null || typeof o !== 'object') throw new TypeError('getStartupOptions() must return { class, id? }');
        const opts = o as { class?: unknown; id?: unknown };
        const cls = classOf(opts.class);
        // The facet's ctx.id: the parent's by default; a DurableObjectId as given; a string as the id's name.
        if (opts.id === undefined) return { cls, id: parentId.toString(), idName: parentId.name ?? null };
        if (opts.id instanceof DurableObjectId) return { cls, id: opts.id.toString(), idName: opts.id.name ?? null };
        if (typeof opts.id === 'string') return { cls, id: parentId.toString(), idName: opts.id };
        throw new TypeError('FacetStartupOptions.id must be a DurableObjectId or a string');
      });
  }

  /** The facet's next calls wait for `work` (a wipe or a copy of its storage). */
  function settle(name: string, work: Promise<unknown>): void {
    const done = work.catch(() => {});
    settling.set(name, done);
    void done.then(() => {
      if (settling.get(name) === done) settling.delete(name);
    });
  }

  function stop(name: string, reason: unknown): void {
    const s = state.get(name);
    state.delete(name);
    if (s) s.aborted = { reason: reason instanceof Error ? reason : new Error(String(reason ?? 'the facet was aborted')) };
  }

  return freeze({
    get(nameArg: unknown, getStartupOptions: unknown): object {
      const name = checkName(nameArg);
      if (typeof getStartupOptions !== 'function') throw new TypeError('facets.get(name, getStartupOptions): getStartupOptions must be a function');
      let s = state.get(name);
      if (!s) {
        const made: FacetState = { start: startup(getStartupOptions as () => unknown), aborted: null };
        // A failed startup is asked for again by the next get().
        made.start.catch(() => {
          if (state.get(name) === made) state.delete(name);
        });
        state.set(name, (s = made));
      }
      const facet = s;
      return objectStub(
        async (kind, method, payload) => {
          await settling.get(name);
          if (facet.aborted) throw facet.aborted.reason;
          const { cls, id, idName } = await facet.start;
          const loadedId = cls.loadedId ? await cls.loadedId() : null;
          // Aborted while it started: checked again after the awaits.
          const aborted = facet.aborted as FacetState['aborted'];
          if (aborted) throw aborted.reason;
          return (await callAsync(handle, 'facet', ['call', name, cls.className, cls.binding, loadedId, id, idName, kind, method, payload])) as string;
        },
        {},
        FACET_SOCKET,
      );
    },
    abort(nameArg: unknown, reason?: unknown): void {
      const name = checkName(nameArg);
      stop(name, reason);
      void callAsync(handle, 'facet', ['abort', name]).catch(() => {});
    },
    delete(nameArg: unknown): void {
      const name = checkName(nameArg);
      stop(name, new Error('the facet was deleted'));
      settle(name, callAsync(handle, 'facet', ['delete', name]));
    },
    /** workerd's clone (not in Cloudflare's docs yet): `dst` stops, and its storage becomes a copy of `src`'s. */
    clone(srcArg: unknown, dstArg: unknown): void {
      const src = checkName(srcArg);
      const dst = checkName(dstArg);
      stop(dst, new Error('Facet was cloned-over'));
      settle(dst, callAsync(handle, 'facet', ['clone', src, dst]));
    },
  });
}
