/**
 * The worker routes of the admin API: deploy (every check a deploy input passes before the store
 * sees it), list, read, logs, a scheduled run on demand, delete.
 */
import type { DeployResult } from '../../../schemas/client.ts';
import { isIP } from 'node:net';
import { z } from 'zod';
import { refusal } from '../../../lib/ip-classify.ts';
import { check } from '../../../lib/rpc/validate.ts';
import { parseRoutePattern } from '../../../lib/routes.ts';
import { parseOrigin } from '../../../lib/origins.ts';
import { nameRefusal } from '../../../lib/special-use-names.ts';
import {
  Binding,
  CordonName,
  EgressLists,
  Limits,
  MAX_CODE_BYTES,
  MAX_MODULES,
  ModuleName,
  ObjectClasses,
  TenantName,
  VarValue,
  WorkerModule,
  WorkerName,
} from '../../../schemas/worker.ts';
import { WorkflowDecl } from '../../../schemas/workflows.ts';
import { QueueConsumerDecl } from '../../../schemas/queues.ts';
import { AssetManifest } from '../../../schemas/assets.ts';
import { codeHash } from '../store.ts';
import { checkCron } from '../cron.ts';
import { HttpError, readJson, send } from './http.ts';
import { isOperator, ownTenant, workerOf, type AdminDeps, type Route } from './route.ts';
import type { Principal } from '../tokens.ts';

const MAX_VARS_BYTES = 1024 * 1024;
/** Keys a plain object cannot hold as data (`__proto__` would set its prototype): refused, never dropped. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

const DeployRequest = z.object({
  tenant: TenantName.optional(),
  name: WorkerName,
  /** Omitted: the most trusted cordon the deployer may use for the tenant. */
  cordon: CordonName.optional(),
  mainModule: ModuleName,
  modules: z
    .array(WorkerModule)
    .min(1)
    .max(MAX_MODULES, `at most ${MAX_MODULES} modules in a worker`)
    // The runtime links modules by name: a second module of a name would be one the worker never loads.
    .superRefine((ms, ctx) => {
      const seen = new Set<string>();
      for (const m of ms) {
        if (seen.has(m.name)) return void ctx.addIssue({ code: 'custom', message: `module ${m.name} is uploaded twice: module names must be unique` });
        seen.add(m.name);
      }
    }),
  routes: z.array(z.string().max(1024)).max(100).default([]),
  vars: z
    .preprocess(
      (v, ctx) => {
        // Checked on the parsed JSON itself: a record schema would drop `__proto__` without a word.
        if (v && typeof v === 'object')
          for (const k of Object.keys(v)) if (RESERVED_KEYS.has(k)) ctx.addIssue({ code: 'custom', message: `a var may not be named ${k}`, input: v });
        return v;
      },
      z.record(z.string().max(256), VarValue),
    )
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
  workersDev: z.boolean().default(true),
  queueConsumers: z
    .array(QueueConsumerDecl)
    .max(16)
    .default([])
    .refine((cs) => new Set(cs.map((c) => c.queue)).size === cs.length, 'a worker consumes each queue once'),
  workflows: z
    .array(WorkflowDecl)
    .max(32)
    .default([])
    .refine((ws) => new Set(ws.map((w) => w.name)).size === ws.length, 'workflow names must be unique'),
  limits: Limits.default({ cpuMs: 1000, wallMs: 30_000, memoryMb: 128 }),
  objectClasses: ObjectClasses,
  /** Other tenants whose workers may call this one over a service binding: the owner's grant (service-bindings.ts). */
  rpcCallers: z.array(TenantName).max(100).default([]),
  /** Where its `worker_loaders` Workers run: a cordon no more trusted than its own (services/supervisor/loaded-cordon.ts). */
  loadedCordon: z.string().max(64).optional(),
  /** Static assets: routing settings and the manifest of files already uploaded (admin/assets.ts). */
  assets: AssetManifest.optional(),
});

/**
 * A declared origin, normalised to `scheme://host:port`. Egress lets a worker reach its trusted
 * origins even when they are private, so trust is the operator's to give: an origin is trusted when
 * an unbound admin token declares it, or when the operator lists it for the tenant
 * (CORDON_TENANT_ORIGINS). Anyone else declaring what egress would refuse — a private address, a
 * special-use or single-label name — gets 403; a public name is kept but untrusted: it grants nothing
 * egress would not allow anyway, so a name re-pointed inside later is still refused.
 */
function declaredOrigin(text: string, granted: (origin: string) => boolean): { origin: string; trusted: boolean } {
  const origin = parseOrigin(text); // an OriginError is a 400
  if (granted(origin)) return { origin, trusted: true };
  const host = new URL(origin).hostname.replace(/^\[|\]$/g, '');
  const why = isIP(host) ? refusal(host) : nameRefusal(host);
  if (why)
    throw new HttpError(
      403,
      `origin ${origin} is not public (${why}); only an admin-scoped token not bound to a tenant may declare it, or the operator may grant it to this tenant in CORDON_TENANT_ORIGINS`,
    );
  return { origin, trusted: false };
}

/** What a deploy answers (the admin API's 201 body, and the RPC endpoint's `deploy`). */
type DeployDeps = Pick<AdminDeps, 'store' | 'hub' | 'audit' | 'cordons' | 'tenantCordons' | 'tenantOrigins' | 'quarantine' | 'workflows' | 'cron' | 'grants'>;

/**
 * A deploy, with every check a deploy input passes before the store sees it: the one path for the
 * admin API and the RPC endpoint (`who` is the token's principal; its scope was checked by the caller).
 */
export function deployer(deps: DeployDeps): (body: unknown, who: Principal) => Promise<DeployResult> {
  const { store, hub, audit } = deps;
  return async (body, who) => {
    const input = check(DeployRequest, body, 'deploy request');
    const tenant = input.tenant ?? who.tenant ?? 'default';
    ownTenant(who, tenant);
    const operator = isOperator(who);
    // The operator places workers anywhere; every other deploy stays within its tenant's grant.
    const allowed = operator ? deps.cordons : deps.tenantCordons.allowed(tenant).cordons;
    const requested = input.cordon ?? allowed[0]!;
    if (!deps.cordons.includes(requested)) throw new HttpError(400, `unknown cordon ${requested}; this mesh runs: ${deps.cordons.join(', ')}`);
    if (!allowed.includes(requested)) {
      throw new HttpError(
        403,
        `tenant ${tenant} may not use cordon ${requested} (it may use: ${allowed.join(', ')}); an admin token not bound to a tenant grants it with: cordon cordons ${tenant} --allow ${requested}`,
      );
    }
    // Loaded Workers may only be made stricter: a cordon after the worker's own in CORDON_CORDONS (most trusted first).
    if (input.loadedCordon !== undefined && !deps.cordons.includes(input.loadedCordon))
      throw new HttpError(400, `unknown loaded cordon ${input.loadedCordon}; this mesh runs: ${deps.cordons.join(', ')}`);
    if (input.loadedCordon !== undefined && deps.cordons.indexOf(input.loadedCordon) < deps.cordons.indexOf(requested))
      throw new HttpError(
        403,
        `loaded cordon ${input.loadedCordon} is more trusted than the worker's own cordon ${requested}: its loaded Workers may run only in ${deps.cordons.slice(deps.cordons.indexOf(requested)).join(', ')}`,
      );
    const codeBytes = input.modules.reduce((n, m) => n + Buffer.byteLength(m.content), 0);
    if (codeBytes > MAX_CODE_BYTES) throw new HttpError(413, `code is ${codeBytes} bytes; the limit is ${MAX_CODE_BYTES} (64 MiB)`);
    if (Buffer.byteLength(JSON.stringify(input.vars)) > MAX_VARS_BYTES) throw new HttpError(413, 'vars exceed 1 MiB');
    const clash = input.bindings.find((b) => b.name in input.vars);
    if (clash) throw new HttpError(400, `${clash.name} is both a var and a binding`);
    const undeclared = input.bindings.find((b) => b.type === 'durable_object' && !input.objectClasses.includes(b.className));
    if (undeclared?.type === 'durable_object')
      throw new HttpError(
        400,
        `cannot create binding ${undeclared.name} for class ${undeclared.className}: it is not declared as a Durable Object class (objectClasses; wrangler: a migration's new_sqlite_classes)`,
      );
    const assetBindings = input.bindings.filter((b) => b.type === 'assets');
    if (assetBindings.length > (input.assets ? 1 : 0))
      throw new HttpError(400, input.assets ? 'a worker has one assets binding at most' : `assets binding ${assetBindings[0]!.name} without assets`);
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
    deps.grants.resources.checkDeclared(tenant, [
      ...input.bindings.flatMap((b) => (b.type === 'kv' || b.type === 'd1' || b.type === 'queue' ? [{ kind: b.type, name: b.resource! }] : [])),
      ...input.queueConsumers.flatMap((c) => [c.queue, ...(c.deadLetterQueue ? [c.deadLetterQueue] : [])].map((name) => ({ kind: 'queue' as const, name }))),
    ]);
    const worker = await store.deploy({ ...input, crons, cordon, tenant, origins }, who.tenant === undefined ? 'operator' : 'tenant');
    if (placement) deps.quarantine.admitted(worker.id, requested, placement);
    await deps.workflows.declare(tenant, worker.id, input.workflows);
    deps.cron.refresh();
    hub.publish();
    audit.append({
      actor: `token:${who.tokenId}`,
      action: 'worker.deploy',
      target: worker.id,
      outcome: 'ok',
      detail: {
        version: worker.version,
        routes: worker.routes,
        cordon: worker.cordon,
        ...(input.rpcCallers.length ? { rpcCallers: input.rpcCallers } : {}),
        ...(input.loadedCordon ? { loadedCordon: input.loadedCordon } : {}),
      },
    });
    return {
      worker: worker.id,
      version: worker.version,
      cordon: worker.cordon,
      routes: worker.routes,
      defaultRoute: store.defaultRoute(tenant, input.name) ?? null,
    };
  };
}

export function workerRoutes(
  deps: Pick<
    AdminDeps,
    | 'store'
    | 'hub'
    | 'logs'
    | 'audit'
    | 'cordons'
    | 'tenantCordons'
    | 'tenantOrigins'
    | 'quarantine'
    | 'workflows'
    | 'cron'
    | 'grants'
    | 'metrics'
    | 'creations'
  >,
): Route[] {
  const { store, hub, logs, audit } = deps;
  const deploy = deployer(deps);
  return [
    {
      method: 'POST',
      path: '/v1/workers',
      scope: 'deploy',
      summary: 'Deploy a worker version: { name, tenant?, cordon?, mainModule, modules, routes?, vars?, limits? }',
      async run({ req, res, who }) {
        send(res, 201, await deploy(await readJson(req), who));
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
      summary: 'One worker: current version, cordon, routes, and what it created (Dynamic Workers loaded) since the supervisor started',
      run(call) {
        const { codeKey: _hidden, ...visible } = workerOf(store, call);
        send(call.res, 200, { ...visible, created: deps.creations.of(visible.id) });
      },
    },
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/logs',
      scope: 'read',
      summary: "A worker's console output as NDJSON; ?follow=1 streams new entries",
      run(call) {
        const { id } = workerOf(store, call);
        call.res.writeHead(200, { 'content-type': 'application/x-ndjson' });
        for (const e of logs.recent(id)) call.res.write(JSON.stringify(e) + '\n');
        if (call.url.searchParams.get('follow') !== '1' || call.req.method === 'HEAD') return void call.res.end();
        const stop = logs.follow(id, (e) => call.res.write(JSON.stringify(e) + '\n'));
        call.req.on('close', stop);
      },
    },
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/metrics',
      scope: 'read',
      summary: "A worker's requests, 5xx errors and p99 latency per minute over the last hour, as ingress reported them",
      run(call) {
        const { id } = workerOf(store, call);
        send(call.res, 200, { minutes: deps.metrics.lastHour(id) });
      },
    },
    {
      method: 'POST',
      path: '/v1/workers/{tenant}/{name}/scheduled',
      scope: 'deploy',
      summary: "Run the worker's scheduled() handler once now: { cron? } (its first cron trigger by default)",
      async run(call) {
        const { id } = workerOf(store, call);
        const { cron } = check(z.object({ cron: z.string().max(100).optional() }).strict(), (await readJson(call.req)) ?? {}, 'trigger request');
        const result = await deps.cron.run(id, cron ?? store.bundleForKey(store.worker(id)!.codeKey)?.bundle.crons?.[0] ?? '* * * * *');
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.trigger', target: id, outcome: result.ok ? 'ok' : 'error' });
        send(call.res, result.ok ? 200 : 500, result.ok ? { ran: id } : { error: result.error });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/workers/{tenant}/{name}',
      scope: 'deploy',
      summary: 'Delete a worker: versions, code keys and routes; its capabilities are revoked',
      run(call) {
        const { id } = workerOf(store, call);
        store.delete(id);
        deps.metrics.forget(id);
        deps.cron.refresh();
        deps.grants.revoke(id, 'worker deleted');
        hub.publish();
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.delete', target: id, outcome: 'ok' });
        send(call.res, 200, { deleted: id });
      },
    },
  ];
}
