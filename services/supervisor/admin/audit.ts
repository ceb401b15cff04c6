/** The audit routes of the admin API: the log's tail and its chain check, for tokens bound to no tenant. */
import { HttpError, send } from './http.ts';
import type { AdminDeps, Route } from './route.ts';

export function auditRoutes(deps: Pick<AdminDeps, 'audit'>): Route[] {
  const { audit } = deps;
  return [
    {
      method: 'GET',
      path: '/v1/audit',
      scope: 'admin',
      summary: 'The last audit entries (?limit=N, at most 10000)',
      run({ res, url, who }) {
        if (who.tenant !== undefined) throw new HttpError(403, 'the audit log needs a token not bound to a tenant');
        const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 50) || 50, 1), 10_000);
        send(res, 200, { entries: audit.tail(limit) });
      },
    },
    {
      method: 'GET',
      path: '/v1/audit/verify',
      scope: 'admin',
      summary: "Verify the audit log's chain; names the first bad entry",
      run({ res, who }) {
        if (who.tenant !== undefined) throw new HttpError(403, 'the audit log needs a token not bound to a tenant');
        send(res, 200, audit.verify());
      },
    },
  ];
}
