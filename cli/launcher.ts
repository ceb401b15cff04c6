/**
 * `cordon start`: runs the whole mesh on one machine. Each service is its own OS process — the same
 * `ServiceProcess` that `cordon run` runs one of (cli/service-process.ts) — handed only the mesh keys
 * its role needs, and restarted with back-off whenever it dies.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cordonList, loadConfig, type MeshConfig } from '../lib/config.ts';
import { Keyring, loadMeshSecret } from '../lib/rpc/index.ts';
import { adminTokenPath, loadAdminToken } from '../lib/admin-token.ts';
import { memoryCeilings, processSandbox, serviceSpec, ServiceProcess, type ServiceSpec } from './service-process.ts';
import { DedicatedSandboxes, dedicatedCordons } from './dedicated.ts';

/** The specs of every service on one machine, each with its role's keyring (a sandbox's: its own cordon's). */
export function serviceSpecs(secret: Buffer, cordons: string[]): ServiceSpec[] {
  return [
    serviceSpec(Keyring.forRole(secret, 'supervisor'), { CORDON_CORDONS: cordons.join(',') }),
    serviceSpec(Keyring.forRole(secret, 'egress')),
    ...cordons.map((c) => serviceSpec(Keyring.forRole(secret, 'sandbox', c))),
    serviceSpec(Keyring.forRole(secret, 'ingress')),
  ];
}

export interface Mesh {
  services: ServiceProcess[];
  stop(): Promise<void>;
}

export async function startMesh(opts: { natsUrl?: string; insecureNoProcessSandbox?: boolean } = {}): Promise<Mesh> {
  const env = { ...process.env };
  if (opts.natsUrl) env.CORDON_NATS_URL = opts.natsUrl;
  const config = loadConfig(env);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const secret = loadMeshSecret(config.dataDir, env);
  loadAdminToken(config.dataDir);
  // Children get their role's keys, never the secret itself (serviceEnv); only a debug cordon's process an inspector token.
  env.CORDON_DATA_DIR = config.dataDir;
  const report = (msg: string) => process.stderr.write(`cordon: ${msg}\n`);
  mkdirSync(join(config.dataDir, 'sockets'), { recursive: true, mode: 0o700 });
  const confine = await processSandbox({ ...opts, natsTls: config.natsTls }, env, report);
  const ceilings = memoryCeilings(env, report);
  const services = serviceSpecs(secret, cordonList(env)).map((s) => new ServiceProcess(s, env, report, { confine, ceilings }));
  for (const s of services) s.start();
  // Cordons the supervisor adds at run time (quarantine: a cordon of one) each get their own process.
  const dedicated = new DedicatedSandboxes(secret, env, report, { confine, ceilings });
  const cordonsFile = join(config.dataDir, 'cordons.json');
  const sync = () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(cordonsFile, 'utf8'));
    } catch {
      return; // not written yet, or mid-rename
    }
    dedicated.apply(dedicatedCordons(parsed));
  };
  const watcher = setInterval(sync, 500);
  return {
    services,
    stop: async () => {
      clearInterval(watcher);
      await Promise.all([...services.map((s) => s.stop()), dedicated.stop()]);
      ceilings?.close();
      for (const r of confine?.relays ?? []) r.close();
    },
  };
}

async function waitHealthy(adminPort: number, timeoutMs: number): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, string> = {};
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${adminPort}/healthz`);
      const body = (await res.json()) as { services: Record<string, string> };
      last = body.services;
      if (res.status === 200) return last;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the mesh did not become healthy within ${timeoutMs / 1000} s; services: ${JSON.stringify(last)}`);
}

/** The `cordon start` command: start, report where everything is, run until signalled. */
export async function runStart(opts: { natsUrl?: string; insecureNoProcessSandbox?: boolean }): Promise<void> {
  let config: MeshConfig;
  let mesh: Mesh;
  try {
    config = loadConfig(); // a bad setting stops here, in one line, before any process starts
    mesh = await startMesh(opts);
  } catch (e) {
    process.stderr.write(`cordon: ${(e as Error).message}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('cordon: stopping…\n');
    await mesh.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.stderr.write(`cordon: starting ${mesh.services.map((s) => s.spec.id).join(', ')} (data dir ${config.dataDir})\n`);
  try {
    await waitHealthy(config.adminPort, 60_000);
  } catch (e) {
    process.stderr.write(`cordon: ${(e as Error).message}\n`);
    return;
  }
  process.stdout.write(
    [
      'Cordon is up.',
      `  HTTP:       http://127.0.0.1:${config.httpPort}`,
      `  HTTPS:      https://localhost:${config.httpsPort}  (development certificate in ${join(config.dataDir, 'tls', 'dev.crt')} unless CORDON_TLS_CERT is set)`,
      `  Admin API:  http://127.0.0.1:${config.adminPort}  (token in ${adminTokenPath(config.dataDir)})`,
      `  Health:     http://127.0.0.1:${config.adminPort}/healthz`,
      `  Transport:  ${opts.natsUrl ? `NATS ${opts.natsUrl}` : `Unix sockets in ${join(config.dataDir, 'sockets')}`}`,
      `  Deploy:     npx cordon deploy examples/hello/index.ts --name hello --route '*/hello*'`,
      '',
    ].join('\n'),
  );
}
