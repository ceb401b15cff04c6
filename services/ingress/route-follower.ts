/**
 * Ingress's copy of the routing table: loaded whole from the supervisor, then changed by its patches
 * route by route (services/supervisor/route-hub.ts), with the digest drift compares.
 */
import { RpcTarget } from 'capnweb';
import type { Logger } from '../../lib/log.ts';
import { RoutesDigest, routeText } from '../../lib/drift.ts';
import { compileRoute, normalizeHostPattern, routeKey, RouteTable, type HostOwner } from '../../lib/routes.ts';
import type { HostAssignment, Route, RouteListener, RoutingPatch, RoutingTable } from '../../schemas/routes.ts';

/** Patches kept while the table they follow is on its way; a supervisor publishes at most a few a second. */
const MAX_EARLY = 64;

export class RouteFollower {
  readonly table = new RouteTable<Route>();
  #digest = new RoutesDigest();
  /** The supervisor's version this copy is at; -1: none yet, or asked for the whole table again. */
  #version = -1;
  /**
   * Patches that came before the table they follow (a session's messages may be handled before the
   * code awaiting the table runs): applied after it. Bounded: past it, the table is loaded again.
   */
  #early: RoutingPatch[] = [];
  readonly #log: Logger;
  /** Asks the supervisor for the whole table (undefined: no supervisor now; the next session loads it). */
  readonly #refetch: () => Promise<RoutingTable> | undefined;

  constructor(log: Logger, refetch: () => Promise<RoutingTable> | undefined) {
    this.#log = log;
    this.#refetch = refetch;
  }

  /** The capability ingress hands the supervisor: its patches come here. */
  listener(): RouteListener {
    const follower = this;
    return new (class extends RpcTarget implements RouteListener {
      patch(patch: RoutingPatch): void {
        follower.patch(patch);
      }
    })();
  }

  get digest(): string {
    return this.#digest.value();
  }

  load(table: RoutingTable): void {
    this.#digest = new RoutesDigest();
    const routes: [string, ReturnType<typeof compileRoute<Route>>, Route['order']][] = [];
    for (const r of table.routes) {
      const compiled = this.#compile(r);
      if (!compiled) continue;
      routes.push([routeKey(r.order), compiled, r.order]);
      this.#digest.toggle(routeText(r));
    }
    this.table.reset(routes, this.#owners(table.hosts));
    this.#digest.setHosts(table.hosts);
    this.#version = table.version;
    this.#log.info('routes loaded', { count: this.table.size, hosts: table.hosts.length, version: table.version });
    const early = this.#early;
    this.#early = [];
    for (const p of early) if (p.to > this.#version) this.patch(p);
  }

  patch(patch: RoutingPatch): void {
    if (this.#version === -1) {
      if (this.#early.length < MAX_EARLY) this.#early.push(patch);
      return;
    }
    if (patch.from !== this.#version) {
      // Patches arrive in order on one session: one was lost.
      this.#reload(`a patch from version ${patch.from} while at ${this.#version}`);
      return;
    }
    for (const order of patch.removed) this.#delete(routeKey(order));
    for (const r of patch.set) {
      const key = routeKey(r.order);
      this.#delete(key);
      const compiled = this.#compile(r);
      if (!compiled) continue;
      this.table.set(key, compiled, r.order);
      this.#digest.toggle(routeText(r));
    }
    if (patch.hosts) {
      this.table.setOwners(this.#owners(patch.hosts));
      this.#digest.setHosts(patch.hosts);
    }
    this.#version = patch.to;
  }

  #delete(key: string): void {
    const old = this.table.get(key);
    if (old && this.table.delete(key)) this.#digest.toggle(routeText(old.value));
  }

  #reload(why: string): void {
    this.#log.warn('route update out of order: loading the whole table again', { why });
    this.#version = -1;
    this.#refetch()?.then(
      (table) => this.load(table),
      (e: Error) => this.#log.warn('could not load the routes again; the next session will', { error: e.message }),
    );
  }

  #compile(r: Route) {
    try {
      return compileRoute(r.pattern, r, r.tenant);
    } catch (e) {
      this.#log.warn('ignoring a bad route from the supervisor', { pattern: r.pattern, error: (e as Error).message });
      return undefined;
    }
  }

  #owners(hosts: HostAssignment[]): HostOwner[] {
    const owners: HostOwner[] = [];
    for (const h of hosts) {
      try {
        owners.push({ host: normalizeHostPattern(h.host), tenant: h.tenant });
      } catch (e) {
        // The supervisor stores only normalised hosts, so this is a version skew: loud, not silent.
        this.#log.warn('ignoring a bad host assignment from the supervisor', { host: h.host, error: (e as Error).message });
      }
    }
    return owners;
  }
}
