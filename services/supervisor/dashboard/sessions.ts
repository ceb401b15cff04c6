/**
 * Dashboard sessions, held in the supervisor's memory only: a random session id (the browser's cookie)
 * maps to the admin-API token signed in with and a CSRF token. The token never reaches the browser
 * again; every request re-authenticates it, so revoking the token ends its sessions. A session ends
 * on sign-out, after IDLE_MS without use, or ABSOLUTE_MS after sign-in, whichever comes first; a
 * supervisor restart ends them all.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const IDLE_MS = 30 * 60_000;
export const ABSOLUTE_MS = 12 * 3600_000;
/** More live sessions than any operator team opens: past it the least recently used one ends. */
const MAX_SESSIONS = 1000;

export interface Session {
  token: string;
  csrf: string;
  createdAt: number;
  usedAt: number;
}

export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** A new session for `token` (already authenticated by the caller): its id and CSRF token. */
  create(token: string): { id: string; csrf: string } {
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(32).toString('base64url');
    const now = this.#now();
    if (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    this.#sessions.set(id, { token, csrf, createdAt: now, usedAt: now });
    return { id, csrf };
  }

  /** The live session `id` names (its idle clock restarted), or undefined; an expired one is ended. */
  use(id: string): Session | undefined {
    const s = this.#sessions.get(id);
    if (!s) return undefined;
    const now = this.#now();
    if (now - s.usedAt > IDLE_MS || now - s.createdAt > ABSOLUTE_MS) {
      this.#sessions.delete(id);
      return undefined;
    }
    s.usedAt = now;
    // Re-inserted so that the Map's order is least recently used first (the eviction order).
    this.#sessions.delete(id);
    this.#sessions.set(id, s);
    return s;
  }

  end(id: string): void {
    this.#sessions.delete(id);
  }

  get size(): number {
    return this.#sessions.size;
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
