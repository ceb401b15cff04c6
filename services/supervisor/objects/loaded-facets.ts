/**
 * Facets whose class is a Dynamic Worker's that runs in a loaded cordon (docs/durable-objects.md,
 * "Facets"; docs/dynamic-workers.md, "A stricter cordon for loaded Workers"). The facet's instance lives
 * in the loaded cordon's process, beside its Worker; its database stays here. The parent object's holder
 * asks for each call through its own fenced storage (ObjectStorageApi.facetIn), and the supervisor hands
 * that process the facet's storage capability — that facet's database (and its own facets') only, fenced
 * by the parent's lease — behind a membrane of its own. The membrane is revoked, and the instance there
 * told to go, when the parent's lease ends or moves, when the facet is aborted, deleted or cloned over,
 * or when another class, Worker or process takes the name: a process that kept the capability can no
 * longer read or write through it.
 */
import type { RpcStub } from 'capnweb';
import { CordonError } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/log.ts';
import { Membrane } from '../../../lib/rpc/membrane.ts';
import type { FacetIdentity, LoadedFacetPlace, ObjectCallKind, ObjectStorageApi } from '../../../schemas/durable-objects.ts';
import { MAX_LOADED_FACETS, type LoadedWorkerHost } from '../../../schemas/loaded-cordon.ts';

/** The loaded cordon's process that holds a parent's Worker, and the parent ref it is held under there. */
export interface LoadedHost {
  runner: RpcStub<LoadedWorkerHost>;
  parentRef: string;
}

interface Handed {
  fence: number;
  host: LoadedHost;
  place: LoadedFacetPlace;
  className: string;
  /** The instance's key in the loaded process: the facet's and a number of its own, so a new hand-out is a new instance. */
  key: string;
  membrane: Membrane;
  /** The facet's storage behind the membrane, once opened (concurrent first calls share one hand-out). */
  storage: Promise<ObjectStorageApi>;
}

export class LoadedFacets {
  /** What was handed out, by object key, then by facet suffix (objects/facets.ts). */
  readonly #handed = new Map<string, Map<string, Handed>>();
  readonly #log: Logger;
  #grants = 0;

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * One call on facet `suffix` of object `objectKey` under lease `fence`, in the process `host` names;
   * `open` makes the facet's storage (once per hand-out).
   */
  async call(
    objectKey: string,
    fence: number,
    suffix: string,
    host: LoadedHost,
    place: LoadedFacetPlace,
    facet: FacetIdentity,
    call: { kind: ObjectCallKind; method: string; payload: string },
    open: () => Promise<ObjectStorageApi>,
  ): Promise<string> {
    let handed = this.#handed.get(objectKey)?.get(suffix);
    const same =
      handed !== undefined &&
      !handed.membrane.revoked &&
      handed.fence === fence &&
      handed.host.runner === host.runner &&
      handed.host.parentRef === host.parentRef &&
      handed.place.binding === place.binding &&
      handed.place.token === place.token &&
      handed.className === facet.className;
    if (!same) {
      // Another class, Worker, version or process for this name: the old instance goes, with its storage.
      if (handed) this.#end(objectKey, suffix, handed, 'the facet was started again');
      const membrane = new Membrane();
      const made: Handed = {
        fence,
        host,
        place,
        className: facet.className,
        key: `${objectKey}${suffix}#${++this.#grants}`,
        membrane,
        storage: open().then((s) => membrane.wrap(s)),
      };
      let facets = this.#handed.get(objectKey);
      if (!facets) this.#handed.set(objectKey, (facets = new Map()));
      if (facets.size >= MAX_LOADED_FACETS)
        throw new CordonError(`an object may have ${MAX_LOADED_FACETS} facets of loaded classes started at once: abort some first`, { status: 429 });
      facets.set(suffix, (handed = made));
      // Not opened (the lease moved meanwhile): the next call tries afresh.
      made.storage.catch(() => this.#forget(objectKey, suffix, made));
    }
    const h = handed!;
    const storage = await h.storage;
    try {
      return await host.runner.childObjectCall(host.parentRef, place.binding, place.token, { ...facet, key: h.key }, storage, call);
    } catch (e) {
      // What the other process answered is the caller's to read (a facet that threw says why).
      throw new CordonError(String((e as Error)?.message ?? e).slice(0, 1000), { status: 502 });
    }
  }

  /** The facets of `objectKey` under `under` ('': all of them, e.g. its lease ended), their subtrees included, go. */
  drop(objectKey: string, under: string, reason: string): void {
    const facets = this.#handed.get(objectKey);
    if (!facets) return;
    for (const [suffix, handed] of [...facets]) if (suffix.startsWith(under)) this.#end(objectKey, suffix, handed, reason);
  }

  /** How many facets are handed out now (diagnostics, tests). */
  get size(): number {
    let n = 0;
    for (const facets of this.#handed.values()) n += facets.size;
    return n;
  }

  #forget(objectKey: string, suffix: string, handed: Handed): void {
    const facets = this.#handed.get(objectKey);
    if (facets?.get(suffix) === handed) facets.delete(suffix);
    if (facets?.size === 0) this.#handed.delete(objectKey);
  }

  #end(objectKey: string, suffix: string, handed: Handed, reason: string): void {
    this.#forget(objectKey, suffix, handed);
    handed.membrane.revoke(reason);
    const { runner, parentRef } = handed.host;
    void Promise.resolve(runner.childObjectDrop(parentRef, handed.place.binding, handed.place.token, handed.key)).catch((e: Error) =>
      this.#log.debug('a loaded facet’s drop did not reach its process', { error: e.message }),
    );
  }
}
