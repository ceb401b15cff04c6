/**
 * A revocable membrane around capabilities. `wrap(target)` returns a stand-in the peer can hold and
 * call like the target; `revoke()` cuts every stand-in of the membrane (and of its child membranes)
 * at once: from then on every call fails with "capability revoked: <reason>", and the stand-ins no
 * longer reference their targets, so a revoked capability keeps nothing alive. RpcTargets returned
 * by a wrapped method are wrapped in the same membrane, so what was derived from a capability is
 * revoked with it. The supervisor keeps one membrane per worker grant (undeploy, quarantine).
 *
 * A stand-in is disposable: capnweb disposes it when the peer has released every reference to it (or
 * its session ended), and the membrane then forgets it and drops its target, so a peer that asks for
 * capabilities again and again does not pile up objects in the membrane until the next revocation.
 */
import { RpcTarget } from 'capnweb';
import { CordonError } from '../errors.ts';

/**
 * A call on a capability that was revoked (undeploy, quarantine, a revoked token) or released: 410,
 * and not a refusal, since a holder meets it through no fault of its own when revocation races a call.
 */
export class CapabilityRevokedError extends CordonError {
  constructor(reason: string) {
    super(`capability revoked: ${reason}`, { status: 410 });
    this.name = 'CapabilityRevokedError';
  }
}

interface Slot {
  target: object | null;
}

export class Membrane {
  #revoked: string | undefined;
  readonly #slots = new Set<Slot>();
  readonly #children = new Set<Membrane>();
  readonly #onRevoke: ((reason: string) => void)[] = [];

  constructor(parent?: Membrane) {
    if (parent) {
      if (parent.revoked) this.#revoked = parent.#revoked;
      else parent.#children.add(this);
    }
  }

  get revoked(): boolean {
    return this.#revoked !== undefined;
  }

  onRevoke(callback: (reason: string) => void): void {
    if (this.#revoked !== undefined) callback(this.#revoked);
    else this.#onRevoke.push(callback);
  }

  revoke(reason = 'revoked by the supervisor'): void {
    if (this.#revoked !== undefined) return;
    this.#revoked = reason;
    for (const slot of this.#slots) slot.target = null;
    this.#slots.clear();
    for (const child of this.#children) child.revoke(reason);
    this.#children.clear();
    for (const cb of this.#onRevoke.splice(0)) cb(reason);
  }

  wrap<T extends object>(target: T): T {
    if (this.#revoked !== undefined) throw new CapabilityRevokedError(this.#revoked);
    const slot: Slot = { target };
    this.#slots.add(slot);
    const membrane = this;
    // The proxy's own target is an empty stand-in with the same prototype (capnweb recognises an
    // RpcTarget by its prototype chain), so revoking can drop the only reference to the real one.
    const standIn = Object.create(Object.getPrototypeOf(target)) as T;
    const release = () => {
      const t = slot.target as { [Symbol.dispose]?: () => void } | null;
      slot.target = null;
      membrane.#slots.delete(slot);
      t?.[Symbol.dispose]?.();
    };
    return new Proxy(standIn, {
      get(_stand, key) {
        if (key === Symbol.dispose) return release;
        const t = slot.target;
        if (!t) {
          if (typeof key === 'symbol' || key === 'then') return undefined;
          return () => {
            throw new CapabilityRevokedError(membrane.#revoked ?? 'released by its holder');
          };
        }
        const value = Reflect.get(t, key, t) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const live = slot.target;
          if (!live) throw new CapabilityRevokedError(membrane.#revoked ?? 'released by its holder');
          return membrane.#wrapResult(Reflect.apply(value as (...a: unknown[]) => unknown, live, args));
        };
      },
      has(_stand, key) {
        // Always disposable, so that capnweb counts its references and tells us when they are gone.
        if (key === Symbol.dispose) return true;
        return slot.target ? Reflect.has(slot.target, key) : false;
      },
    });
  }

  #wrapResult(result: unknown): unknown {
    if (result instanceof Promise) return result.then((r) => this.#wrapResult(r));
    if (result instanceof RpcTarget) {
      if (this.#revoked !== undefined) throw new CapabilityRevokedError(this.#revoked);
      return this.wrap(result);
    }
    return result;
  }
}
