/**
 * The admin API: HTTP + JSON on the admin port (127.0.0.1 by default), bearer-token authenticated.
 * The CLI is its client. Every request body is validated; errors are JSON `{ error }` with a 4xx.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual, createHash } from 'node:crypto';
import { z } from 'zod';
import { check, ValidationError } from '../../lib/rpc/validate.ts';
import type { Logger } from '../../lib/log.ts';
import { CordonName, Limits, TenantName, WorkerModule, WorkerName } from '../../schemas/worker.ts';
import { RouteConflictError, type CodeStore } from './store.ts';
import type { RouteHub } from './ports.ts';
import type { WorkerLogs } from './logs.ts';
import type { AuditLog } from './audit.ts';
import { parseRoutePattern } from '../../lib/routes.ts';

export const MAX_CODE_BYTES = 64 * 1024 * 1024;
export const MAX_VARS_BYTES = 1024 * 1024;
const MAX_REQUEST_BODY = 96 * 1024 * 1024;

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const DeployRequest = z.object({
  tenant: TenantName.default('default'),
  name: WorkerName,
  cordon: CordonName.default('standard'),
  mainModule: z.string().min(1).max(256),
  modules: z.array(WorkerModule).min(1).max(1000),
  routes: z.array(z.string().max(1024)).max(100).default([]),
  vars: z.record(z.string().max(256), z.string()).default({}),
  limits: Limits.default({ cpuMs: 1000, wallMs: 30_000, memoryMb: 128 }),
});

export interface HealthSource {
  (): { ok: boolean; services: Record<string, 'up' | 'down'> };
}

export interface AdminDeps {
  store: CodeStore;
  hub: RouteHub;
  logs: WorkerLogs;
  token: string;
  health: HealthSource;
  cordons: string[];
  audit: AuditLog;
  log: Logger;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_REQUEST_BODY) throw new HttpError(413, `request body over ${MAX_REQUEST_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BODY) throw new HttpError(413, `request body over ${MAX_REQUEST_BODY} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer (\S+)$/.exec(header ?? '');
  if (!m) return false;
  // Compare digests so the comparison is constant-time whatever the lengths.
  const a = createHash('sha256').update(m[1]!).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

export function createAdminServer(deps: AdminDeps): Server {
  const { store, hub, logs, log, audit } = deps;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const parts = url.pathname.split('/').filter(Boolean);
    if (req.method === 'GET' && url.pathname === '/healthz') {
      const h = deps.health();
      return send(res, h.ok ? 200 : 503, { status: h.ok ? 'ok' : 'starting', services: h.services });
    }
    if (!tokenMatches(req.headers.authorization, deps.token)) {
      audit.append({ actor: 'anonymous', action: 'admin.request', target: `${req.method} ${url.pathname}`, outcome: 'denied', detail: { reason: 'bad or missing token' } });
      throw new HttpError(401, 'missing or invalid bearer token (see $CORDON_DATA_DIR/admin.token)');
    }
    audit.append({ actor: 'admin', action: 'admin.request', target: `${req.method} ${url.pathname}`, outcome: 'ok' });
    if (parts[0] !== 'v1') throw new HttpError(404, `no such admin endpoint: ${url.pathname}`);
    if (req.method === 'POST' && parts.length === 2 && parts[1] === 'workers') {
      const input = check(DeployRequest, await readJson(req), 'deploy request');
      if (!deps.cordons.includes(input.cordon)) throw new HttpError(400, `unknown cordon ${input.cordon}; this mesh runs: ${deps.cordons.join(', ')}`);
      const codeBytes = input.modules.reduce((n, m) => n + Buffer.byteLength(m.content), 0);
      if (codeBytes > MAX_CODE_BYTES) throw new HttpError(413, `code is ${codeBytes} bytes; the limit is ${MAX_CODE_BYTES} (64 MiB)`);
      if (Buffer.byteLength(JSON.stringify(input.vars)) > MAX_VARS_BYTES) throw new HttpError(413, 'vars exceed 1 MiB');
      if (!input.modules.some((m) => m.name === input.mainModule && m.type === 'esm')) {
        throw new HttpError(400, `mainModule ${input.mainModule} is not one of the uploaded esm modules`);
      }
      for (const r of input.routes) parseRoutePattern(r);
      const worker = store.deploy(input);
      hub.publish();
      audit.append({ actor: 'admin', action: 'worker.deploy', target: worker.id, outcome: 'ok', detail: { version: worker.version, routes: worker.routes, cordon: worker.cordon } });
      return send(res, 201, { worker: worker.id, version: worker.version, cordon: worker.cordon, routes: worker.routes });
    }
    if (req.method === 'GET' && parts[1] === 'audit' && parts.length === 2) {
      const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 50) || 50, 1), 10_000);
      return send(res, 200, { entries: audit.tail(limit) });
    }
    if (req.method === 'GET' && parts[1] === 'audit' && parts[2] === 'verify' && parts.length === 3) {
      return send(res, 200, audit.verify());
    }
    if (req.method === 'GET' && parts.length === 2 && parts[1] === 'workers') {
      return send(res, 200, { workers: store.workers().map(({ codeKey: _hidden, ...w }) => w) });
    }
    if (req.method === 'GET' && parts.length >= 4 && parts[1] === 'workers') {
      const id = `${parts[2]}/${parts[3]}`;
      const worker = store.worker(id);
      if (!worker) throw new HttpError(404, `no worker ${id}`);
      if (parts.length === 4) {
        const { codeKey: _hidden, ...visible } = worker;
        return send(res, 200, visible);
      }
      if (parts.length === 5 && parts[4] === 'logs') return streamLogs(id, url, req, res);
    }
    throw new HttpError(404, `no such admin endpoint: ${req.method} ${url.pathname}`);
  }

  function streamLogs(id: string, url: URL, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const e of logs.recent(id)) res.write(JSON.stringify(e) + '\n');
    if (url.searchParams.get('follow') !== '1') return void res.end();
    const stop = logs.follow(id, (e) => res.write(JSON.stringify(e) + '\n'));
    req.on('close', stop);
  }

  return createServer((req, res) => {
    route(req, res).catch((e: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      if (e instanceof ValidationError) return send(res, 400, { error: e.message });
      if (e instanceof RouteConflictError) return send(res, 409, { error: e.message });
      log.error('admin request failed', { error: e as Error });
      send(res, 500, { error: 'internal error; see the supervisor log' });
    });
  });
}
