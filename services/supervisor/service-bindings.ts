/**
 * Service bindings, the supervisor's part: the capability behind `env.<BINDING>` of type `service`.
 * It is made for one calling worker and one binding, so the callee is what the binding's owner
 * deployed, never what the caller's code says; its props are the binding's. A call opens a session
 * in the callee's cordon (its sandbox process serves it: WorkerRunner.serve) and the two pipe ends
 * are handed across; the supervisor relays the session's messages without reading them.
 *
 * Tenancy: a binding names a worker of its own tenant (`name`) or another tenant's (`tenant/name`).
 * Another tenant's worker is called only if its owner granted it: the callee's deploy lists the
 * caller's tenant in `rpcCallers` (`cordon.rpc_callers`, `--allow-rpc-from`). Refused otherwise, and
 * the refusal is audited (and counts toward the caller's quarantine, as every capability refusal).
 *
 * Revocation: every live session is registered (ServiceSessions) with what it was opened under — the
 * callee, its cordon, the caller's tenant. When workers change (deploy, rollback, delete, a move in
 * or out of quarantine) the sessions are checked again, and one whose callee was undeployed or moved,
 * or whose caller's tenant is no longer granted, is closed at both ends at once: stubs obtained
 * through it fail with the reason. A redeploy that keeps the grant leaves live sessions on the
 * version they were opened on, as Cloudflare lets in-flight requests finish on the old version; the
 * caller's next session reaches the new one.
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { CordonError } from '../../lib/errors.ts';
import type { CoreBinding, WorkerBundle } from '../../schemas/worker.ts';
import type { RpcPipe, ServiceBindingApi } from '../../schemas/service-bindings.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import type { CodeStore } from './store.ts';
import { guarded, type Audit } from './guarded.ts';

export interface ServiceBindingDeps {
  store: Pick<CodeStore, 'worker' | 'bundleForKey'>;
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
  sessions: ServiceSessions;
}

/** The worker a binding of `callerTenant` names, as `tenant/name`. */
export function calleeOf(callerTenant: string, service: string): string {
  return service.includes('/') ? service : `${callerTenant}/${service}`;
}

/**
 * One pipe end, held here for the other side. Each side gets a relay of the supervisor's, never the
 * other side's own capability: a capability that came from a session is not handed back into it (a
 * caller and callee in one cordon share that session; capnweb does not take its own export back as a
 * stub), and the relay is where a message is checked to be text, and where a release is passed on.
 */
export class RelayPipe extends RpcTarget implements RpcPipe {
  #to: RpcStub<RpcPipe> | undefined;
  /** Told once, when this relay lets go of its end (closed, released or revoked). */
  onEnd: () => void = () => {};
  constructor(to: RpcStub<RpcPipe>) {
    super();
    this.#to = to;
  }
  async send(message: unknown): Promise<void> {
    if (typeof message !== 'string') throw new TypeError('a pipe message is a string');
    if (!this.#to) throw new Error('the RPC session has ended');
    await this.#to.send(message);
  }
  async close(reason: unknown): Promise<void> {
    const to = this.#to;
    this.#to = undefined;
    if (!to) return;
    this.onEnd();
    await Promise.resolve(to.close(typeof reason === 'string' ? reason.slice(0, 500) : 'closed')).catch(() => {});
    to[Symbol.dispose]();
  }
  /** The side holding this let go: the other side's end is released too (it closes there). */
  [Symbol.dispose](): void {
    const to = this.#to;
    this.#to = undefined;
    if (to) this.onEnd();
    to?.[Symbol.dispose]();
  }
}

/** A relay as the registry sees it. */
export interface SessionEnd {
  close(reason: string): Promise<void>;
  onEnd: () => void;
}

/** A live session, with what it was opened under. */
interface LiveSession {
  callee: string;
  cordon: string;
  callerTenant: string;
  ends: [SessionEnd, SessionEnd];
}

/** The live Workers RPC sessions the supervisor relays, so that they can be revoked (see the top of this file). */
export class ServiceSessions {
  readonly #live = new Set<LiveSession>();
  readonly #store: Pick<CodeStore, 'worker' | 'bundleForKey'>;
  constructor(store: Pick<CodeStore, 'worker' | 'bundleForKey'>) {
    this.#store = store;
  }

  get size(): number {
    return this.#live.size;
  }

  /** Registers a session; it leaves the registry when either end lets go. */
  add(callee: string, cordon: string, callerTenant: string, ends: [SessionEnd, SessionEnd]): void {
    const session: LiveSession = { callee, cordon, callerTenant, ends };
    this.#live.add(session);
    for (const end of ends) end.onEnd = () => this.#live.delete(session);
  }

  /** Why `s` may no longer run, if it may not. */
  #revoked(s: LiveSession): string | undefined {
    const worker = this.#store.worker(s.callee);
    if (!worker) return `${s.callee} was undeployed`;
    if (worker.cordon !== s.cordon) return `${s.callee} was moved to cordon ${worker.cordon}`;
    if (worker.tenant !== s.callerTenant && !(this.#store.bundleForKey(worker.codeKey)?.bundle.rpcCallers ?? []).includes(s.callerTenant))
      return `${s.callee}'s owner no longer grants ${s.callerTenant}`;
    return undefined;
  }

  /** Workers changed: every session that may no longer run is closed at both ends, with the reason. */
  check(): void {
    for (const s of [...this.#live]) {
      const why = this.#revoked(s);
      if (why === undefined) continue;
      this.#live.delete(s);
      const reason = `the RPC session to ${s.callee} was revoked: ${why}`;
      for (const end of s.ends) void end.close(reason);
    }
  }
}

export class ServiceCap extends RpcTarget implements ServiceBindingApi {
  readonly #deps: ServiceBindingDeps;
  readonly #caller: string;
  readonly #binding: CoreBinding;
  readonly #audit: Audit;
  constructor(deps: ServiceBindingDeps, caller: WorkerBundle, binding: CoreBinding, audit: Audit) {
    super();
    this.#deps = deps;
    this.#audit = audit;
    this.#caller = caller.workerId;
    this.#binding = binding;
  }

  connect(caller: unknown): Promise<RpcPipe> {
    return guarded(this.#audit, 'service.connect', () => this.#connect(caller));
  }

  async #connect(caller: unknown): Promise<RpcPipe> {
    if (typeof (caller as { dup?: unknown } | null)?.dup !== 'function') throw new CordonError('caller must be a capability', { status: 400, refusal: true });
    const callerTenant = this.#caller.split('/')[0]!;
    const calleeId = calleeOf(callerTenant, this.#binding.service!);
    const callee = this.#deps.store.worker(calleeId);
    const what = `${this.#caller} binding ${this.#binding.name} to ${calleeId}`;
    if (!callee) throw new CordonError(`${what}: no such worker (deploy it first)`, { status: 404 });
    if (callee.tenant !== callerTenant) {
      const granted = this.#deps.store.bundleForKey(callee.codeKey)?.bundle.rpcCallers ?? [];
      if (!granted.includes(callerTenant))
        throw new CordonError(
          `${what}: refused: ${calleeId} belongs to another tenant, which has not granted ${callerTenant} (its owner deploys it with --allow-rpc-from ${callerTenant})`,
          { status: 403, refusal: true },
        );
    }
    const runner = this.#deps.runner(callee.cordon);
    if (!runner) throw new CordonError(`${what}: its cordon ${callee.cordon} is not connected; retry`, { status: 503 });
    const callerEnd = new RelayPipe((caller as RpcStub<RpcPipe>).dup());
    try {
      const calleeEnd = (await runner.serve(
        callee.codeKey,
        this.#binding.entrypoint ?? 'default',
        this.#binding.props ?? {},
        callerEnd,
      )) as unknown as RpcStub<RpcPipe>;
      const calleeRelay = new RelayPipe(calleeEnd);
      this.#deps.sessions.add(calleeId, callee.cordon, callerTenant, [callerEnd, calleeRelay]);
      return calleeRelay;
    } catch (e) {
      callerEnd[Symbol.dispose]();
      // The callee's sandbox says why it could not serve (no such entrypoint, a limit): the caller reads it.
      throw new CordonError(`${what}: ${(e as Error).message}`.slice(0, 1000), { status: 502 });
    }
  }
}
