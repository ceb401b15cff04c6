/**
 * The admin API: HTTP + JSON on the admin port (127.0.0.1 by default). Every request but /healthz
 * and /openapi.json needs a bearer token; each route needs a scope, and a tenant-bound token sees
 * and touches only its own tenant. Refusals are 401/403 and audited. Bodies are validated; errors are
 * JSON `{ error }` that say what was wrong.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { refusal } from '../../lib/ip-classify.ts';
import { z } from 'zod';
import { check, ValidationError } from '../../lib/rpc/validate.ts';
import type { Logger } from '../../lib/log.ts';
import { parseRoutePattern, RoutePatternError } from '../../lib/routes.ts';
import { Binding, CordonName, EgressLists, Limits, ModuleName, TenantName, WorkerModule, WorkerName } from '../../schemas/worker.ts';
import { adminMaxBodyBytes } from '../../lib/config.ts';
import { OriginError, parseOrigin } from '../../lib/origins.ts';
import { nameRefusal } from '../../lib/special-use-names.ts';
import { codeHash, UnknownVersionError, type CodeStore } from './store.ts';
import { HostNotAssignedError, RouteConflictError } from './hosts.ts';
import { hostRoutes } from './host-routes.ts';
import { UnknownCordonError, type TenantCordons } from './tenant-cordons.ts';
import type { Grants } from './capabilities.ts';
import type { Quarantine } from './quarantine.ts';
import type { RouteHub } from './ports.ts';
import type { WorkerLogs } from './logs.ts';
import type { AuditLog } from './audit.ts';
import type { DriftMonitor, DriftStatus } from './drift.ts';
import { WorkflowError, type WorkflowEngine } from './workflows/engine.ts';
import { workflowRoutes } from './workflows/admin-routes.ts';
import { checkCron, CronError, type CronScheduler } from './cron.ts';
import { WorkflowDecl } from '../../schemas/workflows.ts';
import { hasScope, SCOPES, type Principal, type Scope, type TokenStore } from './tokens.ts';

export const MAX_CODE_BYTES = 64 * 1024 * 1024;
export const MAX_VARS_BYTES = 1024 * 1024;
/** CORDON_ADMIN_MAX_BODY_MB: a body is counted as it streams in and refused past this, before any parsing. */
const MAX_REQUEST_BODY = adminMaxBodyBytes();
/** More request headers than any client of this API sends: 431 rather than reading on. */
const MAX_HEADERS = 100;
/** Keys a plain object cannot hold as data (`__proto__` would set its prototype): refused, never dropped. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const DeployRequest = z.object({
  tenant: TenantName.optional(),
  name: WorkerName,
  /** Omitted: the most trusted cordon the deployer may use for the tenant. */
  cordon: CordonName.optional(),
  mainModule: ModuleName,
  modules: z.array(WorkerModule).min(1).max(1000),
  routes: z.array(z.string().max(1024)).max(100).default([]),
  vars: z
    .preprocess((v, ctx) => {
      // Checked on the parsed JSON itself: a record schema would drop `__proto__` without a word.
      if (v && typeof v === 'object') for (const k of Object.keys(v)) if (RESERVED_KEYS.has(k)) ctx.addIssue({ code: 'custom', message: `a var may not be named ${k}`, input: v });
      return v;
    }, z.record(z.string().max(256), z.string()))
    .default({}),
  origins: z.array(z.string().max(300)).max(32).default([]),
  allowEval: z.boolean().default(false),
  egress: EgressLists.default({ allowHosts: [], denyHosts: [], denyCidrs: [] }),
  bindings: z
    .array(Binding)
    .max(64)
    .default([])
    .refine((bs) => new Set(bs.map((b) => b.name)).size === bs.length, 'binding names must be unique'),
  crons: z.array(z.string().max(100)).max(10, 'at most 10 cron triggers').default([]),
  workflows: z
    .array(WorkflowDecl)
    .max(32)
    .default([])
    .refine((ws) => new Set(ws.map((w) => w.name)).size === ws.length, 'workflow names must be unique'),
  limits: Limits.default({ cpuMs: 1000, wallMs: 30_000, memoryMb: 128 }),
});

const TokenRequest = z.object({
  scopes: z.array(z.enum(SCOPES)).min(1).max(4),
  tenant: TenantName.optional(),
});

export interface HealthSource {
  (): { ok: boolean; services: Record<string, 'up' | 'down'>; drift: Record<string, DriftStatus> };
}

export interface AdminDeps {
  store: CodeStore;
  hub: RouteHub;
  logs: WorkerLogs;
  tokens: TokenStore;
  grants: Grants;
  quarantine: Quarantine;
  health: HealthSource;
  drift: DriftMonitor;
  workflows: WorkflowEngine;
  cron: CronScheduler;
  /** The configured cordons, most trusted first. */
  cordons: string[];
  tenantCordons: TenantCordons;
  /** Non-public origins the operator lets tenant-bound tokens declare (tenant undefined: any tenant). */
  tenantOrigins: { tenant: string | undefined; origin: string }[];
  audit: AuditLog;
  log: Logger;
}

export interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
  who: Principal;
}

export interface Route {
  method: string;
  path: string; // OpenAPI-style, e.g. /v1/workers/{tenant}/{name}
  scope: Scope;
  summary: string;
  run(call: Call): Promise<void> | void;
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** How long a refused request's unread body is still taken in (and dropped) before its connection is cut. */
const LINGER_MS = 2000;

/**
 * Answers a request whose body was refused unread. Closing a socket that still has unread input makes
 * the kernel reset the connection, and a client still uploading then sees the reset, not our answer:
 * so the answer is written at once, the rest of the body is read and dropped (nothing is kept), and the
 * connection ends when the body does or after LINGER_MS, whichever comes first.
 */
function lingeringRefusal(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const text = JSON.stringify({ error: message }, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.write(text);
  const timer = setTimeout(() => res.end(), LINGER_MS);
  req.on('end', () => {
    clearTimeout(timer);
    res.end();
  });
  req.on('error', () => res.destroy());
  req.resume();
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const tooLarge = () => new HttpError(413, `request body over ${MAX_REQUEST_BODY} bytes (CORDON_ADMIN_MAX_BODY_MB)`);
  if (Number(req.headers['content-length'] ?? 0) > MAX_REQUEST_BODY) throw tooLarge();
  let chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed on overflow, so the 413 still reaches the client (the connection closes after it).
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BODY) throw tooLarge();
    chunks.push(chunk);
  }
  // One copy of the body at a time: the chunks go before the text, the bytes before the parse.
  let body: Buffer | undefined = Buffer.concat(chunks, size);
  chunks = [];
  const text = body.toString('utf8');
  body = undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

/** The operator: an admin token bound to no tenant. Only it grants trust (cordons, private origins) or sees across tenants. */
function isOperator(who: Principal): boolean {
  return who.tenant === undefined && hasScope(who, 'admin');
}

function operatorOnly(who: Principal, what: string): void {
  if (!isOperator(who)) throw new HttpError(403, `${what} needs an admin token not bound to a tenant`);
}

/**
 * A declared origin, normalised to `scheme://host:port`. Egress lets a worker reach its trusted
 * origins even when they are private, so trust is the operator's to give: an origin is trusted when
 * an unbound admin token declares it, or when the operator lists it for the tenant
 * (CORDON_TENANT_ORIGINS). Anyone else declaring what egress would refuse — a private address, a
 * special-use or single-label name — gets 403; a public name is kept but untrusted: it grants nothing
 * egress would not allow anyway, so a name re-pointed inside later is still refused.
 */
function declaredOrigin(text: string, granted: (origin: string) => boolean): { origin: string; trusted: boolean } {
  let origin: string;
  try {
    origin = parseOrigin(text);
  } catch (e) {
    if (e instanceof OriginError) throw new HttpError(400, e.message);
    throw e;
  }
  if (granted(origin)) return { origin, trusted: true };
  const host = new URL(origin).hostname.replace(/^\[|\]$/g, '');
  const why = isIP(host) ? refusal(host) : nameRefusal(host);
  if (why) throw new HttpError(403, `origin ${origin} is not public (${why}); only an admin-scoped token not bound to a tenant may declare it, or the operator may grant it to this tenant in CORDON_TENANT_ORIGINS`);
  return { origin, trusted: false };
}

/** A tenant-bound token may act only on its own tenant. */
export function ownTenant(who: Principal, tenant: string): void {
  if (who.tenant !== undefined && who.tenant !== tenant) throw new HttpError(403, `this token is bound to tenant ${who.tenant}`);
}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the path segment ${JSON.stringify(segment)}`);
  }
}

function pathRegExp(path: string): RegExp {
  return new RegExp('^' + path.replace(/\{[^}]+\}/g, '([^/]+)') + '$');
}

export function createAdminServer(deps: AdminDeps): Server {
  const { store, hub, logs, log, audit, tokens } = deps;

  const workerOf = (call: Call) => {
    const [tenant, name] = call.params as [string, string];
    ownTenant(call.who, tenant);
    const worker = store.worker(`${tenant}/${name}`);
    if (!worker) throw new HttpError(404, `no worker ${tenant}/${name}`);
    return worker;
  };

  const table: Route[] = [
    {
      method: 'POST',
      path: '/v1/workers',
      scope: 'deploy',
      summary: 'Deploy a worker version: { name, tenant?, cordon?, mainModule, modules, routes?, vars?, limits? }',
      async run({ req, res, who }) {
        const input = check(DeployRequest, await readJson(req), 'deploy request');
        const tenant = input.tenant ?? who.tenant ?? 'default';
        ownTenant(who, tenant);
        const operator = isOperator(who);
        // The operator places workers anywhere; every other deploy stays within its tenant's grant.
        const allowed = operator ? deps.cordons : deps.tenantCordons.allowed(tenant).cordons;
        const requested = input.cordon ?? allowed[0]!;
        if (!deps.cordons.includes(requested)) throw new HttpError(400, `unknown cordon ${requested}; this mesh runs: ${deps.cordons.join(', ')}`);
        if (!allowed.includes(requested)) {
          throw new HttpError(403, `tenant ${tenant} may not use cordon ${requested} (it may use: ${allowed.join(', ')}); an admin token not bound to a tenant grants it with: cordon cordons ${tenant} --allow ${requested}`);
        }
        const codeBytes = input.modules.reduce((n, m) => n + Buffer.byteLength(m.content), 0);
        if (codeBytes > MAX_CODE_BYTES) throw new HttpError(413, `code is ${codeBytes} bytes; the limit is ${MAX_CODE_BYTES} (64 MiB)`);
        if (Buffer.byteLength(JSON.stringify(input.vars)) > MAX_VARS_BYTES) throw new HttpError(413, 'vars exceed 1 MiB');
        const clash = input.bindings.find((b) => b.name in input.vars);
        if (clash) throw new HttpError(400, `${clash.name} is both a var and a binding`);
        if (!input.modules.some((m) => m.name === input.mainModule && m.type === 'esm')) {
          throw new HttpError(400, `mainModule ${input.mainModule} is not one of the uploaded esm modules`);
        }
        for (const r of input.routes) parseRoutePattern(r);
        const granted = (origin: string) => operator || deps.tenantOrigins.some((g) => g.origin === origin && (g.tenant === undefined || g.tenant === tenant));
        const origins = input.origins.map((o) => declaredOrigin(o, granted));
        // Quarantine holds the worker, its tenant and its code: a redeploy, under this name or another, stays held.
        const placement = deps.quarantine.placement(`${tenant}/${input.name}`, tenant, codeHash(input.mainModule, input.modules));
        const cordon = placement?.cordon ?? requested;
        deps.workflows.checkDeclarations(tenant, `${tenant}/${input.name}`, input.workflows);
        const crons = input.crons.map(checkCron);
        const worker = await store.deploy({ ...input, crons, cordon, tenant, origins }, who.tenant === undefined ? 'operator' : 'tenant');
        if (placement) deps.quarantine.admitted(worker.id, requested, placement);
        await deps.workflows.declare(tenant, worker.id, input.workflows);
        deps.cron.refresh();
        hub.publish();
        audit.append({ actor: `token:${who.tokenId}`, action: 'worker.deploy', target: worker.id, outcome: 'ok', detail: { version: worker.version, routes: worker.routes, cordon: worker.cordon } });
        send(res, 201, { worker: worker.id, version: worker.version, cordon: worker.cordon, routes: worker.routes });
      },
    },
    {
      method: 'GET',
      path: '/v1/workers',
      scope: 'read',
      summary: 'List workers (a tenant-bound token sees its tenant only)',
      run({ res, who }) {
        send(res, 200, { workers: store.workers(who.tenant).map(({ codeKey: _hidden, ...w }) => w) });
      },
    },
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}',
      scope: 'read',
      summary: 'One worker: current version, cordon, routes',
      run(call) {
        const { codeKey: _hidden, ...visible } = workerOf(call);
        send(call.res, 200, visible);
      },
    },
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/logs',
      scope: 'read',
      summary: "A worker's console output as NDJSON; ?follow=1 streams new entries",
      run(call) {
        const { id } = workerOf(call);
        call.res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const e of logs.recent(id)) call.res.write(JSON.stringify(e) + '\n');
        if (call.url.searchParams.get('follow') !== '1' || call.req.method === 'HEAD') return void call.res.end();
        const stop = logs.follow(id, (e) => call.res.write(JSON.stringify(e) + '\n'));
        call.req.on('close', stop);
      },
    },
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/versions',
      scope: 'read',
      summary: "A worker's stored versions, newest first",
      run(call) {
        send(call.res, 200, { versions: store.versions(workerOf(call).id) });
      },
    },
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/rollback',
      scope: 'deploy',
      summary: 'Make an earlier version current: { version }',
      async run(call) {
        const { id } = workerOf(call);
        const { version } = check(z.object({ version: z.string().regex(/^[0-9a-f]{64}$/, 'a version is 64 hex digits') }), await readJson(call.req), 'rollback request');
        const worker = store.rollback(id, version);
        deps.cron.refresh();
        hub.publish();
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.rollback', target: id, outcome: 'ok', detail: { version } });
        send(call.res, 200, { worker: id, version: worker.version });
      },
    },
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/scheduled',
      scope: 'deploy',
      summary: "Run the worker's scheduled() handler once now: { cron? } (its first cron trigger by default)",
      async run(call) {
        const { id } = workerOf(call);
        const { cron } = check(z.object({ cron: z.string().max(100).optional() }).strict(), (await readJson(call.req)) ?? {}, 'trigger request');
        const result = await deps.cron.run(id, cron ?? store.bundleForKey(store.worker(id)!.codeKey)?.bundle.crons?.[0] ?? '* * * * *');
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.trigger', target: id, outcome: result.ok ? 'ok' : 'error' });
        send(call.res, result.ok ? 200 : 500, result.ok ? { ran: id } : { error: result.error });
      },
    },
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/debug',
      scope: 'admin',
      summary: 'Move the worker into a sandbox of its own with the V8 inspector on; returns a one-time token for it',
      run(call) {
        const { id } = workerOf(call);
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
        const { id } = workerOf(call);
        if (!deps.quarantine.debugging(id) || !deps.quarantine.release(id)) throw new HttpError(404, `${id} is not being debugged`);
        send(call.res, 200, { ended: id });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/workers/{tenant}/{name}',
      scope: 'deploy',
      summary: 'Delete a worker: versions, code keys and routes; its capabilities are revoked',
      run(call) {
        const { id } = workerOf(call);
        store.delete(id);
        deps.cron.refresh();
        deps.grants.revoke(id, 'worker deleted');
        hub.publish();
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.delete', target: id, outcome: 'ok' });
        send(call.res, 200, { deleted: id });
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
    {
      method: 'POST',
      path: '/v1/quarantine/{tenant}/{name}/release',
      scope: 'admin',
      summary: 'Release a quarantined worker back to the cordon it came from',
      run(call) {
        const { id } = workerOf(call);
        if (!deps.quarantine.release(id)) throw new HttpError(404, `${id} is not quarantined`);
        send(call.res, 200, { released: id });
      },
    },
    {
      method: 'POST',
      path: '/v1/tokens',
      scope: 'admin',
      summary: 'Create a token: { scopes: [read|deploy|workflows|admin], tenant? }; the token is shown once',
      async run({ req, res, who }) {
        const input = check(TokenRequest, await readJson(req), 'token request');
        // A tenant-bound admin can only mint tokens bound to its own tenant.
        const tenant = input.tenant ?? who.tenant;
        if (who.tenant !== undefined) ownTenant(who, tenant!);
        const { token, info } = tokens.create(input.scopes, tenant);
        audit.append({ actor: `token:${who.tokenId}`, action: 'token.create', target: info.tokenId, outcome: 'ok', detail: { scopes: info.scopes, tenant: info.tenant ?? null } });
        send(res, 201, { token, ...info });
      },
    },
    {
      method: 'GET',
      path: '/v1/tokens',
      scope: 'admin',
      summary: 'List tokens (never the secrets)',
      run({ res, who }) {
        send(res, 200, { tokens: tokens.list(who.tenant) });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/tokens/{id}',
      scope: 'admin',
      summary: 'Revoke a token',
      run({ res, who, params }) {
        const info = tokens.get(params[0]!);
        if (!info) throw new HttpError(404, `no token ${params[0]}`);
        if (who.tenant !== undefined) ownTenant(who, info.tenant ?? '*');
        if (!tokens.revoke(info.tokenId)) throw new HttpError(409, info.tokenId === 'root' ? 'the root token cannot be revoked through the API' : 'already revoked');
        audit.append({ actor: `token:${who.tokenId}`, action: 'token.revoke', target: info.tokenId, outcome: 'ok' });
        send(res, 200, { revoked: info.tokenId });
      },
    },
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
    ...workflowRoutes(deps.workflows),
    ...hostRoutes(deps),
  ];
  const routes = table.map((r) => ({ ...r, re: pathRegExp(r.path) }));

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
    const target = `${req.method} ${url.pathname}`;
    const bearer = /^Bearer (\S{1,256})$/.exec(req.headers.authorization ?? '')?.[1];
    const who = bearer ? tokens.authenticate(bearer) : undefined;
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
      let status = 500;
      if (e instanceof HttpError) status = e.status;
      else if (e instanceof ValidationError || e instanceof RoutePatternError || e instanceof UnknownCordonError) status = 400;
      else if (e instanceof RouteConflictError) status = 409;
      else if (e instanceof HostNotAssignedError) status = 403;
      else if (e instanceof UnknownVersionError) status = 404;
      else if (e instanceof WorkflowError) status = e.status;
      else if (e instanceof CronError) status = 400;
      if (status === 403) {
        audit.append({ actor: 'admin', action: 'admin.request', target: `${req.method} ${req.url}`, outcome: 'denied', detail: { reason: (e as Error).message } });
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
