/**
 * Runs a real mesh for end-to-end tests: `node cli/main.ts start` as a child process on a fresh data
 * dir and free ports, exactly as a user would, plus helpers to drive the CLI and find service PIDs.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../lib/rpc/testing/ports.ts';
import { findBwrap } from '../../lib/process-sandbox.ts';

export { freePort };

export const ROOT = resolve(import.meta.dirname, '..', '..');
const run = promisify(execFile);

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
}

/**
 * A request to the mesh's ingress carrying the Host header given (fetch never sends another Host than
 * its URL's): how a test reaches a route on a host the operator assigned to a tenant.
 */
export function fetchHost(
  mesh: TestMesh,
  host: string,
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const body = init.body ?? '';
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: Number(mesh.env.CORDON_HTTP_PORT),
        path,
        method: init.method ?? 'GET',
        headers: { ...init.headers, host, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('error', reject);
        res.on('end', () =>
          resolve(
            new Response(res.statusCode === 204 || res.statusCode === 304 ? null : Buffer.concat(chunks), {
              status: res.statusCode!,
              headers: res.headers as Record<string, string>,
            }),
          ),
        );
      },
    );
    req.on('error', reject).end(body);
  });
}

/** Deploy a worker through the mesh's admin API (`body`: the API's worker), asserting it was accepted. */
export async function deployWorker(mesh: TestMesh, body: object): Promise<void> {
  const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const res = await fetch(`${mesh.adminUrl}/v1/workers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`deploy: ${res.status} ${await res.text()}`);
}

export interface TestMesh {
  dataDir: string;
  env: NodeJS.ProcessEnv;
  httpUrl: string;
  adminUrl: string;
  launcher: ChildProcess;
  output(): string;
  /** The cordon CLI with this mesh's environment, run in `cwd` (the repository by default). */
  cli(args: string[], cwd?: string): Promise<{ code: number; stdout: string; stderr: string }>;
  /** `cli`, which must succeed: otherwise an error with the command, its exit code and its output. */
  cliOk(args: string[], cwd?: string): Promise<{ stdout: string; stderr: string }>;
  /** PIDs of the launcher's children by `services/<name>/` in their command line (sandboxes: by cordon). */
  servicePids(): Map<string, number>;
  stop(): Promise<void>;
}

let warnedUnconfined = false;

/** The Node processes of a mesh's sandboxes (inside bwrap when confined), by cordon. */
export function sandboxNodes(mesh: TestMesh): Map<string, number> {
  const node = realpathSync(process.execPath);
  const found = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0] !== node || !cmdline.some((a) => a.endsWith('services/sandbox/main.ts'))) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (!environ.includes(`CORDON_DATA_DIR=${mesh.dataDir}\0`)) continue;
      found.set(/(?:^|\0)CORDON_CORDON=([^\0]*)/.exec(environ)![1]!, Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

export async function startTestMesh(extraEnv: NodeJS.ProcessEnv = {}, args: string[] = []): Promise<TestMesh> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-e2e-'));
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CORDON_DATA_DIR: dataDir,
    CORDON_HTTP_PORT: String(httpPort),
    CORDON_HTTPS_PORT: String(httpsPort),
    CORDON_ADMIN_PORT: String(adminPort),
    CORDON_HTTP_HOST: '127.0.0.1',
    ...extraEnv,
  };
  let out = '';
  // Sandboxes run confined (bubblewrap + seccomp), as in production; a developer machine without
  // bubblewrap runs them unconfined, with a note (CI installs it and sets CORDON_REQUIRE_ALL=1).
  if (!findBwrap() && process.env.CORDON_REQUIRE_ALL !== '1' && !args.includes('--insecure-no-process-sandbox')) {
    if (!warnedUnconfined) process.stderr.write('note: bubblewrap is not installed: e2e sandboxes run with --insecure-no-process-sandbox\n');
    warnedUnconfined = true;
    args = [...args, '--insecure-no-process-sandbox'];
  }
  const launcher = spawn(process.execPath, [join(ROOT, 'cli/main.ts'), 'start', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  launcher.stdout!.on('data', (d) => (out += d));
  launcher.stderr!.on('data', (d) => (out += d));
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const mesh: TestMesh = {
    dataDir,
    env,
    httpUrl: `http://127.0.0.1:${httpPort}`,
    adminUrl,
    launcher,
    output: () => out,
    async cli(cliArgs, cwd = ROOT) {
      try {
        const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'cli/cordon.mjs'), ...cliArgs], { cwd, env });
        return { code: 0, stdout, stderr };
      } catch (e) {
        const err = e as { code: number; stdout: string; stderr: string };
        return { code: err.code, stdout: err.stdout, stderr: err.stderr };
      }
    },
    async cliOk(cliArgs, cwd) {
      const r = await mesh.cli(cliArgs, cwd);
      if (r.code !== 0) throw new Error(`cordon ${cliArgs.join(' ')} exited ${r.code}\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
      return r;
    },
    servicePids() {
      const pids = new Map<string, number>();
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const status = readFileSync(`/proc/${entry}/status`, 'utf8');
          if (Number(/PPid:\s+(\d+)/.exec(status)?.[1]) !== launcher.pid) continue;
          const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
          const name = /services\/(\w+)\//.exec(cmdline)?.[1];
          if (!name) continue;
          const environ = name === 'sandbox' ? readFileSync(`/proc/${entry}/environ`, 'utf8') : '';
          const cordon = /(?:^|\0)CORDON_CORDON=([^\0]*)/.exec(environ)?.[1];
          pids.set(cordon ? `sandbox:${cordon}` : name, Number(entry));
        } catch {
          // the process ended while we looked
        }
      }
      return pids;
    },
    async stop() {
      if (launcher.exitCode === null && launcher.signalCode === null) {
        const exited = new Promise((r) => launcher.once('exit', r));
        launcher.kill('SIGTERM');
        const timer = setTimeout(() => launcher.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor('the mesh to become healthy', async () => (await fetch(`${adminUrl}/healthz`)).status === 200 || undefined, 60_000, 200);
  } catch (e) {
    await mesh.stop();
    throw new Error(`${(e as Error).message}\nlauncher output:\n${out}`);
  }
  return mesh;
}
