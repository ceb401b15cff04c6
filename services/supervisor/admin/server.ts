/**
 * The admin API: HTTP + JSON on the admin port (127.0.0.1 by default). Every request but /healthz
 * and /openapi.json needs a bearer token, or a dashboard session standing for one (the dashboard's
 * pages are served here too, by ../dashboard/server.ts); each route needs a scope, and a tenant-bound token sees
 * and touches only its own tenant. Refusals are 401/403 and audited. Bodies are validated; errors are
 * JSON `{ error }` that say what was wrong. This file authenticates, dispatches and describes the
 * routes (OpenAPI); each resource's routes are a file of their own beside it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CordonError } from '../../../lib/errors.ts';
import { hasScope } from '../tokens.ts';
import { decodePathSegment, HttpError, lingeringRefusal, send } from './http.ts';
import type { AdminDeps, Route } from './route.ts';
import { workerRoutes } from './workers.ts';
import { assetRoutes } from './assets.ts';
import { versionRoutes } from './versions.ts';
import { quarantineRoutes } from './quarantine.ts';
import { tenantRoutes } from './tenants.ts';
import { tokenRoutes } from './tokens.ts';
import { driftRoutes } from './drift.ts';
import { auditRoutes } from './audit.ts';
import { workflowRoutes } from './workflows.ts';
import { hostRoutes } from './hosts.ts';
import { objectRoutes } from './objects.ts';
import { d1Routes } from './d1.ts';
import { createDashboard } from '../dashboard/server.ts';

/** More request headers than any client of this API sends: 431 rather than reading on. */
const MAX_HEADERS = 100;

function pathRegExp(path: string): RegExp {
  return new RegExp('^' + path.replace(/\{[^}]+\}/g, '([^/]+)') + '$');
}

export function createAdminServer(deps: AdminDeps): Server {
  const { log, audit, tokens } = deps;
  const table: Route[] = [
    ...workerRoutes(deps),
    ...assetRoutes(deps),
    ...versionRoutes(deps),
    ...quarantineRoutes(deps),
    ...tenantRoutes(deps),
    ...tokenRoutes(deps),
    ...driftRoutes(deps),
    ...auditRoutes(deps),
    ...workflowRoutes(deps),
    ...hostRoutes(deps),
    ...objectRoutes(deps),
    ...d1Routes(deps),
  ];
  const routes = table.map((r) => ({ ...r, re: pathRegExp(r.path) }));
  const dashboard = createDashboard(deps);

  const openapi = {
    openapi: '3.1.0',
    info: { title: 'Cordon admin API', version: '1' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths: {
      '/healthz': { get: { summary: '200 when every service is up, else 503 with per-service detail', security: [] } },
      ...Object.fromEntries(
        [...new Set(routes.map((r) => r.path))].map((p) => [
          p,
          Object.fromEntries(routes.filter((r) => r.path === p).map((r) => [r.method.toLowerCase(), { summary: r.summary, 'x-cordon-scope': r.scope }])),
        ]),
      ),
    },
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.rawHeaders.length / 2 > MAX_HEADERS) throw new HttpError(431, `more than ${MAX_HEADERS} request headers`);
    const url = new URL(req.url ?? '/', 'http://admin');
    // HEAD is GET without the body (node:http leaves the body out of a HEAD response by itself).
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    if (method === 'GET' && url.pathname === '/healthz') {
      const h = deps.health();
      return send(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'starting', services: h.services, drift: h.drift });
    }
    if (method === 'GET' && url.pathname === '/openapi.json') return send(res, 200, openapi);
    if (dashboard.owns(url.pathname)) return dashboard.handle(req, res, url);
    const target = `${req.method} ${url.pathname}`;
    const bearer = /^Bearer (\S{1,256})$/.exec(req.headers.authorization ?? '')?.[1];
    // No bearer token: a dashboard session's, checked here exactly as if it had been presented.
    const who = bearer ? tokens.authenticate(bearer) : req.headers.authorization === undefined ? dashboard.principal(req) : undefined;
    if (!who) {
      audit.append({ actor: 'anonymous', action: 'admin.request', target, outcome: 'denied', detail: { reason: 'bad or missing token' } });
      throw new HttpError(401, 'missing or invalid bearer token (see $CORDON_DATA_DIR/admin.token, or CORDON_TOKEN)');
    }
    let params: string[] | undefined;
    const route = routes.find((r) => {
      const m = r.method === method ? r.re.exec(url.pathname) : null;
      if (m) params = m.slice(1).map(decodePathSegment);
      return m !== null;
    });
    if (!route) throw new HttpError(404, `no such admin endpoint: ${target} (see /openapi.json)`);
    if (!hasScope(who, route.scope)) throw new HttpError(403, `this token lacks the ${route.scope} scope`);
    audit.append({ actor: `token:${who.tokenId}`, action: 'admin.request', target, outcome: 'ok' });
    await route.run({ req, res, url, params: params!, who });
  }

  return createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      // A CordonError says how it is answered; anything else is a fault of ours.
      const status = e instanceof CordonError ? e.status : 500;
      if (status === 403) {
        audit.append({
          actor: 'admin',
          action: 'admin.request',
          target: `${req.method} ${req.url}`,
          outcome: 'denied',
          detail: { reason: (e as Error).message },
        });
      }
      // The rest of an over-long body is not read: end the connection after saying so.
      if (status === 413 || status === 431) {
        res.setHeader('connection', 'close');
        if (!req.complete) return lingeringRefusal(req, res, status, (e as Error).message);
      }
      if (status === 500) {
        log.error('admin request failed', { error: e as Error });
        return send(res, 500, { error: 'internal error; see the supervisor log' });
      }
      send(res, status, { error: (e as Error).message });
    });
  });
}
