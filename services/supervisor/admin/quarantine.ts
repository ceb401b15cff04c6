/**
 * The quarantine routes of the admin API: workers and tenants moved into a cordon of their own
 * (quarantine.ts), by the operator or by a debug session, and released from it.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { TenantName } from '../../../schemas/worker.ts';
import { HttpError, readJson, send } from './http.ts';
import { operatorOnly, workerOf, type AdminDeps, type Route } from './route.ts';

export function quarantineRoutes(deps: Pick<AdminDeps, 'store' | 'quarantine'>): Route[] {
  const { store } = deps;
  return [
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/debug',
      scope: 'admin',
      summary: 'Move the worker into a sandbox of its own with the V8 inspector on; returns a one-time token for it',
      run(call) {
        const { id } = workerOf(store, call);
        const session = deps.quarantine.debug(id, `token:${call.who.tokenId}`);
        if (!session) throw new HttpError(409, `${id} is already in a cordon of its own (quarantined or being debugged); see cordon quarantine list`);
        send(call.res, 201, { worker: id, cordon: session.cordon, token: session.token, socket: `sockets/inspector-${session.cordon}.sock` });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/workers/{tenant}/{name}/debug',
      scope: 'admin',
      summary: 'End the debug session: the worker goes back to its cordon and the inspector process stops',
      run(call) {
        const { id } = workerOf(store, call);
        if (!deps.quarantine.debugging(id) || !deps.quarantine.release(id)) throw new HttpError(404, `${id} is not being debugged`);
        send(call.res, 200, { ended: id });
      },
    },
    {
      method: 'GET',
      path: '/v1/quarantine',
      scope: 'admin',
      summary: 'Workers moved into a cordon of their own, and why',
      run({ res, who }) {
        const all = deps.quarantine.list();
        const tenants = deps.quarantine.tenants();
        send(res, 200, {
          quarantined: who.tenant ? all.filter((q) => q.worker.startsWith(`${who.tenant}/`)) : all,
          tenants: who.tenant ? tenants.filter((t) => t.tenant === who.tenant) : tenants,
        });
      },
    },
    {
      method: 'POST',
      path: '/v1/tenants/{tenant}/quarantine',
      scope: 'admin',
      summary: "Quarantine a whole tenant: { reason? }; its workers, and every later deploy of it, run in one cordon of the tenant's own",
      async run({ req, res, who, params }) {
        operatorOnly(who, 'quarantining a tenant');
        const tenant = check(TenantName, params[0], 'tenant');
        const { reason } = check(z.object({ reason: z.string().max(200).optional() }).strict(), (await readJson(req)) ?? {}, 'quarantine request');
        const cordon = deps.quarantine.quarantineTenant(tenant, reason ?? 'by an admin', `token:${who.tokenId}`);
        send(res, 201, { tenant, cordon });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/tenants/{tenant}/quarantine',
      scope: 'admin',
      summary: "Lift a tenant's quarantine: the workers it held go back to their cordons",
      run({ res, who, params }) {
        operatorOnly(who, "releasing a tenant's quarantine");
        const tenant = check(TenantName, params[0], 'tenant');
        if (!deps.quarantine.releaseTenant(tenant, `token:${who.tokenId}`)) throw new HttpError(404, `tenant ${tenant} is not quarantined`);
        send(res, 200, { released: tenant });
      },
    },
    {
      method: 'POST',
      path: '/v1/quarantine/{tenant}/{name}/release',
      scope: 'admin',
      summary: 'Release a quarantined worker back to the cordon it came from',
      run(call) {
        const { id } = workerOf(store, call);
        if (!deps.quarantine.release(id)) throw new HttpError(404, `${id} is not quarantined`);
        send(call.res, 200, { released: id });
      },
    },
  ];
}
