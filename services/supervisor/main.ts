/** The supervisor process: code store, capability broker for sandboxes, route source for ingress, admin API. */
// First: it checks every setting before the modules below, some of which read theirs as they load.
import { startService } from '../../lib/service.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RpcStub, RpcTarget } from 'capnweb';
import type { WorkerBundle } from '../../schemas/worker.ts';
import { serve } from '../../lib/mesh.ts';
import type { MeshSession, PeerIdentity } from '../../lib/rpc/index.ts';
import { AssetPartsCap } from './assets.ts';
import { CodeStore } from './store.ts';
import { AgentPort, EgressLink, EgressPort, IngressPort, SandboxPort, WorkerRunners } from './ports.ts';
import { RouteHub } from './route-hub.ts';
import { RequestMetrics } from './request-metrics.ts';
import { WorkflowEngine } from './workflows/engine.ts';
import { WorkflowsCap } from './workflows/ports.ts';
import { ServiceCap, ServiceSessions } from './service-bindings.ts';
import { callWorker, fetchWorker, type WorkerCall } from './rpc/worker-fetch.ts';
import { LoaderCap, loadedCordonOf, loadedHost, type LoadedCordonDeps } from './loaded-cordon.ts';
import type { LoadedWorkerHost } from '../../schemas/loaded-cordon.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import { CLIENT_RPC_ENDPOINT } from '../../lib/rpc/client-proof.ts';
import type { KeyedChannel } from '../../lib/rpc/index.ts';
import { deployer } from './admin/workers.ts';
import { CronScheduler } from './cron.ts';
import { QueueConsumers } from './queue-consumers.ts';
import { WorkerLogs } from './logs.ts';
import { createAdminServer } from './admin/server.ts';
import { CLIENT_QUOTAS, RpcEndpoint } from './rpc/endpoint.ts';
import Database from 'better-sqlite3';
import { loadAdminToken } from '../../lib/admin-token.ts';
import { TokenStore } from './tokens.ts';
import { AuditLog } from './audit.ts';
import { MasterKey } from './master-key.ts';
import { Grants } from './capabilities.ts';
import { History } from './history.ts';
import { Quarantine } from './quarantine.ts';
import { Creations } from './creations.ts';
import { TenantCordons } from './tenant-cordons.ts';
import { DriftMonitor } from './drift.ts';
import { configHash } from '../../lib/drift.ts';
import { DurableObjects } from './objects/service.ts';
import { usableBwrap } from '../../lib/process-sandbox.ts';
import { ObjectIds } from './objects/ids.ts';
import { ObjectRegistry } from './objects/registry.ts';

await startService('supervisor', 'supervisor', async ({ config, settings, log, node, onStop }) => {
  const dir = join(config.dataDir, 'supervisor');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const master = MasterKey.load(config.dataDir);
  const store = new CodeStore(
    join(dir, 'code.db'),
    master.derive('wrap'),
    new History(join(dir, 'git')),
    settings.supervisor.workersDomain,
    settings.supervisor.assetsQuotaMb * 1024 * 1024,
  );
  onStop(() => store.close());
  const audit = new AuditLog(dir, master.derive('audit'));
  onStop(() => audit.close());
  const adminDb = new Database(join(dir, 'admin.db'));
  adminDb.pragma('journal_mode = WAL');
  adminDb.pragma('synchronous = FULL');
  onStop(() => void adminDb.close());
  const tokens = new TokenStore(adminDb, loadAdminToken(config.dataDir));
  const egress = new EgressLink();
  const runners = new WorkerRunners();
  const serviceSessions = new ServiceSessions(store);
  const workflows = new WorkflowEngine({
    dir: join(dir, 'workflows'),
    worker: (id) => store.worker(id),
    codeKeyFor: (id, version) => store.codeKeyForVersion(id, version),
    runner: (cordon) => runners.get(cordon),
    log: log.child({ component: 'workflows' }),
    traceKey: master.derive('traces'),
  });
  onStop(() => workflows.stop());
  runners.onRunner = () => workflows.runnerAvailable();
  const cron = new CronScheduler(store, (cordon) => runners.get(cordon), log.child({ component: 'cron' }));
  cron.refresh();
  onStop(() => cron.stop());
  const sqlConfinement = usableBwrap();
  if (sqlConfinement.problem) log.warn(`tenant SQL runs in processes without bubblewrap's confinement: ${sqlConfinement.problem}`);
  // Loaded Workers in a stricter cordon (loaded-cordon.ts): quarantine, logs and creations are made below, before any call.
  const loaded: LoadedCordonDeps = {
    store,
    cordons: settings.mesh.cordons,
    fallback: settings.supervisor.dynamicWorkerCordon,
    // Every sandbox's runner is one of ours (sandbox/runner.ts): it hosts loaded Workers too.
    pinned: (cordon, k) => runners.pinned(cordon, k) as RpcStub<WorkerRunner & LoadedWorkerHost> | undefined,
    runner: (cordon) => runners.get(cordon),
    limitHit: (workerId, kind) => quarantine.signal(workerId, kind),
    created: (workerId, actor) => creations.record(workerId, 'dynamic-worker', 1, actor),
    log: (workerId, entries) => logs.append(workerId, entries),
    sessions: serviceSessions,
  };
  const grants = new Grants(join(dir, 'tenants'), audit, egress, {
    onRefused: (workerId) => quarantine.signal(workerId, 'capability'),
    workflow: (tenant, name) => new WorkflowsCap(workflows, tenant, name),
    service: (caller, binding, audit) => new ServiceCap({ store, runner: (cordon) => runners.get(cordon), sessions: serviceSessions }, caller, binding, audit),
    loader: (parent, binding, fetch, audit, wrap) => {
      const cordon = store.worker(parent.workerId)?.cordon;
      const to = cordon === undefined ? undefined : loadedCordonOf(loaded, parent, cordon);
      return to === undefined ? undefined : new LoaderCap(loaded, parent, binding, to, fetch, audit, wrap);
    },
    sqlProcesses: settings.supervisor.sqlProcesses,
    sqlBwrap: sqlConfinement.bwrap,
    objectQuotaBytes: settings.supervisor.objectQuotaMb * 1024 * 1024,
    queueSent: (tenant, queue) => queues.notify(tenant, queue),
    resources: { quotaBytes: settings.supervisor.resourceQuotaMb * 1024 * 1024, perTenant: settings.supervisor.resourcesPerTenant },
    assets: (bundle) => new AssetPartsCap(store.assets, bundle),
  });
  onStop(() => grants.close());
  const objectRegistry = new ObjectRegistry(join(dir, 'objects.db'));
  onStop(() => objectRegistry.close());
  const objects = new DurableObjects({
    ids: new ObjectIds(master.derive('objects')),
    registry: objectRegistry,
    store,
    audit,
    database: (workerId, className, id, facet) => grants.objectDatabase(workerId, className, id, facet),
    facets: (workerId, className, id, under) => grants.objectFacets(workerId, className, id, under),
    leaseMs: settings.supervisor.objectLeaseMs,
    log: log.child({ component: 'objects' }),
    created: (workerId, kind) => creations.record(workerId, kind, 1, 'supervisor'),
    webSockets: { perObject: settings.supervisor.objectWebSockets, perTenant: settings.supervisor.tenantObjectWebSockets },
    loadedHost: (workerId, binding, token) => loadedHost(loaded, workerId, binding, token),
  });
  onStop(() => objects.stop());
  grants.objects = (workerId, className, refused) => objects.namespace(workerId, className, refused);
  const queues = new QueueConsumers(store, grants.resources, (cordon) => runners.get(cordon), log.child({ component: 'queues' }));
  queues.start();
  onStop(() => queues.stop());
  const logs = new WorkerLogs();
  const hub = new RouteHub({ store, log });
  // Workers changed (every change publishes the routes): live Workers RPC sessions are checked again.
  hub.onPublish = () => serviceSessions.check();
  const metrics = new RequestMetrics((id) => store.worker(id) !== undefined);
  // A sandbox session's cordon is the one its key proves; only cordons this supervisor runs are
  // served: the configured ones and the dedicated (quarantine, debug) ones it has now.
  const configured = new Set(settings.mesh.cordons);
  const runs = (cordon: string) => configured.has(cordon) || quarantine.hosts(cordon);
  const sandboxSessions = new Set<MeshSession<any>>();
  const quarantine = new Quarantine(adminDb, store, audit, join(config.dataDir, 'cordons.json'), {
    moved(workerId) {
      grants.revoke(workerId, 'the worker moved to another cordon');
      hub.publish();
      // A released cordon's process is stopped by the launcher; its sessions end here and now.
      for (const s of sandboxSessions) if (!runs(s.peer.name)) s.close(new Error(`cordon ${s.peer.name} is no longer run`));
    },
  });

  const desiredConfig = configHash(settings);
  const drift = new DriftMonitor({
    desired: () => ({ config: desiredConfig, routes: hub.digest() }),
    audit,
    log,
    graceMs: settings.mesh.driftMs / 2,
  });
  const creations = new Creations(audit);
  const ports = {
    store,
    logs,
    audit,
    grants,
    quarantine,
    drift,
    runners,
    egress,
    hub,
    metrics,
    creations,
    objects,
    loadedCordon: (bundle: WorkerBundle, cordon: string) => loadedCordonOf(loaded, bundle, cordon),
  };

  // Which peers are connected now, by "role:name"; /healthz compares this with what should run.
  const connected = new Map<string, number>();
  const key = (p: PeerIdentity) => (p.role === 'sandbox' ? `sandbox:${p.name}` : p.role);
  const expected = ['ingress', 'egress', ...settings.mesh.cordons.map((c) => `sandbox:${c}`)];

  const listener = await serve(node, 'supervisor', {
    accept: ['sandbox', 'ingress', 'egress', 'agent'],
    admit: (peer) => peer.role !== 'sandbox' || runs(peer.name),
    mainFor(peer): RpcTarget {
      if (peer.role === 'sandbox') return new SandboxPort(ports, peer);
      if (peer.role === 'ingress') return new IngressPort(ports);
      if (peer.role === 'agent') return new AgentPort(ports);
      return new EgressPort(ports);
    },
    onSession(session: MeshSession<any>) {
      const k = key(session.peer);
      if (session.peer.role === 'sandbox') {
        sandboxSessions.add(session);
        void session.closed.then(() => sandboxSessions.delete(session));
      }
      connected.set(k, (connected.get(k) ?? 0) + 1);
      log.info('peer connected', { peer: k });
      void session.closed.then((reason) => {
        connected.set(k, (connected.get(k) ?? 1) - 1);
        if (!connected.get(k)) drift.forget(k);
        log.info('peer disconnected', { peer: k, reason: reason.message });
      });
    },
  });
  onStop(() => listener.close());
  workflows.recover();

  const health = () => {
    const services: Record<string, 'up' | 'down'> = { supervisor: 'up' };
    for (const e of expected) services[e] = (connected.get(e) ?? 0) > 0 ? 'up' : 'down';
    return { ok: Object.values(services).every((s) => s === 'up'), services, drift: drift.status() };
  };
  const tenantCordons = new TenantCordons(adminDb, settings.mesh.cordons);
  const admin = createAdminServer({
    store,
    hub,
    logs,
    tokens,
    grants,
    quarantine,
    creations,
    health,
    drift,
    workflows,
    cron,
    cordons: settings.mesh.cordons,
    tenantCordons,
    tenantOrigins: settings.supervisor.tenantOrigins,
    audit,
    metrics,
    jaegerUrl: settings.supervisor.jaegerUrl,
    log,
    objects,
  });
  const deploy = deployer({
    store,
    hub,
    audit,
    grants,
    cordons: settings.mesh.cordons,
    tenantCordons,
    tenantOrigins: settings.supervisor.tenantOrigins,
    quarantine,
    workflows,
    cron,
  });
  const workerCalls = { store, runner: (cordon: string) => runners.get(cordon), sessions: serviceSessions };
  // Services outside the mesh: capability RPC on the same listener (WebSocket upgrades to /rpc).
  const workerAccess = {
    deploy,
    list: (tenant: string) => store.workers(tenant).map(({ codeKey: _hidden, ...w }) => w),
    fetch: (id: string, request: Request) => fetchWorker(workerCalls, id, request),
    call: (call: WorkerCall) => callWorker(workerCalls, call),
  };
  const rpc = new RpcEndpoint({ tokens, audit, workflows, workers: workerAccess, log: log.child({ component: 'rpc' }) });
  rpc.attach(admin);
  // In a cluster, services reach the same endpoint over NATS, on a subject of their own (never a mesh key).
  if (config.natsUrl) {
    const clients = await node.transport.listen(CLIENT_RPC_ENDPOINT, CLIENT_QUOTAS.maxMessage, (channel) => void rpc.serveNats(channel as KeyedChannel));
    onStop(() => clients.close());
  }
  const host = settings.supervisor.adminHost;
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    admin.listen(config.adminPort, host, () => resolve());
  });
  log.info('admin API listening', { url: `http://${host}:${config.adminPort}`, rpc: `ws://${host}:${config.adminPort}/rpc` });
  onStop(() => {
    rpc.close();
    return new Promise<void>((r) => admin.close(() => r()));
  });
});
