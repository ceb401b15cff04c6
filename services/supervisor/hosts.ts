/**
 * Hosts have owners. The operator (an admin token bound to no tenant) assigns host patterns to
 * tenants; assigned patterns of different tenants never overlap. A request for an assigned host
 * reaches only its owner's routes (ingress: lib/routes.ts), and these checks refuse, at deploy and at
 * assignment, what would contradict that:
 * - a tenant-bound token routes only inside hosts assigned to its tenant (409 when its pattern could
 *   match another tenant's host, 403 when the host is nobody's yet: the operator decides);
 * - a token bound to no tenant (the operator's) may route on unassigned hosts for any tenant, tenants
 *   sharing such a host by path as before; a route wholly inside another tenant's host is refused,
 *   and a wildcard spanning one never serves it;
 * - the same pattern (in its normalised spelling) is never served for two tenants;
 * - hosts under the workers domain (`<worker>.<tenant>.<domain>`, as on workers.dev) belong to the
 *   default routes: no route or assignment may lie inside it, so `*.<tenant>.<domain>` is its tenant's.
 * Everything here takes normalised patterns (lib/routes.ts) and only decides; the store keeps the rows.
 */
import { CordonError } from '../../lib/errors.ts';
import { hostsOverlap, hostWithin, parseRoutePattern } from '../../lib/routes.ts';
import type { HostAssignment } from '../../schemas/routes.ts';

export class RouteConflictError extends CordonError {
  constructor(message: string) {
    super(message, { status: 409 });
    this.name = 'RouteConflictError';
  }
}

/** A tenant-bound token asked to route on a host no one assigned to its tenant. */
export class HostNotAssignedError extends CordonError {
  constructor(message: string) {
    super(message, { status: 403, refusal: true });
    this.name = 'HostNotAssignedError';
  }
}

/** A route as the checks see it: its normalised pattern and the tenant and worker it serves. */
export interface RoutedPattern {
  pattern: string;
  tenant: string;
  workerId: string;
}

/** Who deploys: a token bound to the tenant, or one bound to no tenant (the operator's). */
export type Deployer = 'tenant' | 'operator';

function ownHosts(tenant: string, owned: HostAssignment[]): string {
  const mine = owned.filter((o) => o.tenant === tenant).map((o) => o.host);
  return mine.length ? mine.join(', ') : 'none yet';
}

/**
 * Throws unless `tenant` may serve each of `patterns` (normalised). Errors for a tenant-bound
 * deployer never name another tenant or its hosts; the operator's name them.
 */
export function checkRoutes(
  tenant: string,
  patterns: string[],
  deployer: Deployer,
  owned: HostAssignment[],
  routed: RoutedPattern[],
  workersDomain: string,
): void {
  for (const pattern of patterns) {
    const { host } = parseRoutePattern(pattern);
    refuseDefaultDomain(host, workersDomain, `route ${pattern}`);
    const others = owned.filter((o) => o.tenant !== tenant);
    if (deployer === 'tenant' && !owned.some((o) => o.tenant === tenant && hostWithin(host, o.host))) {
      if (others.some((o) => hostsOverlap(host, o.host))) {
        throw new RouteConflictError(
          `route ${pattern} could match hosts assigned to another tenant; tenant ${tenant} may route only on its own hosts (${ownHosts(tenant, owned)})`,
        );
      }
      throw new HostNotAssignedError(
        `route ${pattern}: host ${host} is not assigned to tenant ${tenant} (its hosts: ${ownHosts(tenant, owned)}); an operator assigns hosts: cordon hosts assign '${host}' --tenant ${tenant}`,
      );
    }
    const inside = others.find((o) => hostWithin(host, o.host));
    if (inside) throw new RouteConflictError(`route ${pattern} could never be served: host ${inside.host} is assigned to tenant ${inside.tenant}`);
    const taken = routed.find((r) => r.pattern === pattern && r.tenant !== tenant);
    if (taken)
      throw new RouteConflictError(
        deployer === 'tenant' ? `route ${pattern} is already served by another tenant's worker` : `route ${pattern} is already served by ${taken.workerId}`,
      );
  }
}

/**
 * Throws unless `host` (normalised) may be assigned to `tenant`: it may not overlap another tenant's
 * host, except that exactly the same pattern is transferred. Returns the routes of other tenants that
 * lie wholly inside it: from now on they serve nothing (the operator is told which).
 */
export function checkAssignment(host: string, tenant: string, owned: HostAssignment[], routed: RoutedPattern[], workersDomain: string): RoutedPattern[] {
  refuseDefaultDomain(host, workersDomain, `host ${host}`);
  const clash = owned.find((o) => o.tenant !== tenant && o.host !== host && hostsOverlap(host, o.host));
  if (clash)
    throw new RouteConflictError(
      `host ${host} overlaps ${clash.host}, assigned to tenant ${clash.tenant}: release or reassign that first (cordon hosts release '${clash.host}')`,
    );
  return routed.filter((r) => r.tenant !== tenant && hostWithin(parseRoutePattern(r.pattern).host, host));
}

/** Refuses a host pattern that lies inside the workers domain: those hosts are the default routes'. */
function refuseDefaultDomain(host: string, domain: string, what: string): void {
  if (domain === '' || !(host === domain || hostWithin(host, `*.${domain}`))) return;
  throw new RouteConflictError(`${what} lies inside ${domain}, where every worker already answers at <worker>.<tenant>.${domain}; route on another host`);
}

/** The default routes and their hosts, as on workers.dev: each worker at `<worker>.<tenant>.<domain>/*`, each tenant owning `*.<tenant>.<domain>`. */
export function defaultRouting<R extends { tenant: string; name: string }>(
  workers: R[],
  domain: string,
): { routes: { pattern: string; worker: R }[]; hosts: HostAssignment[] } {
  if (domain === '') return { routes: [], hosts: [] };
  const tenants = [...new Set(workers.map((w) => w.tenant))];
  return {
    routes: workers.map((w) => ({ pattern: defaultRoutePattern(w.tenant, w.name, domain), worker: w })),
    hosts: tenants.map((tenant) => ({ host: `*.${tenant}.${domain}`, tenant })),
  };
}

export function defaultRoutePattern(tenant: string, name: string, domain: string): string {
  return `${name}.${tenant}.${domain}/*`;
}
