/**
 * One service process, the building block of both `cordon start` (every service on this machine,
 * restarted when it dies) and `cordon run` (exactly one, in the foreground, for a container or a
 * systemd unit). Each is spawned with this same Node binary (its command line names
 * `services/<role>/`), handed only its role's keyring and the secrets its role uses, and a sandbox is
 * confined by bubblewrap + seccomp (lib/process-sandbox.ts) with its network reached through relays.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Server } from 'node:net';
import { flightRecorderPath, sandboxCeilingMb, type NatsTls } from '../lib/config.ts';
import { KEYRING_ENV, KEYRING_FILE_ENV, type Keyring } from '../lib/rpc/index.ts';
import { findBwrap, INSECURE_ENV, processLayers, ROOT, spawnConfined } from '../lib/process-sandbox.ts';
import { ceilingSupport, inCgroup, MemoryCeilings } from '../lib/memory-ceiling.ts';
import { natsServers, otlpDestination, relayOutside, RELAY_ENV, type Destination } from '../lib/relay.ts';

/** The roles a process can be run as (`cordon run <role>`). */
export const SERVICE_ROLES = ['supervisor', 'egress', 'ingress', 'sandbox'] as const;
export type ServiceRole = (typeof SERVICE_ROLES)[number];

export interface ServiceSpec {
  id: string;
  role: ServiceRole;
  env: Record<string, string>;
  nodeArgs: string[];
}

/**
 * V8's flags for every service process. By default V8 starts a full garbage collection each time
 * 64 MiB of ArrayBuffers were allocated since the last one, however small the live heap: a service
 * passing bodies through (ingress, sandbox, egress) then spends about a third of its CPU marking a
 * heap that holds nothing. With external memory counted in V8's global limit instead, that limit grows
 * with the live heap as the old generation's does; dead buffers are still freed by the young
 * generation's collections (docs/limits.md, "Dead buffers and garbage collection").
 */
export const SERVICE_V8_FLAGS = ['--external-memory-accounted-in-global-limit'];

/**
 * The spec of one service process holding `keyring` (its role's keys, never the secret). A sandbox
 * runs one cordon; --no-node-snapshot: isolated-vm's isolates must not inherit Node's start-up snapshot.
 */
export function serviceSpec(keyring: Keyring, extraEnv: Record<string, string> = {}): ServiceSpec {
  const role = keyring.self as ServiceRole;
  const env = { [KEYRING_ENV]: keyring.encode(), ...extraEnv };
  if (role === 'sandbox')
    return { id: `sandbox:${keyring.cordon}`, role, env: { ...env, CORDON_CORDON: keyring.cordon! }, nodeArgs: ['--no-node-snapshot', ...SERVICE_V8_FLAGS] };
  return { id: role, role, env, nodeArgs: [...SERVICE_V8_FLAGS] };
}

/**
 * What a service process of `role` is given of `base`: secrets only to the role that uses them (TLS
 * to ingress; the master key and admin token to the supervisor); the mesh secret, a keyring file and
 * the debug inspector's token to none (the spec adds the keyring, and a debug cordon's token).
 */
export function serviceEnv(role: ServiceRole, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const name of Object.keys(env)) {
    if ((/^CORDON_TLS_/.test(name) && role !== 'ingress') || (/^CORDON_(MASTER_KEY|ADMIN_TOKEN)$/.test(name) && role !== 'supervisor')) delete env[name];
  }
  for (const name of ['CORDON_MESH_SECRET', KEYRING_FILE_ENV, KEYRING_ENV, 'CORDON_INSPECTOR_TOKEN_SHA256']) delete env[name];
  return env;
}

/** How sandboxes are confined (see lib/process-sandbox.ts); undefined with --insecure-no-process-sandbox. */
export interface Confine {
  bwrap: string;
  configFile?: string;
  /** Files a sandbox reads and nothing else does for it (a NATS nkey seed, NATS TLS files). */
  readOnly: string[];
  /** The relays' Unix sockets a sandbox gets in its environment (RELAY_ENV). */
  relayEnv: Record<string, string>;
  relays: Server[];
}

/**
 * The process sandbox for sandboxes spawned with `env` (its relays listening in the data dir's socket
 * directory), or an error naming each missing layer and what to do.
 */
export async function processSandbox(
  opts: { natsUrl?: string; natsTls?: NatsTls; insecureNoProcessSandbox?: boolean },
  env: NodeJS.ProcessEnv,
  report: (msg: string) => void,
): Promise<Confine | undefined> {
  if (opts.insecureNoProcessSandbox) {
    env[INSECURE_ENV] = '1';
    report(
      'WARNING: --insecure-no-process-sandbox: sandboxes run WITHOUT namespaces and seccomp; tenant code that escapes V8 owns the process. Never do this in production.',
    );
    return undefined;
  }
  delete env[INSECURE_ENV];
  const missing = processLayers().filter((l) => !l.active);
  if (missing.length) {
    throw new Error(
      `the process sandbox is not available on this machine:\n${missing.map((l) => `  - ${l.name}: ${l.detail}`).join('\n')}\n` +
        `Fix that (see \`npx cordon doctor\`), or start with --insecure-no-process-sandbox for development only.`,
    );
  }
  // What a sandbox may reach over the network, it reaches through these (lib/relay.ts).
  const confine: Confine = { bwrap: findBwrap()!, configFile: env.CORDON_CONFIG, readOnly: [], relayEnv: {}, relays: [] };
  const relay = async (name: keyof typeof RELAY_ENV, to: Destination[]) => {
    const socket = join(env.CORDON_DATA_DIR!, 'sockets', `${name}-relay.sock`);
    confine.relays.push(await relayOutside(socket, to));
    confine.relayEnv[RELAY_ENV[name]] = socket;
  };
  if (opts.natsUrl) await relay('nats', natsServers(opts.natsUrl));
  const otlp = otlpDestination(env);
  if (otlp) await relay('otlp', [otlp]);
  if (env.CORDON_NATS_NKEY_FILE) confine.readOnly.push(resolve(env.CORDON_NATS_NKEY_FILE));
  // TLS to NATS is end to end through the relay: the sandbox reads the CA (and its client certificate) itself.
  for (const f of [opts.natsTls?.ca, opts.natsTls?.cert, opts.natsTls?.key]) if (f) confine.readOnly.push(resolve(f));
  return confine;
}

/** Each sandbox process's hard memory ceiling from the kernel; without one the mesh runs, and says so loudly. */
export function memoryCeilings(env: NodeJS.ProcessEnv, report: (msg: string) => void): MemoryCeilings | undefined {
  const ceilings = MemoryCeilings.open(ceilingSupport(), sandboxCeilingMb(env) * 1024 * 1024);
  if (ceilings instanceof MemoryCeilings) {
    report(`memory ceiling: ${ceilings.describe()}`);
    return ceilings;
  }
  report(
    `WARNING: sandbox processes run WITHOUT a memory ceiling from the kernel (${ceilings.reason}). ` +
      "A sandbox process that outgrows its isolates' accounting can take all of this machine's memory; see `cordon doctor`.",
  );
  return undefined;
}

/** Back-off after a crash: quick at first (a tenant crashing its sandbox must not cost others long), capped. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;
const STABLE_AFTER_MS = 10_000;

/**
 * One service process. With `restart` (`cordon start`) it is restarted with back-off whenever it
 * dies; without (`cordon run`, where a container engine or systemd restarts), `onExit` is told.
 */
export class ServiceProcess {
  #child: ChildProcess | undefined;
  #delay = FIRST_DELAY_MS;
  #stopping = false;
  #startedAt = 0;
  restarts = 0;
  readonly spec: ServiceSpec;
  readonly #baseEnv: NodeJS.ProcessEnv;
  readonly #report: (msg: string) => void;
  readonly #confine: Confine | undefined;
  /** The kernel's memory ceiling for a sandbox process (its cgroup is named for the service). */
  readonly #ceilings: MemoryCeilings | undefined;
  readonly #cgroup: string;
  readonly #restart: boolean;
  readonly #onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;

  constructor(
    spec: ServiceSpec,
    baseEnv: NodeJS.ProcessEnv,
    report: (msg: string) => void,
    opts: { confine?: Confine; ceilings?: MemoryCeilings; restart?: boolean; onExit?: (code: number | null, signal: NodeJS.Signals | null) => void } = {},
  ) {
    this.spec = spec;
    this.#baseEnv = baseEnv;
    this.#report = report;
    this.#confine = spec.role === 'sandbox' ? opts.confine : undefined;
    this.#ceilings = spec.role === 'sandbox' ? opts.ceilings : undefined;
    this.#cgroup = spec.id.replace(':', '-');
    this.#restart = opts.restart ?? true;
    this.#onExit = opts.onExit;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    const { role } = this.spec;
    const script = join(ROOT, 'services', role, 'main.ts');
    this.#startedAt = Date.now();
    const env = { ...serviceEnv(role, this.#baseEnv), ...this.spec.env };
    let child: ChildProcess;
    let cgroup: string | undefined;
    try {
      cgroup = this.#ceilings?.join(this.#cgroup);
    } catch (e) {
      this.#report(`WARNING: ${this.spec.id} starts WITHOUT its memory ceiling: its cgroup could not be set up (${(e as Error).message})`);
    }
    const oomKills = this.#ceilings?.oomKills(this.#cgroup) ?? 0;
    if (this.#confine) {
      delete env.NODE_EXTRA_CA_CERTS; // nothing to read them from inside, and no TLS to do
      Object.assign(env, this.#confine.relayEnv);
      const files = [flightRecorderPath(env.CORDON_DATA_DIR!, this.spec.env.CORDON_CORDON!)];
      const { bwrap, configFile, readOnly } = this.#confine;
      child = spawnConfined(
        { bwrap, configFile, readOnly, nodeArgs: this.spec.nodeArgs, script, dataDir: env.CORDON_DATA_DIR!, files, cgroup },
        { env, output: 'inherit' },
      );
    } else {
      const [command, args] = cgroup
        ? inCgroup(cgroup, process.execPath, [...this.spec.nodeArgs, script])
        : [process.execPath, [...this.spec.nodeArgs, script]];
      child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    }
    this.#child = child;
    child.on('exit', (code, signal) => {
      if (this.#stopping) {
        this.#ceilings?.release(this.#cgroup);
        return this.#onExit?.(code, signal);
      }
      const oom =
        this.#ceilings && this.#ceilings.oomKills(this.#cgroup) > oomKills
          ? `, killed by the kernel at its memory ceiling of ${Math.round(this.#ceilings.bytes / 1024 / 1024)} MB`
          : '';
      if (!this.#restart) {
        if (oom) this.#report(`WARNING: ${this.spec.id}${oom}`);
        this.#ceilings?.release(this.#cgroup);
        return this.#onExit?.(code, signal);
      }
      const ranMs = Date.now() - this.#startedAt;
      if (ranMs > STABLE_AFTER_MS) this.#delay = FIRST_DELAY_MS;
      this.restarts++;
      this.#report(`${this.spec.id} exited (${signal ?? `code ${code}`}${oom}); restarting in ${this.#delay} ms`);
      setTimeout(() => this.#stopping || this.start(), this.#delay);
      this.#delay = Math.min(this.#delay * 2, MAX_DELAY_MS);
    });
  }

  /** SIGTERM, then SIGKILL after a grace period: a process stuck in an isolate may ignore SIGTERM. */
  stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.#ceilings?.release(this.#cgroup);
      return Promise.resolve();
    }
    return new Promise((resolveStop) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolveStop();
      });
      child.kill('SIGTERM');
    });
  }
}
