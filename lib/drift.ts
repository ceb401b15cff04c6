/**
 * Drift: a service running with other settings or routes than the mesh means it to (a config file
 * edited and only some processes restarted, a route update that never arrived). Every service
 * reports hashes of what it actually runs with to the supervisor, on connecting and every
 * CORDON_DRIFT_MS; the supervisor compares them with its own view (services/supervisor/drift.ts).
 */
import { createHash } from 'node:crypto';
import type { EffectiveState } from '../schemas/services.ts';
import { loadSettings, type Settings } from './config.ts';
import type { HostAssignment, Route } from '../schemas/routes.ts';

const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** Every setting of every service as this process resolved them (environment over CORDON_CONFIG file). */
export function configHash(settings: Settings = loadSettings()): string {
  return sha256(settings);
}

/** A route as drift compares it: all that decides which worker a request reaches, its order (it settles ties) included. */
export function routeText(r: Route): string {
  return JSON.stringify([r.order, r.pattern, r.tenant, r.cordon, r.target.workerId, r.target.version, r.target.codeKey]);
}

/**
 * The digest of a routing table, kept up as routes come and go rather than hashed whole for each report
 * (at 50,000 routes that cost tens of milliseconds a time): the XOR of each route's hash — no two routes
 * share an order, so none cancels another — and the host assignments' hash, in any order. The supervisor
 * keeps one of what it published, ingress one of what it applied; they differ when an update was lost.
 */
export class RoutesDigest {
  readonly #routes = Buffer.alloc(32);
  #hosts = sha256([]);

  /** Adds a route (by its `routeText`) that was not in, or takes out one that was. */
  toggle(text: string): void {
    const h = createHash('sha256').update(text).digest();
    for (let i = 0; i < 32; i++) this.#routes[i]! ^= h[i]!;
  }

  setHosts(hosts: HostAssignment[]): void {
    this.#hosts = sha256(hosts.map((h) => `${h.host}\n${h.tenant}`).sort());
  }

  value(): string {
    return createHash('sha256').update(this.#routes).update(this.#hosts).digest('hex');
  }
}

/**
 * Report `state()` through `send` every interval until the returned function is called; while
 * `send` has no supervisor to send to (it returns undefined), every second instead.
 */
export function reportDrift(send: (state: EffectiveState) => Promise<void> | undefined, state: () => EffectiveState, intervalMs: number): () => void {
  let timer: NodeJS.Timeout;
  const tick = () => {
    const sent = send(state());
    sent?.catch(() => {}); // a failed report is retried at the next tick
    timer = setTimeout(tick, sent ? intervalMs : Math.min(1000, intervalMs)).unref();
  };
  tick();
  return () => clearTimeout(timer);
}
