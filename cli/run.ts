/**
 * `cordon run <role> [--cordon <name>]`: exactly one service in the foreground, for a container or a
 * systemd unit — the same `ServiceProcess` that `cordon start` runs several of, without restarts
 * (the container engine or systemd restarts it). Its logs are JSON lines on stderr.
 *
 * What stops it at once, with one line and a non-zero exit: a wrong role or cordon, a setting that
 * does not parse, a keyring that is missing, unreadable, or of another role or cordon, a process
 * sandbox that this machine cannot make. What it waits for, retrying with back-off and logging each
 * attempt: NATS seeds that do not answer yet (up to CORDON_NATS_WAIT_SECONDS, then one line and exit
 * 1) and peers that are not up yet (forever: a mesh comes up in any order).
 */
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cliError } from './admin-client.ts';
import { CordonError } from '../lib/errors.ts';
import { loadSettings, meshConfig, type MeshConfig } from '../lib/config.ts';
import { createLogger } from '../lib/log.ts';
import { natsServers } from '../lib/relay.ts';
import { natsAuth } from '../lib/mesh-nats.ts';
import { checkHanded, CORDON_NAME, handedKeyring, Keyring, loadMeshSecret } from '../lib/rpc/index.ts';
import { memoryCeilings, processSandbox, serviceSpec, ServiceProcess, SERVICE_ROLES, type ServiceRole } from './service-process.ts';

export const RUN_USAGE =
  'usage: cordon run <supervisor|egress|ingress|sandbox> [--cordon <name>] [--insecure-no-process-sandbox]\n' +
  '       cordon run dedicated [--insecure-no-process-sandbox]   (the agent running quarantine and debug cordons; where the mesh secret is)';

function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function isServiceRole(value: string | undefined): value is ServiceRole {
  return (SERVICE_ROLES as readonly string[]).includes(value ?? '');
}

/**
 * The keyring `role` runs with: the one handed (CORDON_MESH_KEYRING_FILE, CORDON_MESH_KEYRING), else
 * derived from the mesh secret — which only the supervisor may create; any other role on a host
 * without the secret needs a keyring issued for it.
 */
export function runKeyring(role: ServiceRole, cordon: string | undefined, dataDir: string, env: NodeJS.ProcessEnv): Keyring {
  const handed = handedKeyring(env);
  if (handed) return checkHanded(handed, role, cordon);
  if (role !== 'supervisor' && !env.CORDON_MESH_SECRET && !existsSync(join(dataDir, 'mesh.secret'))) {
    throw new Error(
      `no keyring for ${role}${cordon ? ` of cordon ${cordon}` : ''}: set CORDON_MESH_KEYRING_FILE to a keyring issued with ` +
        `\`cordon keys issue --role ${role}${cordon ? ` --cordon ${cordon}` : ''} --out <file>\` where the mesh secret is (or run on that host)`,
    );
  }
  return Keyring.forRole(loadMeshSecret(dataDir, env), role, cordon);
}

/** The cordon of a handed keyring, to default --cordon to; a keyring that does not load is reported by runKeyring. */
function handedCordon(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return handedKeyring(env)?.ring.cordon;
  } catch {
    return undefined;
  }
}

/** The mesh settings of a `cordon run` process, every one checked that can be before anything starts. */
export function runConfig(env: NodeJS.ProcessEnv): MeshConfig {
  const config = meshConfig(loadSettings(env));
  if (config.natsUrl) {
    natsServers(config.natsUrl);
    natsAuth(env);
    for (const [name, file] of Object.entries({ CA: config.natsTls?.ca, CERT: config.natsTls?.cert, KEY: config.natsTls?.key })) {
      if (file && !readable(file)) throw new Error(`cannot read CORDON_NATS_TLS_${name}=${file}: give this process read access to it`);
    }
  }
  return config;
}

/** Runs one service until it exits (its exit code) or this process is signalled (stops it, exits 0). */
export async function runService(args: { role: string | undefined; cordon?: string; insecureNoProcessSandbox?: boolean }): Promise<number> {
  const { role } = args;
  if (!isServiceRole(role))
    throw cliError(
      `${role === undefined ? 'name a service to run' : `${JSON.stringify(role)} is not a service`} (supervisor, egress, ingress, sandbox, or dedicated)\n${RUN_USAGE}`,
    );
  const env = { ...process.env };
  let cordon: string | undefined;
  if (role === 'sandbox') {
    cordon = args.cordon ?? env.CORDON_CORDON ?? handedCordon(env) ?? 'standard';
    if (!CORDON_NAME.test(cordon)) throw cliError(`${JSON.stringify(cordon)} is not a valid cordon name (lower-case letters, digits, dashes)`);
  } else if (args.cordon !== undefined) throw cliError(`--cordon is for a sandbox only; ${role} serves every cordon`);
  const log = createLogger(role, cordon ? { cordon, component: 'run' } : { component: 'run' });
  let service: ServiceProcess;
  try {
    // Every setting this process can check before it starts, so that a wrong one is one line, not a half-started service.
    const config = runConfig(env);
    const keyring = runKeyring(role, cordon, config.dataDir, env);
    env.CORDON_DATA_DIR = config.dataDir;
    mkdirSync(join(config.dataDir, 'sockets'), { recursive: true, mode: 0o700 });
    const report = (msg: string) => log[msg.startsWith('WARNING') ? 'warn' : 'info'](msg);
    const confine =
      role === 'sandbox'
        ? await processSandbox({ natsUrl: config.natsUrl, natsTls: config.natsTls, insecureNoProcessSandbox: args.insecureNoProcessSandbox }, env, report)
        : undefined;
    const ceilings = role === 'sandbox' ? memoryCeilings(env, report) : undefined;
    let stopping = false;
    const exited = new Promise<number>((resolveExit) => {
      service = new ServiceProcess(serviceSpec(keyring), env, report, {
        confine,
        ceilings,
        restart: false,
        onExit: (code, signal) => {
          if (!stopping) log[code === 0 ? 'info' : 'error'](`${role} exited (${signal ?? `code ${code}`})`);
          ceilings?.close();
          for (const r of confine?.relays ?? []) r.close();
          resolveExit(stopping ? 0 : (code ?? (signal === 'SIGKILL' ? 137 : 1)));
        },
      });
    });
    const stop = () => {
      stopping = true;
      void service.stop();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    service!.start();
    log.info('started', { service: service!.spec.id, pid: service!.pid, transport: config.natsUrl ? 'nats' : 'unix' });
    return await exited;
  } catch (e) {
    if (e instanceof CordonError) throw e;
    log.error((e as Error).message);
    return 1;
  }
}
