/**
 * The version routes of the admin API: a worker's stored versions, rollback to one of them, and a
 * tenant's whole history exported (decrypted) for `cordon export`.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { TenantName } from '../../../schemas/worker.ts';
import { readJson, send } from './http.ts';
import { ownTenant, workerOf, type AdminDeps, type Route } from './route.ts';

export function versionRoutes(deps: Pick<AdminDeps, 'store' | 'hub' | 'audit' | 'cron'>): Route[] {
  const { store, hub, audit } = deps;
  return [
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/versions',
      scope: 'read',
      summary: "A worker's stored versions, newest first",
      run(call) {
        send(call.res, 200, { versions: store.versions(workerOf(store, call).id) });
      },
    },
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/rollback',
      scope: 'deploy',
      summary: 'Make an earlier version current: { version }',
      async run(call) {
        const { id } = workerOf(store, call);
        const { version } = check(
          z.object({ version: z.string().regex(/^[0-9a-f]{64}$/, 'a version is 64 hex digits') }),
          await readJson(call.req),
          'rollback request',
        );
        const worker = store.rollback(id, version);
        deps.cron.refresh();
        hub.publish();
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.rollback', target: id, outcome: 'ok', detail: { version } });
        send(call.res, 200, { worker: id, version: worker.version });
      },
    },
    {
      method: 'GET',
      path: '/v1/tenants/{tenant}/export',
      scope: 'read',
      summary: "Every version of the tenant's workers, decrypted, oldest first (cordon export writes them as a git repository)",
      run({ res, who, params }) {
        const tenant = check(TenantName, params[0], 'tenant');
        ownTenant(who, tenant);
        audit.append({ actor: `token:${who.tokenId}`, action: 'tenant.export', target: tenant, outcome: 'ok' });
        send(res, 200, { tenant, versions: store.exportTenant(tenant) });
      },
    },
  ];
}
