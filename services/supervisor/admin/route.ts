/**
 * What a route file is given and gives back, and the checks routes make beyond their scope: a
 * tenant-bound token acts on its own tenant only, and some acts are the operator's alone.
 */
import type { DurableObjects } from '../objects/service.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../../lib/log.ts';
import { HttpError } from './http.ts';
import { hasScope, type Principal, type Scope, type TokenStore } from '../tokens.ts';
import type { CodeStore } from '../store.ts';
import type { TenantCordons } from '../tenant-cordons.ts';
import type { Grants } from '../capabilities.ts';
import type { Creations } from '../creations.ts';
import type { Quarantine } from '../quarantine.ts';
import type { RouteHub } from '../route-hub.ts';
import type { WorkerLogs } from '../logs.ts';
import type { AuditLog } from '../audit.ts';
import type { DriftMonitor, DriftStatus } from '../drift.ts';
import type { WorkflowEngine } from '../workflows/engine.ts';
import type { CronScheduler } from '../cron.ts';
import type { RequestMetrics } from '../request-metrics.ts';

export type HealthSource = () => { ok: boolean; services: Record<string, 'up' | 'down'>; drift: Record<string, DriftStatus> };

export interface AdminDeps {
  store: CodeStore;
  hub: RouteHub;
  logs: WorkerLogs;
  tokens: TokenStore;
  grants: Grants;
  quarantine: Quarantine;
  creations: Creations;
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
  /** The last hour of each worker's requests, as ingress reported them. */
  metrics: RequestMetrics;
  /** The Jaeger UI the dashboard links traces to (CORDON_JAEGER_URL), if any. */
  jaegerUrl?: string;
  log: Logger;
  objects: DurableObjects;
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

/** The operator: an admin token bound to no tenant. Only it grants trust (cordons, private origins) or sees across tenants. */
export function isOperator(who: Principal): boolean {
  return who.tenant === undefined && hasScope(who, 'admin');
}

export function operatorOnly(who: Principal, what: string): void {
  if (!isOperator(who)) throw new HttpError(403, `${what} needs an admin token not bound to a tenant`);
}

/** A tenant-bound token may act only on its own tenant. */
export function ownTenant(who: Principal, tenant: string): void {
  if (who.tenant !== undefined && who.tenant !== tenant) throw new HttpError(403, `this token is bound to tenant ${who.tenant}`);
}

/** The worker a `/{tenant}/{name}` route names, once the token may act on its tenant. */
export function workerOf(store: CodeStore, call: Call) {
  const [tenant, name] = call.params as [string, string];
  ownTenant(call.who, tenant);
  const worker = store.worker(`${tenant}/${name}`);
  if (!worker) throw new HttpError(404, `no worker ${tenant}/${name}`);
  return worker;
}
