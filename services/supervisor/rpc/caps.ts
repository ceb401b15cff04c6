/**
 * The capabilities a client of the RPC endpoint holds (schemas/client.ts): the main one, a workflow,
 * an instance, a watch. Each is built for one connection's `Caller` — the token's principal, the
 * tenant chosen when the connection was opened, the connection's membrane — so a capability can name
 * nothing outside its tenant: there is no tenant parameter to forge. Every method checks its scope
 * (reading: `read` or `workflows`; changing: `workflows`), audits the call, and validates every
 * argument (a peer may send a stub or a 100 MB string where a short string is declared).
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { CordonError } from '../../../lib/errors.ts';
import { check } from '../../../lib/rpc/validate.ts';
import type { Membrane } from '../../../lib/rpc/membrane.ts';
import type {
  ConnectionStats,
  CordonApi,
  DeployResult,
  EntrypointApi,
  InstanceApi,
  WatchEvent,
  WatchHandle,
  WatchListener,
  Whoami,
  WorkerApi,
  WorkerSummary,
  WorkflowApi,
} from '../../../schemas/client.ts';
import { TenantName, WorkerName } from '../../../schemas/worker.ts';
import { EventType, InstanceId, STATUSES, WorkflowName } from '../../../schemas/workflows.ts';
import { hasScope, type Principal } from '../tokens.ts';
import type { InstanceChange, WorkflowEngine } from '../workflows/engine.ts';
import type { InstanceRef, WorkflowRef } from '../workflows/instance-store.ts';
import { plainStatus, plainStep, toWire } from '../workflows/json.ts';
import type { WorkerCall } from './worker-fetch.ts';
import { BindingProps, EntrypointName } from '../../../schemas/service-bindings.ts';

/** Events a slow listener may have unanswered before its watch is ended (the engine does not wait for it). */
export const MAX_UNANSWERED_EVENTS = 100;

/** One connection, as its capabilities see it. */
export interface Caller {
  who: Principal;
  membrane: Membrane;
  engine: WorkflowEngine;
  /** Audit one call: `denied` with the reason when refused. */
  audit(action: string, target: string, outcome: 'ok' | 'denied', reason?: string): void;
  /** The watches the connection holds: each ends when it is disposed, or with the connection. */
  watches: Set<() => void>;
  stats(): Omit<ConnectionStats, 'watches'>;
  workers: WorkerAccess;
  /** The connection's live worker sessions (entrypoint calls): each ends with the connection or its token. */
  sessions: Set<(reason: string) => void>;
}

/** What the worker capabilities reach: the admin API's deploy and list, and a call to a worker (worker-fetch.ts). */
export interface WorkerAccess {
  deploy(body: unknown, who: Principal): Promise<DeployResult>;
  list(tenant: string): WorkerSummary[];
  fetch(workerId: string, request: Request): Promise<Response>;
  call(call: WorkerCall): Promise<unknown>;
}

type Access = 'read' | 'change' | 'deploy';

const NEEDS: Record<Access, string> = { read: 'read (or workflows)', change: 'workflows', deploy: 'deploy' };

/** The scope check, audited either way; the refusal names the scope that was missing. */
function allow(c: Caller, access: Access, action: string, target: string): void {
  const ok = access === 'read' ? hasScope(c.who, 'read') || hasScope(c.who, 'workflows') : hasScope(c.who, access === 'deploy' ? 'deploy' : 'workflows');
  if (!ok) {
    const reason = `this token lacks the ${NEEDS[access]} scope, which ${action} needs`;
    c.audit(action, target, 'denied', reason);
    throw new CordonError(reason, { status: 403, refusal: true });
  }
  c.audit(action, target, 'ok');
}

const CreateOptions = z.object({ id: InstanceId.optional(), params: z.json().optional() }).strict();
const Batch = z.array(CreateOptions).max(100, 'createBatch takes at most 100 instances');
const Filter = z.object({ status: z.enum(STATUSES).optional(), limit: z.number().int().min(1).max(1000).optional(), cursor: InstanceId.optional() }).strict();
const Event = z.object({ type: EventType, payload: z.json().optional() }).strict();

export class CordonMain extends RpcTarget implements CordonApi {
  readonly #c: Caller;
  readonly #tenant: string;

  constructor(caller: Caller, tenant: string) {
    super();
    this.#c = caller;
    this.#tenant = tenant;
  }

  whoami(): Whoami {
    this.#c.audit('rpc.whoami', `tenant:${this.#tenant}`, 'ok');
    const { tokenId, scopes, tenant } = this.#c.who;
    return { tokenId, scopes: [...scopes], tenant: this.#tenant, bound: tenant !== undefined };
  }

  tenant(name: unknown): CordonMain {
    const tenant = check(TenantName, name, 'tenant');
    const bound = this.#c.who.tenant;
    if (bound !== undefined && bound !== tenant) {
      const reason = `this token is bound to tenant ${bound}`;
      this.#c.audit('rpc.tenant', `tenant:${tenant}`, 'denied', reason);
      throw new CordonError(reason, { status: 403, refusal: true });
    }
    this.#c.audit('rpc.tenant', `tenant:${tenant}`, 'ok');
    return new CordonMain(this.#c, tenant);
  }

  workflows(name: unknown): WorkflowCap {
    const workflow = check(WorkflowName, name, 'workflow name');
    allow(this.#c, 'read', 'rpc.workflows', `workflow:${this.#tenant}/${workflow}`);
    return new WorkflowCap(this.#c, { tenant: this.#tenant, workflow });
  }

  workers(name: unknown): WorkerCap {
    const worker = check(WorkerName, name, 'worker name');
    allow(this.#c, 'read', 'rpc.workers', `worker:${this.#tenant}/${worker}`);
    return new WorkerCap(this.#c, `${this.#tenant}/${worker}`);
  }

  listWorkers(): WorkerSummary[] {
    allow(this.#c, 'read', 'rpc.workers.list', `tenant:${this.#tenant}`);
    return this.#c.workers.list(this.#tenant);
  }

  deploy(input: unknown): Promise<DeployResult> {
    // The tenant is this capability's: a body naming one is refused rather than silently re-aimed.
    if (input && typeof input === 'object' && 'tenant' in input)
      throw new CordonError('deploy takes no tenant: this capability is for one tenant already', { status: 400 });
    allow(this.#c, 'deploy', 'rpc.deploy', `tenant:${this.#tenant}`);
    const body = input && typeof input === 'object' ? { ...input, tenant: this.#tenant } : input;
    return this.#c.workers.deploy(body, this.#c.who);
  }

  stats(): ConnectionStats {
    this.#c.audit('rpc.stats', `tenant:${this.#tenant}`, 'ok');
    return { ...this.#c.stats(), watches: this.#c.watches.size };
  }
}

/** One worker of the connection's tenant. */
export class WorkerCap extends RpcTarget implements WorkerApi {
  readonly #c: Caller;
  readonly #id: string;
  constructor(caller: Caller, id: string) {
    super();
    this.#c = caller;
    this.#id = id;
  }
  fetch(request: unknown): Promise<Response> {
    if (!(request instanceof Request)) throw new CordonError('fetch takes a Request', { status: 400, refusal: true });
    allow(this.#c, 'change', 'rpc.workers.fetch', `worker:${this.#id}`);
    return this.#c.workers.fetch(this.#id, request);
  }
  getEntrypoint(name: unknown, options: unknown): EntrypointApi {
    const entrypoint = check(EntrypointName, name ?? 'default', 'entrypoint');
    const { props } = check(EntrypointOptions, options ?? {}, 'entrypoint options');
    // Props are what the callee trusts as set by its binding's owner: only a deploy-scoped token (which could deploy such a binding) sets them.
    if (props !== undefined) allow(this.#c, 'deploy', 'rpc.workers.props', `worker:${this.#id}/${entrypoint}`);
    allow(this.#c, 'change', 'rpc.workers.entrypoint', `worker:${this.#id}/${entrypoint}`);
    return entrypointCap(this.#c, this.#id, entrypoint, props ?? {});
  }
}

const EntrypointOptions = z.object({ props: BindingProps.optional() }).strict();
/** A method name as a call names it (an identifier; capnweb refuses Object.prototype's). */
const MethodName = z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/);

/** The stand-in's own names: capnweb's and the membrane's, never dispatched to the worker. */
class EntrypointCap extends RpcTarget {}

/**
 * An entrypoint of a worker of the connection's tenant: any method name is forwarded to the worker as a
 * Workers RPC call, with its arguments as capnweb delivered them (a function stays a reference).
 */
function entrypointCap(c: Caller, workerId: string, entrypoint: string, props: Record<string, unknown>): EntrypointApi {
  const call = (method: string, args: unknown[]) => {
    allow(c, 'change', 'rpc.workers.call', `worker:${workerId}/${entrypoint}.${method}`);
    return c.workers.call({
      workerId,
      tenant: workerId.split('/')[0]!,
      entrypoint,
      props,
      method,
      args,
      opened(session) {
        const close = (reason: string) => session.close(reason);
        c.sessions.add(close);
        session.whenEnded(() => c.sessions.delete(close));
      },
    });
  };
  return new Proxy(new EntrypointCap(), {
    get(target, key) {
      if (typeof key === 'symbol' || key === 'then' || key in target) return Reflect.get(target, key);
      if (!MethodName.safeParse(key).success) return undefined;
      return (...args: unknown[]) => call(key, args);
    },
  }) as EntrypointApi;
}

export class WorkflowCap extends RpcTarget implements WorkflowApi {
  readonly #c: Caller;
  readonly #wf: WorkflowRef;

  constructor(caller: Caller, wf: WorkflowRef) {
    super();
    this.#c = caller;
    this.#wf = wf;
  }

  async create(options: unknown): Promise<InstanceCap> {
    const o = check(CreateOptions, options ?? {}, 'create options');
    allow(this.#c, 'change', 'rpc.workflows.create', this.#target(o.id));
    const id = await this.#c.engine.create(this.#wf, o.id ?? null, toWire(o.params));
    return new InstanceCap(this.#c, { ...this.#wf, id });
  }

  async createBatch(batch: unknown): Promise<InstanceCap[]> {
    const items = check(Batch, batch, 'batch');
    allow(this.#c, 'change', 'rpc.workflows.createBatch', this.#target());
    const ids = await this.#c.engine.createBatch(
      this.#wf,
      items.map((o) => ({ id: o.id ?? null, params: toWire(o.params) })),
    );
    // An array is not wrapped by the membrane on the way out as a lone capability is: wrap each here.
    return ids.map((id) => this.#c.membrane.wrap(new InstanceCap(this.#c, { ...this.#wf, id })));
  }

  get(id: unknown): InstanceCap {
    const ref = { ...this.#wf, id: check(InstanceId, id, 'instance id') };
    allow(this.#c, 'read', 'rpc.workflows.get', this.#target(ref.id));
    this.#c.engine.status(ref); // a 404 now rather than on the first call
    return new InstanceCap(this.#c, ref);
  }

  list(filter: unknown): { instances: ReturnType<typeof plainStatus>[]; cursor: string | null } {
    const f = check(Filter, filter ?? {}, 'filter');
    allow(this.#c, 'read', 'rpc.workflows.list', this.#target());
    const limit = f.limit ?? 50;
    const instances = this.#c.engine.list(this.#wf, { status: f.status, limit, after: f.cursor }).map(plainStatus);
    return { instances, cursor: instances.length === limit ? instances[instances.length - 1]!.id : null };
  }

  #target(id?: string): string {
    return `workflow:${this.#wf.tenant}/${this.#wf.workflow}${id ? `/${id}` : ''}`;
  }
}

export class InstanceCap extends RpcTarget implements InstanceApi {
  readonly #c: Caller;
  readonly #ref: InstanceRef;

  constructor(caller: Caller, ref: InstanceRef) {
    super();
    this.#c = caller;
    this.#ref = ref;
  }

  get id(): string {
    return this.#ref.id;
  }

  status(): ReturnType<typeof plainStatus> {
    this.#allow('read', 'status');
    return plainStatus(this.#c.engine.status(this.#ref));
  }

  async pause(): Promise<void> {
    this.#allow('change', 'pause');
    await this.#c.engine.pause(this.#ref);
  }

  async resume(): Promise<void> {
    this.#allow('change', 'resume');
    await this.#c.engine.resume(this.#ref);
  }

  async terminate(): Promise<void> {
    this.#allow('change', 'terminate');
    await this.#c.engine.terminate(this.#ref);
  }

  async restart(): Promise<void> {
    this.#allow('change', 'restart');
    await this.#c.engine.restart(this.#ref);
  }

  async sendEvent(event: unknown): Promise<void> {
    const e = check(Event, event, 'event');
    this.#allow('change', 'sendEvent');
    await this.#c.engine.sendEvent(this.#ref, e.type, toWire(e.payload));
  }

  watch(listener: unknown): WatchCap {
    // A capability the caller exports (a function); anything else is refused before it is kept.
    if (typeof listener !== 'function' || typeof (listener as Partial<RpcStub<WatchListener>>).dup !== 'function') {
      throw new CordonError('invalid listener: pass a function (the engine calls it back over RPC)', { status: 400, refusal: true });
    }
    this.#allow('read', 'watch');
    return new WatchCap(this.#c, this.#ref, (listener as RpcStub<WatchListener>).dup());
  }

  #allow(access: Access, method: string): void {
    allow(this.#c, access, `rpc.workflows.${method}`, `workflow:${this.#ref.tenant}/${this.#ref.workflow}/${this.#ref.id}`);
  }
}

/** One watch: the engine's observer, forwarding to the caller's listener until disposed. */
export class WatchCap extends RpcTarget implements WatchHandle {
  readonly #end: () => void;

  constructor(caller: Caller, ref: InstanceRef, listener: RpcStub<WatchListener>) {
    super();
    let unanswered = 0;
    let ended = false;
    let stop: (() => void) | undefined;
    const end = () => {
      if (ended) return;
      ended = true;
      stop?.();
      caller.watches.delete(end);
      listener[Symbol.dispose]();
    };
    this.#end = end;
    caller.watches.add(end);
    const tell = (change: InstanceChange) => {
      if (ended) return;
      // A listener that does not answer (a stalled or hostile client) is not queued for without bound.
      if (unanswered >= MAX_UNANSWERED_EVENTS) return end();
      unanswered++;
      const event: WatchEvent =
        change.type === 'step'
          ? { type: 'step', instance: ref.id, step: plainStep(change.step) }
          : { type: 'status', instance: ref.id, status: plainStatus(change.status) };
      Promise.resolve(listener(event)).then(
        () => void unanswered--,
        () => end(), // the caller is gone, or its listener threw: the watch ends
      );
    };
    stop = caller.engine.watch(ref, tell);
    if (ended) stop();
  }

  [Symbol.dispose](): void {
    this.#end();
  }
}
