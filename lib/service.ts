/**
 * Process plumbing every service shares: a logger, the mesh node, and a clean stop on SIGTERM/SIGINT.
 * A service never dies on a bad message; an unexpected error is logged, and a truly broken state
 * exits non-zero so the launcher restarts it.
 */
import { randomBytes } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { loadSettings, meshConfig, type MeshConfig, type Settings } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { openTransport, type MeshNode } from './mesh.ts';
import { loadKeyring, type Role } from './rpc/index.ts';
import { initTelemetry } from './telemetry.ts';
import { openRelays } from './relay.ts';

/**
 * Every setting, resolved as this module loads, which is before the service's own modules: some of
 * those read theirs as they load. A bad one is the operator's to fix: one line naming it, not a stack
 * trace. (Each service's main.ts imports this module first.)
 */
const startSettings = ((): Settings => {
  try {
    const settings = loadSettings();
    meshConfig(settings); // the NATS seeds and TLS files, checked together
    return settings;
  } catch (e) {
    const service = basename(dirname(process.argv[1] ?? 'service'));
    process.stderr.write(`cordon ${service}: ${(e as Error).message}\n`);
    process.exit(1);
  }
})();

export interface ServiceContext {
  config: MeshConfig;
  settings: Settings;
  log: Logger;
  node: MeshNode;
  onStop(fn: () => void | Promise<void>): void;
}

export async function startService(role: Role, name: string, main: (ctx: ServiceContext) => Promise<void>): Promise<void> {
  const settings = startSettings;
  let config = meshConfig(settings);
  const log = createLogger(role, role === 'sandbox' ? { cordon: name } : {}, undefined, settings.mesh.logLevel);
  // A sandbox has no network: NATS and the trace collector are reached through the launcher's relays.
  const relays = role === 'sandbox' ? await openRelays(process.env) : { tcp: false };
  if (relays.natsUrl) config = { ...config, natsUrl: relays.natsUrl };
  let telemetry: ReturnType<typeof initTelemetry>;
  try {
    telemetry = initTelemetry(role, process.env, role === 'sandbox' ? name : undefined);
  } catch (e) {
    log.error('failed to start', { error: (e as Error).message }); // a bad OTEL_* setting: the message names it
    process.exit(1);
  }
  const stops: (() => void | Promise<void>)[] = [() => telemetry.shutdown()];
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const timer = setTimeout(() => process.exit(1), 5000).unref();
    for (const fn of stops.reverse()) {
      try {
        await fn();
      } catch (e) {
        log.warn('error while stopping', { error: e as Error });
      }
    }
    clearTimeout(timer);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('unhandledRejection', (reason) => log.error('unhandled rejection', { error: reason instanceof Error ? reason : String(reason) }));
  try {
    const transport = await openTransport(config, log, relays.natsUrl !== undefined);
    stops.push(() => transport.close());
    // This process among its endpoint's replicas (several sandbox processes of one cordon, several ingresses).
    const instance = randomBytes(6).toString('hex');
    const keyring = loadKeyring(role, config.dataDir, process.env, role === 'sandbox' ? name : undefined);
    const node: MeshNode = { keyring, name, instance, transport, log };
    await main({ config, settings, log, node, onStop: (fn) => stops.push(fn) });
    log.info('ready', { pid: process.pid, instance });
  } catch (e) {
    log.error('failed to start', { error: e as Error, stack: (e as Error).stack });
    process.exit(1);
  }
}
