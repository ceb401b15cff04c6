/**
 * The capabilities the supervisor hands each kind of peer after the handshake proved its role.
 * Each class is constructed with exactly what that peer may reach; methods validate arguments,
 * because a peer is less trusted than the supervisor (a sandbox runs tenant code).
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { check } from '../../lib/rpc/validate.ts';
import type { PeerIdentity } from '../../lib/rpc/index.ts';
import type { RouteListener, RoutingTable } from '../../schemas/routes.ts';
import type { RouteHub } from './route-hub.ts';
import {
  SANDBOX_CREATION_KINDS,
  type EgressForSupervisor,
  type GrantedCapability,
  type LogEntry,
  type SupervisorForEgress,
  type SupervisorForIngress,
  type SupervisorForSandbox,
  type WorkerRunner,
  type DedicatedCordons,
  type SupervisorForAgent,
} from '../../schemas/services.ts';
import type { Creations } from './creations.ts';
import { CodeKey, type WorkerBundle } from '../../schemas/worker.ts';
import { TamperedError, type CodeStore } from './store.ts';
import type { WorkerLogs } from './logs.ts';
import type { AuditLog } from './audit.ts';
import type { Grants } from './capabilities.ts';
import type { Quarantine } from './quarantine.ts';
import type { DriftMonitor } from './drift.ts';
import type { RequestMetrics } from './request-metrics.ts';
import type { ObjectHost } from '../../schemas/durable-objects.ts';
import type { DurableObjects } from './objects/service.ts';

/**
 * The workflow runners the connected sandbox processes offered, by cordon: one per process (a cordon
 * may run several replicas); runs go to them in turn, and a run whose process died is run again on
 * another (the engine retries it).
 */
export class WorkerRunners {
  readonly #byCordon = new Map<string, RpcStub<WorkerRunner>[]>();
  /** Whose turn it is, per cordon (one count for all would let another cordon's calls skip a replica). */
  readonly #turn = new Map<string, number>();
  /** Called when a cordon's sandbox offers a runner (instances that waited for one can go). */
  onRunner: (cordon: string) => void = () => {};
  /** `replaces`: the runner this session offered before, if it offers again. */
  set(cordon: string, runner: RpcStub<WorkerRunner>, replaces?: RpcStub<WorkerRunner>): void {
    const list = (this.#byCordon.get(cordon) ?? []).filter((r) => r !== replaces);
    replaces?.[Symbol.dispose]();
    this.#byCordon.set(cordon, [...list, runner]);
    this.onRunner(cordon);
    runner.onRpcBroken(() => {
      const left = (this.#byCordon.get(cordon) ?? []).filter((r) => r !== runner);
      if (left.length) this.#byCordon.set(cordon, left);
      else this.#byCordon.delete(cordon);
    });
  }
  /** The same replica for the same key while the cordon's replicas stay the same (what it holds for that key is found again). */
  pinned(cordon: string, key: string): RpcStub<WorkerRunner> | undefined {
    const list = this.#byCordon.get(cordon);
    return list?.[createHash('sha256').update(key).digest().readUInt32BE(0) % list.length];
  }
  get(cordon: string): RpcStub<WorkerRunner> | undefined {
    const list = this.#byCordon.get(cordon);
    if (!list) return undefined;
    const turn = this.#turn.get(cordon) ?? 0;
    this.#turn.set(cordon, turn + 1);
    return list[turn % list.length];
  }
}

export const LogEntries = z
  .array(
    z.object({
      level: z.enum(['debug', 'info', 'log', 'warn', 'error']),
      message: z.string().max(64 * 1024),
      time: z.number(),
      traceId: z
        .string()
        .regex(/^[0-9a-f]{32}$/)
        .optional(),
    }),
  )
  .max(1000);

/** What the ports for sandboxes, ingress and egress are built from (main.ts wires them). */
export interface PortDeps {
  store: CodeStore;
  logs: WorkerLogs;
  audit: AuditLog;
  grants: Grants;
  quarantine: Quarantine;
  drift: DriftMonitor;
  runners: WorkerRunners;
  egress: EgressLink;
  hub: RouteHub;
  /** Ingress's reports of what it served (only ingress's port takes them). */
  metrics: RequestMetrics;
  creations: Creations;
  objects: DurableObjects;
  /** The cordon a worker's loaded Workers run in while it runs in `cordon` (loaded-cordon.ts); undefined: its own process. */
  loadedCordon(bundle: WorkerBundle, cordon: string): string | undefined;
}

/**
 * A sandbox may exchange a code key for that worker's bundle, and write that worker's log. Nothing
 * else. Everything it asks for is bound to its cordon, which its key proved in the handshake
 * (lib/rpc/keys.ts): the code keys it may use, the runner it registers, the crashes it reports, and
 * the name it has in drift and audit.
 */
export class SandboxPort extends RpcTarget implements SupervisorForSandbox {
  readonly #store: CodeStore;
  readonly #logs: WorkerLogs;
  readonly #cordon: string;
  readonly #actor: string;
  readonly #audit: AuditLog;
  readonly #grants: Grants;
  readonly #quarantine: Quarantine;
  readonly #drift: DriftMonitor;
  readonly #runners: WorkerRunners;
  readonly #creations: Creations;
  readonly #objects: DurableObjects;
  readonly #loadedCordon: PortDeps['loadedCordon'];
  /** Whether this session offered its object host: one per session (a process), so the hosts stay bounded. */
  #objectHost = false;
  /** The runner this session offered: one per session (a process), however often it registers. */
  #runner: RpcStub<WorkerRunner> | undefined;

  constructor(
    { store, logs, audit, grants, quarantine, drift, runners, creations, objects, loadedCordon }: Omit<PortDeps, 'egress' | 'hub'>,
    peer: PeerIdentity,
  ) {
    super();
    this.#loadedCordon = loadedCordon;
    this.#creations = creations;
    this.#objects = objects;
    this.#drift = drift;
    this.#runners = runners;
    this.#quarantine = quarantine;
    this.#grants = grants;
    this.#store = store;
    this.#logs = logs;
    this.#cordon = peer.name;
    this.#actor = `sandbox:${peer.name}`;
    this.#audit = audit;
  }

  async report(state: unknown): Promise<void> {
    this.#drift.report(this.#actor, state);
  }

  async loadWorker(codeKey: unknown): Promise<WorkerBundle> {
    const key = this.#checkKey(codeKey, 'loadWorker');
    const { bundle } = this.#authorize(await this.#tamperChecked(() => this.#store.verifiedBundleForKey(key)), 'loadWorker');
    // The sandbox learns where the worker's loaded Workers run now (its own process when absent), not what was chosen.
    const { loadedCordon: _chosen, ...rest } = bundle;
    const loaded = this.#loadedCordon(bundle, this.#cordon);
    return loaded === undefined ? rest : { ...rest, loadedCordon: loaded };
  }

  async registerRunner(runner: RpcStub<WorkerRunner>): Promise<void> {
    if (typeof runner !== 'function' && typeof runner !== 'object') throw new TypeError('runner must be a capability');
    const previous = this.#runner;
    this.#runner = runner.dup();
    this.#runners.set(this.#cordon, this.#runner, previous);
  }

  /** Each process of the cordon offers its own host; objects are placed on exactly one of them at a time. */
  async registerObjectHost(host: RpcStub<ObjectHost>): Promise<void> {
    if (typeof host !== 'function' && typeof host !== 'object') throw new TypeError('host must be a capability');
    if (this.#objectHost) throw new Error('this session has offered its object host already (one per sandbox process)');
    this.#objectHost = true;
    this.#objects.addHost(this.#cordon, host.dup());
  }

  async capabilities(codeKey: unknown): Promise<Record<string, GrantedCapability>> {
    const { bundle } = this.#unlock(codeKey, 'capabilities');
    return this.#grants.grant(bundle, this.#actor);
  }

  async crashed(workerIds: unknown): Promise<void> {
    const ids = check(z.array(z.string().max(130)).max(1000), workerIds, 'worker ids');
    this.#quarantine.crashed(this.#cordon, ids);
  }

  async limitHit(codeKey: unknown, kind: unknown): Promise<void> {
    const { bundle } = this.#unlock(codeKey, 'limitHit');
    this.#quarantine.signal(bundle.workerId, check(z.enum(['cpu', 'memory']), kind, 'limit'));
  }

  async created(codeKey: unknown, kind: unknown, count: unknown): Promise<void> {
    const { bundle } = this.#unlock(codeKey, 'created');
    this.#creations.record(
      bundle.workerId,
      check(z.enum(SANDBOX_CREATION_KINDS), kind, 'kind'),
      check(z.number().int().min(1).max(1_000_000), count, 'count'),
      this.#actor,
    );
  }

  async log(codeKey: unknown, entries: unknown): Promise<void> {
    const { bundle } = this.#unlock(codeKey, 'log');
    this.#logs.append(bundle.workerId, check(LogEntries, entries, 'log entries') as LogEntry[]);
  }

  #unlock(codeKey: unknown, op: string): { bundle: WorkerBundle } {
    const key = this.#checkKey(codeKey, op);
    let found: { bundle: WorkerBundle; cordon: string } | undefined;
    try {
      found = this.#store.bundleForKey(key);
    } catch (e) {
      throw this.#tampered(e);
    }
    return this.#authorize(found, op);
  }

  #checkKey(codeKey: unknown, op: string): string {
    try {
      return check(CodeKey, codeKey, 'code key');
    } catch (e) {
      this.#audit.append({ actor: this.#actor, action: 'codekey.refused', outcome: 'denied', detail: { op, reason: 'malformed' } });
      throw e;
    }
  }

  async #tamperChecked<T>(load: () => Promise<T>): Promise<T> {
    try {
      return await load();
    } catch (e) {
      throw this.#tampered(e);
    }
  }

  /** Tampered code is refused, never served, and the refusal is audited. */
  #tampered(e: unknown): Error {
    if (!(e instanceof TamperedError)) return e as Error;
    this.#audit.append({ actor: this.#actor, action: 'code.tampered', outcome: 'denied', detail: { reason: e.message } });
    return new Error('the stored code failed its integrity check and is not served');
  }

  #authorize(found: { bundle: WorkerBundle; cordon: string } | undefined, op: string): { bundle: WorkerBundle } {
    // A sandbox only ever runs workers of its own cordon: a key for another cordon is refused too.
    if (!found || found.cordon !== this.#cordon) {
      this.#audit.append({
        actor: this.#actor,
        action: 'codekey.refused',
        target: found?.bundle.workerId,
        outcome: 'denied',
        detail: { op, reason: found ? 'wrong cordon' : 'unknown key' },
      });
      throw new Error('code key refused');
    }
    if (op === 'loadWorker')
      this.#audit.append({
        actor: this.#actor,
        action: 'code.handout',
        target: found.bundle.workerId,
        outcome: 'ok',
        detail: { version: found.bundle.version },
      });
    return found;
  }
}

/** Ingress may follow the routes, report its drift and report what it served (the only reporter of request metrics). */
export class IngressPort extends RpcTarget implements SupervisorForIngress {
  readonly #hub: RouteHub;
  readonly #drift: DriftMonitor;
  readonly #metrics: RequestMetrics;
  constructor({ hub, drift, metrics }: Pick<PortDeps, 'hub' | 'drift' | 'metrics'>) {
    super();
    this.#hub = hub;
    this.#drift = drift;
    this.#metrics = metrics;
  }

  async requestStats(batch: unknown): Promise<void> {
    this.#metrics.add(batch);
  }

  async report(state: unknown): Promise<void> {
    this.#drift.report('ingress', state);
  }

  async subscribeRoutes(listener: RpcStub<RouteListener>): Promise<RoutingTable> {
    if (typeof listener !== 'function' && typeof listener !== 'object') throw new TypeError('listener must be a capability');
    return this.#hub.add(listener.dup());
  }

  async routingTable(): Promise<RoutingTable> {
    return this.#hub.table();
  }
}

/** The egress service currently connected, if any: where fetch capabilities come from. */
export class EgressLink {
  current: RpcStub<EgressForSupervisor> | undefined;
  /** Bumped whenever an egress (re)registers: what was asked of the previous one is gone with it. */
  generation = 0;

  /**
   * A per-worker object from egress, asked for again after egress restarted: capabilities handed to
   * sandboxes stay valid across egress restarts.
   */
  lazy<T>(make: (egress: RpcStub<EgressForSupervisor>) => Promise<T>): () => Promise<T> {
    let made: { generation: number; value: Promise<T> } | undefined;
    return () => {
      if (!made || made.generation !== this.generation) {
        const egress = this.current;
        if (!egress) return Promise.reject(new Error('egress is not connected; try again shortly'));
        made = { generation: this.generation, value: make(egress) };
        made.value.catch(() => (made = undefined));
      }
      return made.value;
    };
  }
}

export class EgressPort extends RpcTarget implements SupervisorForEgress {
  readonly #link: EgressLink;
  readonly #audit: AuditLog;
  readonly #drift: DriftMonitor;
  readonly #quarantine: Quarantine;
  constructor({ egress, audit, drift, quarantine }: Pick<PortDeps, 'egress' | 'audit' | 'drift' | 'quarantine'>) {
    super();
    this.#link = egress;
    this.#audit = audit;
    this.#drift = drift;
    this.#quarantine = quarantine;
  }

  async report(state: unknown): Promise<void> {
    this.#drift.report('egress', state);
  }

  async register(egress: RpcStub<EgressForSupervisor>): Promise<void> {
    if (typeof egress !== 'function' && typeof egress !== 'object') throw new TypeError('egress must be a capability');
    this.#link.current?.[Symbol.dispose]();
    this.#link.current = egress.dup();
    this.#link.generation++;
  }

  async refused(workerId: unknown, reason: unknown): Promise<void> {
    const id = check(z.string().max(130), workerId, 'worker id');
    this.#audit.append({
      actor: 'egress',
      action: 'egress.refused',
      target: id,
      outcome: 'denied',
      detail: { reason: check(z.string().max(1000), reason, 'reason') },
    });
    this.#quarantine.signal(id, 'egress');
  }
}

/**
 * The dedicated-cordon agent (`cordon run dedicated`) reads which q-/d- cordons need a process; it
 * can neither change the list nor reach any worker, code or storage through this port.
 */
export class AgentPort extends RpcTarget implements SupervisorForAgent {
  readonly #quarantine: Quarantine;
  constructor({ quarantine }: Pick<PortDeps, 'quarantine'>) {
    super();
    this.#quarantine = quarantine;
  }

  async dedicated(): Promise<DedicatedCordons> {
    return this.#quarantine.dedicated();
  }
}
