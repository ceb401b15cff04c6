/** The routing table the supervisor pushes to ingress: whole when ingress subscribes, then change by change. */
import type { WorkerTarget } from './worker.ts';

export interface Route {
  /** Cloudflare-style pattern, host normalised: `host/path`, `*` wildcards, e.g. `*\/hello*` or `api.example.com/*`. */
  pattern: string;
  /** The tenant of the worker it serves. */
  tenant: string;
  cordon: string;
  target: WorkerTarget;
  /**
   * Its place among equally specific routes (the lower wins), and its identity in patches: the route's
   * deploy order and pattern; a worker's default route after every declared one, by worker id.
   */
  order: [number, string];
}

/** A host pattern the operator assigned to a tenant: requests for the hosts it matches reach only that tenant's routes. */
export interface HostAssignment {
  host: string;
  tenant: string;
}

export interface RoutingTable {
  /** Counts the supervisor's publications; the next patch applies to this version. */
  version: number;
  /** In any order: each says its own. */
  routes: Route[];
  hosts: HostAssignment[];
}

/** What changed from version `from` to `to`: routes added or changed, routes gone (by order), and the host assignments if they changed. */
export interface RoutingPatch {
  from: number;
  to: number;
  set: Route[];
  removed: Route['order'][];
  hosts?: HostAssignment[];
}

/** Ingress exports this to the supervisor so route changes arrive live. */
export interface RouteListener {
  patch(patch: RoutingPatch): void;
}
