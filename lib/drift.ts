/**
 * Drift: a service running with other settings or routes than the mesh means it to (a config file
 * edited and only some processes restarted, a route update that never arrived). Every service
 * reports hashes of what it actually runs with to the supervisor, on connecting and every
 * CORDON_DRIFT_MS; the supervisor compares them with its own view (services/supervisor/drift.ts).
 */
import { createHash } from 'node:crypto';
import type { EffectiveState } from '../schemas/services.ts';
import { loadSettings, type Settings } from './config.ts';
import type { RoutingTable } from '../schemas/routes.ts';

const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** Every setting of every service as this process resolved them (environment over CORDON_CONFIG file). */
export function configHash(settings: Settings = loadSettings()): string {
  return sha256(settings);
}

/** Routes in their order (it settles ties between equally specific routes); host assignments in any order. */
export function routesHash(table: RoutingTable): string {
  return sha256({ routes: table.routes, hosts: table.hosts.map((h) => JSON.stringify(h)).sort() });
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
