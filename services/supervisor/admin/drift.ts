/** The drift route of the admin API: whether each service runs with the settings the mesh means it to (drift.ts). */
import { send } from './http.ts';
import { operatorOnly, type AdminDeps, type Route } from './route.ts';

export function driftRoutes(deps: Pick<AdminDeps, 'drift'>): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/drift',
      scope: 'admin',
      summary: 'Each service: whether it runs with the settings (and, for ingress, the routes) the mesh means it to',
      run({ res, who }) {
        operatorOnly(who, 'the mesh-wide drift report');
        send(res, 200, { services: deps.drift.status() });
      },
    },
  ];
}
