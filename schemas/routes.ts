/** The routing table the supervisor pushes to ingress. */
import type { WorkerTarget } from './worker.ts';

export interface Route {
  /** Cloudflare-style pattern, host normalised: `host/path`, `*` wildcards, e.g. `*\/hello*` or `api.example.com/*`. */
  pattern: string;
  /** The tenant of the worker it serves. */
  tenant: string;
  cordon: string;
  target: WorkerTarget;
}

/** A host pattern the operator assigned to a tenant: requests for the hosts it matches reach only that tenant's routes. */
export interface HostAssignment {
  host: string;
  tenant: string;
}

export interface RoutingTable {
  /** Oldest first: of two equally specific routes, the older wins. */
  routes: Route[];
  hosts: HostAssignment[];
}

/** Ingress exports this to the supervisor so route changes arrive live. */
export interface RouteListener {
  update(table: RoutingTable): void;
}
