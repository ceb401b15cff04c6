/**
 * `cordon start`: runs the whole mesh on one machine. Each service is its own OS process (its
 * command line names `services/<name>/`), spawned with this same Node binary, handed only the mesh
 * keys its role needs, and restarted with back-off whenever it dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cordonList, flightRecorderPath, loadConfig, sandboxCeilingMb, type MeshConfig } from '../lib/config.ts';
import { CORDON_NAME, Keyring, loadMeshSecret, type Role } from '../lib/rpc/index.ts';
import { adminTokenPath, loadAdminToken } from '../lib/admin-token.ts';
import { findBwrap, INSECURE_ENV, processLayers, spawnConfined } from '../lib/process-sandbox.ts';
import { ceilingSupport, inCgroup, MemoryCeilings } from '../lib/memory-ceiling.ts';
import { natsServers, otlpDestination, relayOutside, RELAY_ENV, type Destination } from '../lib/relay.ts';
import type { Server } from 'node:net';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface ServiceSpec {
  id: string;
  role: Role;
  env: Record<string, string>;
  nodeArgs: string[];
}

/** Back-off after a crash: quick at first (a tenant crashing its sandbox must not cost others long), capped. */
const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5000;
const STABLE_AFTER_MS = 10_000;

class Supervised {
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

  constructor(spec: ServiceSpec, baseEnv: NodeJS.ProcessEnv, report: (msg: string) => void, confine?: Confine, ceilings?: MemoryCeilings) {
    this.spec = spec;
    this.#baseEnv = baseEnv;
    this.#report = report;
    this.#confine = spec.role === 'sandbox' ? confine : undefined;
    this.#ceilings = spec.role === 'sandbox' ? ceilings : undefined;
    this.#cgroup = spec.id.replace(':', '-');
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    const { role } = this.spec;
    const script = join(ROOT, 'services', role, 'main.ts');
    this.#startedAt = Date.now();
    const env = { ...this.#baseEnv, ...this.spec.env };
    // Secrets go only to the process that uses them: TLS to ingress; the master key and admin token to the supervisor.
    for (const name of Object.keys(env)) {
      if ((/^CORDON_TLS_/.test(name) && role !== 'ingress') || (/^CORDON_(MASTER_KEY|ADMIN_TOKEN)$/.test(name) && role !== 'supervisor')) delete env[name];
    }
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
      child = spawnConfined({ ...this.#confine, nodeArgs: this.spec.nodeArgs, script, dataDir: env.CORDON_DATA_DIR!, files, cgroup }, { env, output: 'inherit' });
    } else {
      const [command, args] = cgroup ? inCgroup(cgroup, process.execPath, [...this.spec.nodeArgs, script]) : [process.execPath, [...this.spec.nodeArgs, script]];
      child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    }
    this.#child = child;
    child.on('exit', (code, signal) => {
      if (this.#stopping) return this.#ceilings?.release(this.#cgroup);
      const ranMs = Date.now() - this.#startedAt;
      if (ranMs > STABLE_AFTER_MS) this.#delay = FIRST_DELAY_MS;
      this.restarts++;
      const oom = this.#ceilings && this.#ceilings.oomKills(this.#cgroup) > oomKills ? `, killed by the kernel at its memory ceiling of ${Math.round(this.#ceilings.bytes / 1024 / 1024)} MB` : '';
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

/** A process's keys, never the secret; a sandbox's are its own cordon's only. */
function keyring(secret: Buffer, role: Role, cordon?: string): Record<string, string> {
  return { CORDON_MESH_KEYRING: Keyring.forRole(secret, role, cordon).encode() };
}

/** A sandbox process for one cordon. --no-node-snapshot: isolated-vm's isolates must not inherit Node's start-up snapshot. */
function sandboxSpec(secret: Buffer, cordon: string): ServiceSpec {
  return { id: `sandbox:${cordon}`, role: 'sandbox', env: { ...keyring(secret, 'sandbox', cordon), CORDON_CORDON: cordon }, nodeArgs: ['--no-node-snapshot'] };
}

export function serviceSpecs(secret: Buffer, cordons: string[]): ServiceSpec[] {
  const expect = ['ingress', 'egress', ...cordons.map((c) => `sandbox:${c}`)].join(',');
  return [
    { id: 'supervisor', role: 'supervisor', env: { ...keyring(secret, 'supervisor'), CORDON_EXPECT: expect, CORDON_CORDONS: cordons.join(',') }, nodeArgs: [] },
    { id: 'egress', role: 'egress', env: keyring(secret, 'egress'), nodeArgs: [] },
    ...cordons.map((c) => sandboxSpec(secret, c)),
    { id: 'ingress', role: 'ingress', env: keyring(secret, 'ingress'), nodeArgs: [] },
  ];
}

/** How sandboxes are confined (see lib/process-sandbox.ts); undefined with --insecure-no-process-sandbox. */
interface Confine {
  bwrap: string;
  configFile?: string;
  /** The relays' Unix sockets a sandbox gets in its environment (RELAY_ENV). */
  relayEnv: Record<string, string>;
}

/** The process sandbox, or an error naming each missing layer and what to do. */
async function processSandbox(opts: { natsUrl?: string; insecureNoProcessSandbox?: boolean }, env: NodeJS.ProcessEnv, report: (msg: string) => void, relays: Server[]): Promise<Confine | undefined> {
  if (opts.insecureNoProcessSandbox) {
    env[INSECURE_ENV] = '1';
    report('WARNING: --insecure-no-process-sandbox: sandboxes run WITHOUT namespaces and seccomp; tenant code that escapes V8 owns the process. Never do this in production.');
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
  const relayEnv: Record<string, string> = {};
  const relay = async (name: keyof typeof RELAY_ENV, to: Destination[]) => {
    const socket = join(env.CORDON_DATA_DIR!, 'sockets', `${name}-relay.sock`);
    relays.push(await relayOutside(socket, to));
    relayEnv[RELAY_ENV[name]] = socket;
  };
  if (opts.natsUrl) await relay('nats', natsServers(opts.natsUrl));
  const otlp = otlpDestination(env);
  if (otlp) await relay('otlp', [otlp]);
  return { bwrap: findBwrap()!, configFile: env.CORDON_CONFIG, relayEnv };
}

/** Each sandbox process's hard memory ceiling from the kernel; without one the mesh runs, and says so loudly. */
function memoryCeilings(env: NodeJS.ProcessEnv, report: (msg: string) => void): MemoryCeilings | undefined {
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

export interface Mesh {
  services: Supervised[];
  stop(): Promise<void>;
}

export async function startMesh(opts: { natsUrl?: string; insecureNoProcessSandbox?: boolean } = {}): Promise<Mesh> {
  const env = { ...process.env };
  if (opts.natsUrl) env.CORDON_NATS_URL = opts.natsUrl;
  const config = loadConfig(env);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const secret = loadMeshSecret(config.dataDir, env);
  loadAdminToken(config.dataDir);
  // Children get their role's keys, never the secret itself.
  delete env.CORDON_MESH_SECRET;
  delete env.CORDON_INSPECTOR_TOKEN_SHA256; // only a debug cordon's process is given one
  env.CORDON_DATA_DIR = config.dataDir;
  const report = (msg: string) => process.stderr.write(`cordon: ${msg}\n`);
  mkdirSync(join(config.dataDir, 'sockets'), { recursive: true, mode: 0o700 });
  const relays: Server[] = [];
  const confine = await processSandbox(opts, env, report, relays);
  const ceilings = memoryCeilings(env, report);
  const services = serviceSpecs(secret, cordonList(env)).map((s) => new Supervised(s, env, report, confine, ceilings));
  for (const s of services) s.start();
  // Cordons the supervisor adds at run time (quarantine: a cordon of one) each get their own process.
  const dynamic = new Map<string, Supervised>();
  const cordonsFile = join(config.dataDir, 'cordons.json');
  const sync = () => {
    let wanted: string[] = [];
    let inspector: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(readFileSync(cordonsFile, 'utf8')) as { dynamic?: unknown; inspector?: unknown };
      if (Array.isArray(parsed.dynamic)) wanted = parsed.dynamic.filter((c): c is string => typeof c === 'string' && CORDON_NAME.test(c));
      if (parsed.inspector && typeof parsed.inspector === 'object') inspector = parsed.inspector as Record<string, unknown>;
    } catch {
      return; // not written yet, or mid-rename
    }
    for (const c of wanted) {
      if (dynamic.has(c)) continue;
      const spec = sandboxSpec(secret, c);
      // A debug cordon (`cordon debug`): its process alone has the inspector, opened by this token's holder.
      const token = inspector[c];
      if (c.startsWith('d-') && typeof token === 'string' && /^[0-9a-f]{64}$/.test(token)) spec.env.CORDON_INSPECTOR_TOKEN_SHA256 = token;
      const s = new Supervised(spec, env, report, confine, ceilings);
      dynamic.set(c, s);
      report(`starting a dedicated sandbox for cordon ${c}`);
      s.start();
    }
    for (const [c, s] of dynamic) {
      if (wanted.includes(c)) continue;
      dynamic.delete(c);
      report(`stopping the sandbox of cordon ${c}`);
      void s.stop();
    }
  };
  const watcher = setInterval(sync, 500);
  return {
    services,
    stop: async () => {
      clearInterval(watcher);
      await Promise.all([...services, ...dynamic.values()].map((s) => s.stop()));
      ceilings?.close();
      for (const r of relays) r.close();
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
