/**
 * The Workers RPC sessions the supervisor relays to each Durable Object's instance (a stub's RPC
 * methods), so that they end when the instance's lease does. A holder that stopped answering (dead,
 * paused, wedged) cannot end its sessions itself; without this, a caller's stub would keep its session
 * to the instance that lost the object and learn of it only by a call failing there.
 */
import { INSTANCE_ENDED } from '../../../schemas/object-sessions.ts';
import type { SessionEnd } from '../service-bindings.ts';

interface Session {
  /** The lease it was opened under. */
  fence: number;
  ends: [SessionEnd, SessionEnd];
}

export class ObjectSessions {
  readonly #byKey = new Map<string, Set<Session>>();

  /** Registers a session to object `key` under lease `fence`; it leaves the registry when either end lets go. */
  add(key: string, fence: number, ends: [SessionEnd, SessionEnd]): void {
    let sessions = this.#byKey.get(key);
    if (!sessions) this.#byKey.set(key, (sessions = new Set()));
    const session: Session = { fence, ends };
    const forget = () => {
      sessions.delete(session);
      if (sessions.size === 0 && this.#byKey.get(key) === sessions) this.#byKey.delete(key);
    };
    for (const end of ends) end.onEnd = forget;
    sessions.add(session);
  }

  /** Lease `fence` of `key` ended (`why`): each session opened under it is closed at both ends, saying so. */
  end(key: string, fence: number, why: string): void {
    const sessions = this.#byKey.get(key);
    if (!sessions) return;
    const reason = `${INSTANCE_ENDED} (${why}): a call in flight on this stub may or may not have run; the stub's next call reaches the object's new instance`;
    for (const s of [...sessions]) {
      if (s.fence > fence) continue;
      sessions.delete(s);
      for (const end of s.ends) void end.close(reason);
    }
    if (sessions.size === 0 && this.#byKey.get(key) === sessions) this.#byKey.delete(key);
  }
}
