/**
 * What a service outside the mesh reaches through `cordon/client`: capnweb over a WebSocket to `/rpc`
 * on the admin port. The main capability is attenuated to the token it was opened with — its tenant
 * (a tenant-bound token has no way to name another) and its scopes (a `read` token's capabilities
 * only read). Values (params, payloads, outputs) are plain JSON here. Revoking the token revokes
 * every capability obtained with it.
 */
import type { RpcTarget } from 'capnweb';
import type { InstanceStatusName, StepRecord } from './workflows.ts';

/** A step as a client sees it: the engine's record, its output decoded to plain JSON. */
export type ClientStep = Omit<StepRecord, 'output'> & { output?: unknown };

export interface ClientInstanceStatus {
  id: string;
  workflow: string;
  status: InstanceStatusName;
  output?: unknown;
  error?: { name: string; message: string };
  createdAt: string;
  steps: ClientStep[];
}

/** What `watch` tells: a step ended (complete or errored), or the instance's status changed (the first event is its status now). */
export type WatchEvent = { type: 'step'; instance: string; step: ClientStep } | { type: 'status'; instance: string; status: ClientInstanceStatus };
export type WatchListener = (event: WatchEvent) => void | Promise<void>;

/** Who the connection's token is. */
export interface Whoami {
  tokenId: string;
  scopes: string[];
  /** The tenant the capabilities act in. */
  tenant: string;
  /** Whether the token is bound to that tenant (otherwise `tenant(name)` reaches others). */
  bound: boolean;
}

/** This connection's RPC tables as the supervisor sees them (a client checks it releases what it holds). */
export interface ConnectionStats {
  imports: number;
  exports: number;
  callsInFlight: number;
  watches: number;
}

/** A method's result: the server may answer at once or later; the client awaits either. */
type Answer<T> = T | Promise<T>;

/** The main capability. */
export interface CordonApi extends RpcTarget {
  whoami(): Answer<Whoami>;
  /** The same capability in another tenant: only for a token bound to no tenant (or to that one). */
  tenant(name: string): Answer<CordonApi>;
  /** One workflow of the tenant (scope `workflows`; `read` for the reading methods). */
  workflows(name: string): Answer<WorkflowApi>;
  /** One worker of the tenant: `fetch` and its entrypoints' methods, without the public ingress (scope `workflows`). */
  workers(name: string): Answer<WorkerApi>;
  /** The tenant's workers (scope `read`). */
  listWorkers(): Answer<WorkerSummary[]>;
  /** Deploy a worker version into this tenant: the admin API's deploy body, checked the same way (scope `deploy`). */
  deploy(input: DeployInput): Answer<DeployResult>;
  stats(): Answer<ConnectionStats>;
}

export interface WorkerApi extends RpcTarget {
  /** The worker's fetch handler (its default export), as a service binding calls it; bodies up to 8 MiB. */
  fetch(request: Request): Answer<Response>;
  /**
   * An entrypoint of the worker (Cloudflare's name, as on a Dynamic Worker's stub): `default` (the
   * default export) or a named `WorkerEntrypoint` class; `props` become its `ctx.props` (scope
   * `deploy`: whoever sets props can deploy a binding that sets them). Its methods are called as a
   * service binding calls them (scope `workflows`).
   */
  getEntrypoint(name?: string, options?: { props?: Record<string, unknown> }): Answer<EntrypointApi>;
}

/**
 * A worker's entrypoint: each method call is one Workers RPC session (`await ep.add(1, 2)`). Values are
 * capnweb's (JSON types, Date, bigint, bytes, errors …); functions and what the worker returns by
 * reference (an RpcTarget) work for as long as the call's session lasts (README, "Calling Cordon from
 * your services").
 */
export type EntrypointApi = RpcTarget & { [method: string]: (...args: any[]) => unknown };

export interface WorkerSummary {
  id: string;
  tenant: string;
  name: string;
  cordon: string;
  version: string;
  routes: string[];
}

/** The admin API's deploy body (POST /v1/workers), without `tenant`: a capability is for one tenant already. */
export interface DeployInput {
  name: string;
  cordon?: string;
  mainModule: string;
  modules: { name: string; type: 'esm' | 'text' | 'json' | 'data' | 'wasm'; content: string }[];
  routes?: string[];
  vars?: Record<string, unknown>;
  bindings?: { type: string; name: string; [k: string]: unknown }[];
  [setting: string]: unknown;
}

export interface DeployResult {
  worker: string;
  version: string;
  cordon: string;
  routes: string[];
  defaultRoute: string | null;
}

export interface WorkflowApi extends RpcTarget {
  create(options?: { id?: string; params?: unknown }): Answer<InstanceApi>;
  /** At most 100; ids already in use are skipped. */
  createBatch(batch: { id?: string; params?: unknown }[]): Answer<InstanceApi[]>;
  get(id: string): Answer<InstanceApi>;
  /** Newest first, without steps; `cursor` (from the previous page) goes on after it, and is null on the last page. */
  list(filter?: { status?: InstanceStatusName; limit?: number; cursor?: string }): Answer<{ instances: ClientInstanceStatus[]; cursor: string | null }>;
}

export interface InstanceApi extends RpcTarget {
  readonly id: string;
  status(): Answer<ClientInstanceStatus>;
  pause(): Answer<void>;
  resume(): Answer<void>;
  terminate(): Answer<void>;
  restart(): Answer<void>;
  sendEvent(event: { type: string; payload?: unknown }): Answer<void>;
  /** Calls `listener` on every step end and status change until the returned capability is disposed. */
  watch(listener: WatchListener): Answer<WatchHandle>;
}

export interface WatchHandle extends RpcTarget {
  [Symbol.dispose](): void;
}
