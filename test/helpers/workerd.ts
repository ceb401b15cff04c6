/**
 * The real workerd (npm `@cloudflare/workerd-linux-64`, a devDependency) beside Cordon: tests and the
 * bench run the same worker on both. One way to start it, so each side-by-side run writes only its own
 * services.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ROOT, waitFor } from './mesh.ts';

export const WORKERD = join(ROOT, 'node_modules/@cloudflare/workerd-linux-64/bin/workerd');

/** Why a side-by-side test cannot run here (workerd missing), or false; never a skip where CI requires all. */
export const workerdMissing = (): string | false =>
  !existsSync(WORKERD) && process.env.CORDON_REQUIRE_ALL !== '1' ? 'workerd is not installed (npm install)' : false;

export interface RunningWorkerd {
  /** Where `files` and `config.capnp` were written (other files may go here too). */
  dir: string;
  /** The ports handed to `config`, in order. */
  ports: number[];
  /** http://127.0.0.1:<ports[i]> */
  url(i?: number): string;
  process: ChildProcess;
  /** Kills workerd and removes its directory. */
  stop(): void;
}

/**
 * Start workerd on a config of ours. `files` (module sources, by name) are written to a fresh directory;
 * `config(ports, dir)` is the config after its import line, given `ports` free ports for its sockets.
 */
export async function startWorkerd(opts: {
  files: Record<string, string | Uint8Array>;
  config: (ports: number[], dir: string) => string;
  ports?: number;
  experimental?: boolean;
  stderr?: boolean;
  /** Keep workerd's stdout (its console lines) readable on `process.stdout`. */
  stdout?: boolean;
}): Promise<RunningWorkerd> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-workerd-'));
  for (const [name, content] of Object.entries(opts.files)) writeFileSync(join(dir, name), content);
  const ports = await Promise.all(Array.from({ length: opts.ports ?? 1 }, () => freePort()));
  writeFileSync(join(dir, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";\n${opts.config(ports, dir)}\n`);
  const args = ['serve', ...(opts.experimental ? ['--experimental'] : []), join(dir, 'config.capnp')];
  const child = spawn(WORKERD, args, { stdio: ['ignore', opts.stdout ? 'pipe' : 'ignore', opts.stderr ? 'inherit' : 'ignore'] });
  return {
    dir,
    ports,
    url: (i = 0) => `http://127.0.0.1:${ports[i]}`,
    process: child,
    stop() {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * What one nodejs_compat worker answers to `GET /` on workerd, as text: the side a compatibility test
 * compares Cordon's answer with. `name`: the module's name (a worker that lists its modules sees it).
 */
export async function answerOnWorkerd(source: string, date: string, name = 'w.js'): Promise<string> {
  const workerd = await startWorkerd({
    files: { [name]: source },
    config: (
      ports,
    ) => `const config :Workerd.Config = ( services = [ (name = "main", worker = .w) ], sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "${name}", esModule = embed "${name}") ], compatibilityDate = "${date}", compatibilityFlags = ["nodejs_compat"] );`,
  });
  try {
    return await waitFor('workerd', async () => {
      const res = await fetch(workerd.url()).catch(() => undefined);
      return res?.status === 200 ? await res.text() : undefined;
    });
  } finally {
    workerd.stop();
  }
}

/** Two workers, `front` calling `api` through a service binding named API, front served on one socket. */
/**
 * A workerd config for one worker (`index.js`) with one Durable Object class on SQLite, its storage on local
 * disk in `dir`, bound as `binding`, served on `ports[0]`.
 */
export function durableObjectConfig(ports: number[], dir: string, o: { className: string; binding: string; uniqueKey: string }): string {
  mkdirSync(join(dir, 'do-storage'));
  return `const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
      modules = [(name = "index.js", esModule = embed "index.js")],
      compatibilityDate = "2026-07-01",
      durableObjectNamespaces = [(className = "${o.className}", uniqueKey = "${o.uniqueKey}", enableSql = true)],
      durableObjectStorage = (localDisk = "do-disk"),
      bindings = [(name = "${o.binding}", durableObjectNamespace = "${o.className}")],
    )),
    (name = "do-disk", disk = (path = "${join(dir, 'do-storage')}", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ],
);`;
}

export function serviceBindingConfig(ports: number[]): string {
  const date = '2026-07-01';
  return `const config :Workerd.Config = (
  services = [
    (name = "front", worker = (modules = [(name = "front.js", esModule = embed "front.js")], compatibilityDate = "${date}", bindings = [(name = "API", service = "api")])),
    (name = "api", worker = (modules = [(name = "api.js", esModule = embed "api.js")], compatibilityDate = "${date}")),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "front") ],
);`;
}
