/**
 * The main capability each service offers each kind of peer. A peer gets exactly the interface
 * for its role, chosen after the handshake proved the role; nothing else is reachable.
 */
import type { QueueApi, QueueMessageWire, QueueOutcome } from './queues.ts';
import type { KvApi } from './kv.ts';
import type { D1Api } from './d1.ts';
import type { WireRequest, WireResponse } from './http.ts';
import type { RouteListener, RoutingTable } from './routes.ts';
import type { WorkerBundle, WorkerTarget } from './worker.ts';
import type { CacheApi, DirectoryApi, FetcherApi, StorageApi } from './capabilities.ts';
import type { StepApi, WorkflowsApi } from './workflows.ts';
import type { DurableObjectNamespaceApi, ObjectHost } from './durable-objects.ts';
import type { RpcPipe, ServiceBindingApi } from './service-bindings.ts';
import type { AssetPartsApi } from './assets.ts';

/** A capability behind `env.<BINDING>`, of any binding type. */
export type GrantedCapability =
  | StorageApi
  | DirectoryApi
  | FetcherApi
  | WorkflowsApi
  | CacheApi
  | ServiceBindingApi
  | KvApi
  | D1Api
  | QueueApi
  | DurableObjectNamespaceApi
  | AssetPartsApi;

/** Hashes of what a service actually runs with (lib/drift.ts): compared by the supervisor with what it should. */
export interface EffectiveState {
  config: string;
  /** Ingress only: its live route table. */
  routes?: string;
}

/** Every service reports its effective state; the supervisor reports drift (healthz, admin API, audit). */
export interface DriftReporting {
  report(state: EffectiveState): Promise<void>;
}

/** The supervisor, as a sandbox sees it. There is deliberately no way to list workers. */
export interface SupervisorForSandbox extends DriftReporting {
  /** Code and configuration of the worker version the key belongs to; refused (and audited) otherwise. */
  loadWorker(codeKey: string): Promise<WorkerBundle>;
  /** The capabilities the worker declared (`env.<BINDING>`), scoped to that worker alone. */
  capabilities(codeKey: string): Promise<Record<string, GrantedCapability>>;
  /** The sandbox offers to run workflow instances of its cordon's workers. */
  registerRunner(runner: WorkerRunner): Promise<void>;
  /** The sandbox offers to host Durable Objects of its cordon's workers (each process of a cordon offers its own). */
  registerObjectHost(host: ObjectHost): Promise<void>;
  /** The worker (by code key) broke its CPU or memory limit: a quarantine signal. */
  limitHit(codeKey: string, kind: 'cpu' | 'memory'): Promise<void>;
  /** The worker (by code key) created `count` more things of a kind (Dynamic Workers it loaded…), for the operator's counts and the audit. */
  created(codeKey: string, kind: CreationKind, count: number): Promise<void>;
  /** The workers that were running when this cordon's previous process died (crash attribution). */
  crashed(workerIds: string[]): Promise<void>;
  /** Console output of a worker the sandbox runs (by code key: the sandbox cannot write to other logs). */
  log(codeKey: string, entries: LogEntry[]): Promise<void>;
}

/** What a worker's creations are counted by (one line each: Durable Objects and facets will join). */
export const CREATION_KINDS = ['dynamic-worker', 'durable-object', 'facet'] as const;
/** What a sandbox may report having created (objects are created, and counted, by the supervisor's placement alone). */
export const SANDBOX_CREATION_KINDS = ['dynamic-worker'] as const satisfies readonly (typeof CREATION_KINDS)[number][];
export type CreationKind = (typeof CREATION_KINDS)[number];

/** The supervisor, as ingress sees it. */
export interface SupervisorForIngress extends DriftReporting {
  /** The routing table now, and every change later through `listener.patch`. */
  subscribeRoutes(listener: RouteListener): Promise<RoutingTable>;
  /** The routing table now, for a follower that missed a patch (it should never have to). */
  routingTable(): Promise<RoutingTable>;
  /** What ingress served since its last report, a few seconds ago (the dashboard's charts). */
  requestStats(batch: RequestStats[]): Promise<void>;
}

/** Requests one ingress routed to one worker over one reporting interval (lib/request-stats.ts). */
export interface RequestStats {
  workerId: string;
  requests: number;
  /** Answered with a 5xx. */
  errors: number;
  /** Requests per latency bucket (LATENCY_BOUNDS_MS). */
  latency: number[];
}

/** The supervisor, as egress sees it. */
export interface SupervisorForEgress extends DriftReporting {
  /** Egress offers itself; the supervisor asks it for one fetcher per worker. */
  register(egress: EgressForSupervisor): Promise<void>;
  /** A refused outbound request, for the audit log and the worker's refusal count. */
  refused(workerId: string, reason: string): Promise<void>;
}

/**
 * The cordons of one worker or tenant the supervisor makes at run time (quarantine `q-…`, debug
 * `d-…`), each of which must have a sandbox process of its own: what `cordon start`'s launcher reads
 * from `<data>/cordons.json` and the agent (`cordon run dedicated`) asks the supervisor for.
 */
export interface DedicatedCordons {
  dynamic: string[];
  /** A debug cordon's inspector token as its SHA-256 (hex): only that cordon's process gets it. */
  inspector: Record<string, string>;
}

/** The supervisor, as the dedicated-cordon agent sees it: the list, read-only; nothing else. */
export interface SupervisorForAgent {
  dedicated(): Promise<DedicatedCordons>;
}

/** Egress, as the supervisor sees it. */
export interface EgressForSupervisor {
  /** A fetcher bound to one worker's identity and policy (the identity is ours to give, never the tenant's). */
  fetcherFor(workerId: string, policy: { origins: string[]; allowHosts: string[]; denyHosts: string[]; denyCidrs: string[] }): Promise<FetcherApi>;
  /** The Cache API for one worker: its tenant's partitions of the egress cache. */
  cacheFor(workerId: string): Promise<CacheApi>;
}

/** A sandbox, as ingress sees it. */
export interface SandboxApi {
  handle(target: WorkerTarget, request: WireRequest): Promise<WireResponse>;
}

export interface LogEntry {
  level: 'debug' | 'info' | 'log' | 'warn' | 'error';
  message: string;
  time: number;
  /** The trace of the request or run that logged it, when that trace is recorded. */
  traceId?: string;
}

/**
 * What the supervisor has a sandbox run outside requests: one run of a workflow instance, and a
 * worker's scheduled() handler for a cron trigger.
 */
export interface WorkerRunner {
  /**
   * Run `run(event, step)` of `className` in the worker the code key unlocks; resolves when run()
   * returns (`complete`, wire-encoded output), throws (`errored`), or stops at a step the engine
   * suspended (`suspended`: the instance sleeps, waits or retries later, holding no isolate).
   */
  run(
    codeKey: string,
    className: string,
    event: string,
    step: StepApi,
  ): Promise<{ outcome: 'complete'; output: string | null } | { outcome: 'errored'; name: string; message: string } | { outcome: 'suspended' }>;
  /**
   * Workers RPC: serve entrypoint `entrypoint` of the worker the code key unlocks for a caller whose
   * end of the session is `caller`; resolves with the callee's end. `props` is the binding's.
   */
  serve(codeKey: string, entrypoint: string, props: Record<string, unknown>, caller: RpcPipe): Promise<RpcPipe>;
  /** Run `scheduled(event, env, ctx)` (and its waitUntil promises); an error is the handler's, as logged. */
  scheduled(codeKey: string, cron: string, scheduledTime: number): Promise<{ ok: true } | { ok: false; error: string }>;
  /** Run `queue(batch, env, ctx)` with one batch of `queue`; answers what the handler decided for each message. */
  queue(codeKey: string, queue: string, messages: QueueMessageWire[]): Promise<QueueOutcome>;
}
