/**
 * The host routes of the admin API: which tenant owns which hosts (../hosts.ts). Only the operator — an
 * admin token bound to no tenant — assigns, transfers or releases a host; every change is audited and
 * pushed to ingress at once. A tenant-bound token lists its own tenant's hosts.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { TenantName } from '../../../schemas/worker.ts';
import { HttpError, readJson, send } from './http.ts';
import type { AdminDeps, Call, Route } from './route.ts';

function operatorOnly(call: Call): void {
  if (call.who.tenant !== undefined)
    throw new HttpError(403, `hosts are assigned by the operator: this token is bound to tenant ${call.who.tenant}; use an admin token bound to no tenant`);
}

export function hostRoutes(deps: Pick<AdminDeps, 'store' | 'hub' | 'audit'>): Route[] {
  const { store, hub, audit } = deps;
  return [
    {
      method: 'GET',
      path: '/v1/hosts',
      scope: 'read',
      summary: 'Host patterns and the tenant each is assigned to (a tenant-bound token sees its own)',
      run({ res, who }) {
        send(res, 200, { hosts: store.hosts(who.tenant) });
      },
    },
    {
      method: 'PUT',
      path: '/v1/hosts/{host}',
      scope: 'admin',
      summary: "Assign or transfer a host pattern to a tenant: { tenant }; only that tenant's routes serve it (unbound admin only)",
      async run(call) {
        operatorOnly(call);
        const { tenant } = check(z.object({ tenant: TenantName }).strict(), await readJson(call.req), 'host assignment');
        const { host, previous, stranded } = store.assignHost(call.params[0]!, tenant);
        hub.publish();
        const unserved = stranded.map((r) => `${r.workerId} ${r.pattern}`);
        audit.append({
          actor: `token:${call.who.tokenId}`,
          action: 'host.assign',
          target: host,
          outcome: 'ok',
          detail: { tenant, previous: previous ?? null, ...(unserved.length ? { unserved } : {}) },
        });
        send(call.res, 200, { host, tenant, ...(previous && previous !== tenant ? { previous } : {}), unserved });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/hosts/{host}',
      scope: 'admin',
      summary: 'Release a host pattern: it is no tenant’s again, and only tokens bound to no tenant route on it (unbound admin only)',
      run(call) {
        operatorOnly(call);
        const released = store.releaseHost(call.params[0]!);
        if (!released) throw new HttpError(404, `host ${call.params[0]} is not assigned (see cordon hosts list)`);
        hub.publish();
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'host.release', target: released.host, outcome: 'ok', detail: { tenant: released.tenant } });
        send(call.res, 200, { released: released.host, tenant: released.tenant });
      },
    },
  ];
}
