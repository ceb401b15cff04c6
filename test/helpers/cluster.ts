/**
 * A cluster as an operator runs one, for the tests: each service a `cordon run` process with its own
 * data dir and a keyring file issued by `cordon keys issue` (no service holds the mesh secret), over a
 * real nats-server cluster on loopback.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { freePort, ROOT, waitFor } from './mesh.ts';
import { findBwrap } from '../../lib/process-sandbox.ts';
import { startNatsCluster, type NatsNode, type NatsServerTls } from '../../lib/rpc/testing/nats-server.ts';

const execFileP = promisify(execFile);
export const CLI = join(ROOT, 'cli/cordon.mjs');
/** Sandboxes run confined as in production; without bubblewrap (a developer machine) unconfined, with a note. */
export const SANDBOX_FLAGS = findBwrap() || process.env.CORDON_REQUIRE_ALL === '1' ? [] : ['--insecure-no-process-sandbox'];

export async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { cwd: ROOT, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

export interface Running {
  child: ChildProcess;
  output(): string;
}

export function runService(args: string[], env: NodeJS.ProcessEnv): Running {
  let out = '';
  const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

export async function stopService(s: Running): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The Node process running `services/sandbox/main.ts` with data dir `dataDir` (inside bwrap when confined). */
export function sandboxNode(dataDir: string): number | undefined {
  const node = realpathSync(process.execPath);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0] !== node || !cmdline.some((a) => a.endsWith('services/sandbox/main.ts'))) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(`CORDON_DATA_DIR=${dataDir}\0`)) return Number(entry);
    } catch {
      // gone while we looked
    }
  }
  return undefined;
}

export interface RunCluster {
  nats: { url: string; nodes: NatsNode[]; stop(): Promise<void> };
  root: string;
  /** The operator's dir: the mesh secret, the keyrings (keyFile). */
  operator: string;
  base: NodeJS.ProcessEnv;
  httpUrl: string;
  adminPort: number;
  adminEnv: NodeJS.ProcessEnv;
  services: Running[];
  keyFile(name: string): string;
  /** Starts `cordon run <role>` with its own data dir `dirs/<dir>` (default: the role). */
  start(role: string, opts?: { cordon?: string; dir?: string; env?: NodeJS.ProcessEnv }): Running;
  dir(name: string): string;
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A 3-node NATS cluster, a mesh secret and keyrings for every role and `cordons`; no service started yet. */
export async function runCluster(opts: {
  cordons: string[];
  auth: { user: string; pass: string };
  tls?: NatsServerTls;
  env?: NodeJS.ProcessEnv;
}): Promise<RunCluster> {
  const nats = await startNatsCluster({ size: 3, auth: opts.auth, tls: opts.tls });
  const root = mkdtempSync(join(tmpdir(), 'cordon-cluster-'));
  const operator = join(root, 'operator');
  const keys = join(root, 'keys');
  mkdirSync(operator, { mode: 0o700 });
  mkdirSync(keys, { mode: 0o700 });
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const base: NodeJS.ProcessEnv = {
    ...process.env,
    CORDON_NATS_URL: nats.url,
    CORDON_NATS_USER: opts.auth.user,
    CORDON_NATS_PASS: opts.auth.pass,
    CORDON_CORDONS: opts.cordons.join(','),
    CORDON_HTTP_PORT: String(httpPort),
    CORDON_HTTPS_PORT: String(httpsPort),
    CORDON_ADMIN_PORT: String(adminPort),
    CORDON_HTTP_HOST: '127.0.0.1',
    ...opts.env,
  };
  delete base.CORDON_MESH_SECRET;
  // The operator's host holds the mesh secret; it issues one keyring per service and keeps the secret.
  writeFileSync(join(operator, 'mesh.secret'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const keyFile = (name: string) => join(keys, `${name}.keyring`);
  for (const [role, cordon] of [['supervisor'], ['egress'], ['ingress'], ...opts.cordons.map((c) => ['sandbox', c])] as [string, string?][]) {
    const r = await cli(['keys', 'issue', '--role', role, ...(cordon ? ['--cordon', cordon] : []), '--out', keyFile(cordon ?? role)], {
      ...base,
      CORDON_DATA_DIR: operator,
    });
    assert.equal(r.code, 0, r.stderr);
  }
  const services: Running[] = [];
  const dir = (name: string) => join(root, name);
  const cluster: RunCluster = {
    nats,
    root,
    operator,
    base,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    adminPort,
    adminEnv: { ...base, CORDON_DATA_DIR: dir('supervisor'), CORDON_ADMIN_URL: `http://127.0.0.1:${adminPort}` },
    services,
    keyFile,
    dir,
    start(role, o = {}) {
      const args = o.cordon ? [role, '--cordon', o.cordon, ...SANDBOX_FLAGS] : [role];
      const s = runService(args, { ...base, CORDON_DATA_DIR: dir(o.dir ?? role), CORDON_MESH_KEYRING_FILE: keyFile(o.cordon ?? role), ...o.env });
      services.push(s);
      return s;
    },
    async healthy(timeoutMs = 90_000) {
      try {
        await waitFor(
          'the cluster to become healthy',
          async () => (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status === 200 || undefined,
          timeoutMs,
          250,
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${services.map((s) => s.output()).join('\n---\n')}`);
      }
    },
    async stop() {
      await Promise.all(services.map(stopService));
      await nats.stop();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return cluster;
}
