/**
 * Where each Durable Object lives: exactly one sandbox process of its worker's cordon at a time,
 * under a lease. Every sandbox process offers an ObjectHost; the supervisor checks each host every
 * third of `leaseMs` (`ping`, answered with the objects it still runs: one evicted when idle loses its
 * lease). A host
 * whose answer is older than `leaseMs` — dead, disconnected, paused, wedged — has lost its leases:
 * the next call on one of its objects grants it to another live host of the cordon, with a higher
 * fencing token. The storage capability a lease comes with checks its token on every call, so the
 * old holder, should it wake, can no longer touch the object's data (docs/durable-objects.md).
 */
import type { RpcStub } from 'capnweb';
import type { Logger } from '../../../lib/log.ts';
import { CordonError } from '../../../lib/errors.ts';
import type { ObjectHost } from '../../../schemas/durable-objects.ts';

interface Host {
  readonly cordon: string;
  readonly stub: RpcStub<ObjectHost>;
  /** When the last ping that was answered was sent. */
  answeredAt: number;
  pinging: boolean;
  gone: boolean;
  readonly held: Set<string>;
}

export interface Lease<S> {
  readonly key: string;
  readonly host: Host;
  readonly fence: number;
  readonly storage: S;
  readonly grantedAt: number;
  /** True until the first call under this lease has been sent (the caller records what it learns then, once). */
  fresh: boolean;
}

export interface PlacementDeps<S> {
  leaseMs: number;
  /** The object's next fencing token (durably recorded) and whether it was new. */
  nextFence(key: string): { fence: number; created: boolean };
  /** The fenced storage capability a new lease comes with. */
  storageFor(key: string, fence: number): S;
  /** A new object was created (the first grant of its id). */
  created?(key: string): void;
  /** The lease of `key` ended (moved, evicted, released, its host gone; `why` says which): what was handed out under it goes too. */
  ended?(key: string, fence: number, why: string): void;
  log: Logger;
}

export class Placement<S = unknown> {
  readonly #hosts = new Set<Host>();
  readonly #leases = new Map<string, Lease<S>>();
  /** Grants in progress, so concurrent first calls on one object wait for one grant. */
  readonly #granting = new Map<string, Promise<Lease<S>>>();
  readonly #deps: PlacementDeps<S>;
  readonly #timer: NodeJS.Timeout;
  #turn = 0;

  constructor(deps: PlacementDeps<S>) {
    this.#deps = deps;
    this.#timer = setInterval(() => this.#pingAll(), Math.max(50, Math.floor(deps.leaseMs / 3))).unref();
  }

  /** A sandbox process of `cordon` offers to host objects. */
  addHost(cordon: string, stub: RpcStub<ObjectHost>): void {
    const host: Host = { cordon, stub, answeredAt: Date.now(), pinging: false, gone: false, held: new Set() };
    this.#hosts.add(host);
    stub.onRpcBroken(() => this.#removeHost(host));
  }

  #removeHost(host: Host): void {
    if (host.gone) return;
    host.gone = true;
    this.#hosts.delete(host);
    for (const key of host.held) this.#end(key, 'its sandbox process went away');
    host.stub[Symbol.dispose]();
  }

  #live(host: Host): boolean {
    return !host.gone && Date.now() - host.answeredAt <= this.#deps.leaseMs;
  }

  /** Whether `fence` is the current lease of `key` and its holder still holds it: a storage call's check. */
  holds(key: string, fence: number): boolean {
    const lease = this.#leases.get(key);
    return lease !== undefined && lease.fence === fence && this.#live(lease.host);
  }

  /** The fencing token of `key`'s current lease, if it has one. */
  fence(key: string): number | undefined {
    return this.#leases.get(key)?.fence;
  }

  /** The lease of `key` on a live host of `cordon`: the current one, or a new one (a higher fence). */
  lease(key: string, cordon: string): Promise<Lease<S>> {
    const current = this.#leases.get(key);
    if (current && current.host.cordon === cordon && this.#live(current.host)) return Promise.resolve(current);
    let p = this.#granting.get(key);
    if (!p) {
      p = this.#grant(key, cordon).finally(() => this.#granting.delete(key));
      this.#granting.set(key, p);
    }
    return p;
  }

  async #grant(key: string, cordon: string): Promise<Lease<S>> {
    const old = this.#leases.get(key);
    if (old)
      this.#end(key, old.host.cordon === cordon ? 'it moved to another sandbox process: its holder stopped answering' : `it moved to cordon ${cordon}`, true);
    const candidates = [...this.#hosts].filter((h) => h.cordon === cordon && this.#live(h));
    if (candidates.length === 0)
      throw new CordonError(`no sandbox process of cordon ${cordon} is available to run this Durable Object; try again shortly`, { status: 503 });
    // The least loaded, ties in turn.
    const least = Math.min(...candidates.map((h) => h.held.size));
    const fewest = candidates.filter((h) => h.held.size === least);
    const host = fewest[this.#turn++ % fewest.length]!;
    const { fence, created } = this.#deps.nextFence(key);
    if (created) this.#deps.created?.(key);
    const lease: Lease<S> = { key, host, fence, storage: this.#deps.storageFor(key, fence), grantedAt: Date.now(), fresh: true };
    this.#leases.set(key, lease);
    host.held.add(key);
    return lease;
  }

  /** The lease of `key` ends (deleted, evicted, moved; `why`); `moved`: the old holder is told to drop it, if it can hear. */
  #end(key: string, why: string, moved = false): void {
    const lease = this.#leases.get(key);
    if (!lease) return;
    this.#leases.delete(key);
    lease.host.held.delete(key);
    this.#deps.ended?.(key, lease.fence, why);
    if (moved && !lease.host.gone) void lease.host.stub.drop(key).catch(() => {});
  }

  /**
   * End `key`'s lease now (the object is being deleted): its holder drops the instance, and every other
   * host of `cordon` hears it too — one that evicted the object while idle may still keep what its facets'
   * hibernated WebSockets would have needed (a loaded Worker's code). `cordon`: the worker's, if it is still deployed.
   */
  release(key: string, cordon: string | undefined): void {
    const holder = this.#leases.get(key)?.host;
    this.#end(key, 'it was deleted', true);
    for (const host of this.#hosts) if (host !== holder && host.cordon === cordon && !host.gone) void host.stub.drop(key).catch(() => {});
  }

  /** The host holding `key` now, if its lease is live (diagnostics, `objects list`). */
  holder(key: string): string | undefined {
    const lease = this.#leases.get(key);
    return lease && this.#live(lease.host) ? lease.host.cordon : undefined;
  }

  #pingAll(): void {
    for (const host of this.#hosts) {
      if (host.pinging) continue;
      host.pinging = true;
      const sent = Date.now();
      const asked = [...host.held];
      host.stub
        .ping()
        .then((still) => {
          host.answeredAt = Math.max(host.answeredAt, sent);
          // What the host no longer runs (evicted when idle) has no lease any more; a lease granted
          // since the ping left is not in `asked` and stays.
          const running = new Set(still as string[]);
          for (const key of asked) {
            const lease = this.#leases.get(key);
            if (!running.has(key) && lease?.host === host && lease.grantedAt < sent) this.#end(key, 'it was evicted while idle');
          }
        })
        .catch((e: Error) => this.#deps.log.debug('object host ping failed', { cordon: host.cordon, error: e.message }))
        .finally(() => (host.pinging = false));
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    for (const host of [...this.#hosts]) this.#removeHost(host);
  }
}
