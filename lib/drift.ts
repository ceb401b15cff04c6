/**
 * Drift: a service running with other settings or routes than the mesh means it to (a config file
 * edited and only some processes restarted, a route update that never arrived). Every service
 * reports hashes of what it actually runs with to the supervisor, on connecting and every
 * CORDON_DRIFT_MS; the supervisor compares them with its own view (services/supervisor/drift.ts).
 */
import { createHash } from 'node:crypto';
import type { EffectiveState } from '../schemas/services.ts';
import { cordonList, loadConfig, sandboxSettings } from './config.ts';
import type { RoutingTable } from '../schemas/routes.ts';

const sha256 = (value: unknown) => createHash('sha256').update(JSON.stringify(value)).digest('hex');

/** The mesh-wide settings as this process resolved them (environment over CORDON_CONFIG file). */
export function configHash(env: NodeJS.ProcessEnv = process.env): string {
  return sha256({ mesh: loadConfig(env), cordons: cordonList(env), sandbox: sandboxSettings(env) });
}

/** Routes in their order (it settles ties between equally specific routes); host assignments in any order. */
export function routesHash(table: RoutingTable): string {
  return sha256({ routes: table.routes, hosts: table.hosts.map((h) => JSON.stringify(h)).sort() });
}

export function driftIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.CORDON_DRIFT_MS || 30_000);
  if (!Number.isInteger(n) || n < 100) throw new Error(`CORDON_DRIFT_MS must be a whole number of milliseconds ≥ 100, got ${JSON.stringify(env.CORDON_DRIFT_MS)}`);
  return n;
}

/**
 * Report `state()` through `send` every interval until the returned function is called; while
 * `send` has no supervisor to send to (it returns undefined), every second instead.
 */
export function reportDrift(send: (state: EffectiveState) => Promise<void> | undefined, state: () => EffectiveState, intervalMs = driftIntervalMs()): () => void {
  let timer: NodeJS.Timeout;
  const tick = () => {
    const sent = send(state());
    sent?.catch(() => {}); // a failed report is retried at the next tick
    timer = setTimeout(tick, sent ? intervalMs : Math.min(1000, intervalMs)).unref();
  };
  tick();
  return () => clearTimeout(timer);
}
