/**
 * The tenant routes of the admin API: the cordons a tenant may deploy to (tenant-cordons.ts), which
 * only the operator sets.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { CordonName, TenantName } from '../../../schemas/worker.ts';
import { readJson, send } from './http.ts';
import { operatorOnly, ownTenant, type AdminDeps, type Route } from './route.ts';

export function tenantRoutes(deps: Pick<AdminDeps, 'tenantCordons' | 'audit'>): Route[] {
  const { audit } = deps;
  return [
    {
      method: 'GET',
      path: '/v1/tenants/{tenant}/cordons',
      scope: 'admin',
      summary: 'The cordons a tenant may deploy to (the least trusted one unless an admin granted more)',
      run({ res, who, params }) {
        const tenant = check(TenantName, params[0], 'tenant');
        ownTenant(who, tenant);
        send(res, 200, { tenant, ...deps.tenantCordons.allowed(tenant) });
      },
    },
    {
      method: 'PUT',
      path: '/v1/tenants/{tenant}/cordons',
      scope: 'admin',
      summary: 'Set the cordons a tenant may deploy to: { cordons: [...] } (an admin token not bound to a tenant only)',
      async run({ req, res, who, params }) {
        operatorOnly(who, "setting a tenant's cordons");
        const tenant = check(TenantName, params[0], 'tenant');
        const { cordons } = check(z.object({ cordons: z.array(CordonName).min(1).max(64) }).strict(), await readJson(req), 'cordons request');
        const now = deps.tenantCordons.set(tenant, cordons);
        audit.append({ actor: `token:${who.tokenId}`, action: 'tenant.cordons', target: tenant, outcome: 'ok', detail: { cordons: now } });
        send(res, 200, { tenant, cordons: now, granted: true });
      },
    },
  ];
}
