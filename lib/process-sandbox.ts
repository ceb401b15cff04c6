/**
 * The first process layer around a sandbox: bubblewrap starts it in new user, mount, network, PID,
 * IPC, UTS and cgroup namespaces, as uid 65534 with every capability dropped, on an empty root that
 * holds read-only only Node, the shared libraries it loads, and the app; writable only the socket
 * directory and its own flight-recorder file. bwrap also applies the outer seccomp filter before
 * Node starts (policy.ts); the process adds the inner one itself once loaded (lockdown.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { seccompAddon } from './seccomp/lockdown.ts';
import { compileOuterPolicy } from './seccomp/policy.ts';
import { inCgroup } from './memory-ceiling.ts';

export const ROOT = resolve(import.meta.dirname, '..');
/** What of the app a sandbox needs (no cli/, no tests, no data). */
const APP_PARTS = ['package.json', 'lib', 'schemas', 'services', 'native', 'node_modules'];
/** Set in a sandbox's environment when it runs without this layer (`--insecure-no-process-sandbox`). */
export const INSECURE_ENV = 'CORDON_INSECURE_NO_PROCESS_SANDBOX';

export function findBwrap(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, 'bwrap');
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Shared libraries a binary loads, as `[path it is loaded from, the file behind it]` (from ldd). */
function sharedLibraries(binary: string): [string, string][] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs: [string, string][] = [];
  for (const line of out.split('\n')) {
    const path = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1];
    if (path) libs.push([path, realpathSync(path)]);
  }
  return libs;
}

let libraryBinds: string[] | undefined;
/** --ro-bind arguments for every library Node and the sandbox's native addons load (computed once). */
function libraryArgs(node: string): string[] {
  if (libraryBinds) return libraryBinds;
  const binaries = [
    node,
    join(ROOT, 'node_modules/isolated-vm/out/isolated_vm.node'),
    join(ROOT, 'node_modules/isolated-vm/build/Release/isolated_vm.node'),
    join(ROOT, 'native/seccomp.node'),
    join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'),
  ].filter((b) => existsSync(b));
  const seen = new Map<string, string>();
  for (const b of binaries) for (const [path, file] of sharedLibraries(b)) seen.set(path, file);
  libraryBinds = [...seen].flatMap(([path, file]) => ['--ro-bind', file, path]);
  if (existsSync('/etc/ld.so.cache')) libraryBinds.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache');
  return libraryBinds;
}

/**
 * Starts `node nodeArgs script scriptArgs` confined by bwrap, which reads the outer seccomp filter
 * from fd 3 (a pipe filled here). `output`: the child's stdout and stderr, inherited or piped.
 * `dataDir`: its `sockets` directory is the one writable directory of a service process.
 * `writable`: directories it may write instead (an SQL process: the tenants' databases).
 * `readOnly`: further files it may read (a NATS nkey seed).
 * `cgroup`: the `cgroup.procs` file of the memory cgroup bwrap and everything under it start in.
 * `ipc`: a Node IPC channel (fd 4, `serialization: 'advanced'`), as `fork` gives.
 */
export function spawnConfined(
  opts: {
    bwrap: string;
    nodeArgs: string[];
    script: string;
    scriptArgs?: string[];
    dataDir?: string;
    writable?: string[];
    configFile?: string;
    readOnly?: string[];
    files?: string[];
    cgroup?: string;
    ipc?: boolean;
  },
  spawnOpts: { env?: NodeJS.ProcessEnv; output: 'inherit' | 'pipe' },
): ChildProcess {
  const node = realpathSync(process.execPath);
  const writable = [...(opts.dataDir ? [join(opts.dataDir, 'sockets')] : []), ...(opts.writable ?? [])].map((d) => resolve(d));
  for (const d of writable) mkdirSync(d, { recursive: true, mode: 0o700 });
  // Writable files of its own (the flight recorder), created here so that only they are bound.
  for (const f of opts.files ?? []) {
    mkdirSync(dirname(f), { recursive: true, mode: 0o700 });
    if (!existsSync(f)) writeFileSync(f, '', { mode: 0o600 });
  }
  const args = [
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--cap-drop',
    'ALL',
    '--uid',
    '65534',
    '--gid',
    '65534',
    '--tmpfs',
    '/',
    '--dev',
    '/dev',
    ...procArgs(opts.bwrap),
    '--ro-bind',
    node,
    node,
    ...libraryArgs(node),
    ...APP_PARTS.filter((p) => existsSync(join(ROOT, p))).flatMap((p) => ['--ro-bind', join(ROOT, p), join(ROOT, p)]),
    ...[...(opts.configFile ? [opts.configFile] : []), ...(opts.readOnly ?? [])].flatMap((f) => ['--ro-bind', resolve(f), resolve(f)]),
    ...writable.flatMap((d) => ['--bind', d, d]),
    ...(opts.files ?? []).flatMap((f) => ['--bind', f, f]),
    '--remount-ro',
    '/',
    '--chdir',
    ROOT,
    '--seccomp',
    '3',
    node,
    ...opts.nodeArgs,
    opts.script,
    ...(opts.scriptArgs ?? []),
  ];
  const [command, argv] = opts.cgroup ? inCgroup(opts.cgroup, opts.bwrap, args) : [opts.bwrap, args];
  const child = spawn(command, argv, {
    cwd: ROOT,
    env: spawnOpts.env,
    stdio: ['ignore', spawnOpts.output, spawnOpts.output, 'pipe', ...(opts.ipc ? (['ipc'] as const) : [])],
    ...(opts.ipc ? { serialization: 'advanced' as const } : {}),
  });
  (child.stdio[3] as Writable).on('error', () => {}).end(compileOuterPolicy());
  return child;
}

let procBinds: string[] | undefined;
/**
 * A fresh /proc for the sandbox's own PID namespace where the kernel allows it. Inside a container it
 * does not (the engine's /proc has masked parts, so a new one may not be mounted): there the
 * container's own /proc is bound read-only. Node and the lockdown need /proc/self; the container's
 * shows only that container's processes (this sandbox and its `cordon run`), and once the inner
 * filter is in, no path can be opened at all.
 */
function procArgs(bwrap: string): string[] {
  if (procBinds) return procBinds;
  try {
    execFileSync(bwrap, ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--proc', '/proc', '--', 'true'], { stdio: 'pipe', timeout: 10_000 });
    procBinds = ['--proc', '/proc'];
  } catch {
    procBinds = ['--ro-bind', '/proc', '/proc'];
  }
  return procBinds;
}

export interface Layer {
  name: string;
  active: boolean;
  detail: string;
}

/** Can bwrap make its namespaces here (a container may forbid user namespaces)? */
function namespacesWork(bwrap: string): string | undefined {
  try {
    execFileSync(bwrap, ['--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--', 'true'], { stdio: 'pipe', timeout: 10_000 });
    return undefined;
  } catch (e) {
    return String((e as { stderr?: Buffer }).stderr ?? (e as Error).message)
      .trim()
      .split('\n')[0];
  }
}

/** bwrap, if it is installed and can make its namespaces here; otherwise why not. */
export function usableBwrap(): { bwrap: string; problem?: undefined } | { bwrap?: undefined; problem: string } {
  const bwrap = findBwrap();
  const problem = bwrap ? namespacesWork(bwrap) : 'bubblewrap is not installed (apt-get install -y bubblewrap)';
  return problem ? { problem } : { bwrap: bwrap! };
}

/** Each protection layer of the sandbox processes and whether this machine provides it. */
export function processLayers(): Layer[] {
  const { bwrap, problem: nsProblem } = usableBwrap();
  const addon = seccompAddon();
  const layers: Layer[] = [
    { name: 'namespaces (user, mount, PID, IPC, UTS, cgroup)', active: !nsProblem, detail: nsProblem ?? `bwrap at ${bwrap}` },
    {
      name: 'empty read-only root',
      active: !nsProblem,
      detail: nsProblem ?? 'only Node, its libraries and the app, read-only; the socket dir and its flight-recorder file writable',
    },
    {
      name: 'no network',
      active: !nsProblem,
      detail: nsProblem ?? 'own network namespace, only loopback; NATS and a trace collector through Unix-socket relays',
    },
    { name: 'capabilities dropped, uid 65534', active: !nsProblem, detail: nsProblem ?? 'bwrap --cap-drop ALL --uid 65534' },
    {
      name: '/proc of its own PID namespace',
      active: !nsProblem,
      detail:
        nsProblem ??
        (procArgs(bwrap!)[0] === '--proc'
          ? 'a fresh /proc'
          : "the container's /proc, read-only (a fresh one cannot be mounted here); no path opens after lockdown"),
    },
    { name: 'seccomp: outer filter (no io_uring, ptrace, bpf, mount, …)', active: !nsProblem, detail: nsProblem ?? 'applied by bwrap before Node starts' },
    {
      name: 'seccomp: inner allow-list filter after load',
      active: 'addon' in addon && !nsProblem,
      detail: 'problem' in addon ? addon.problem : nsProblem ? 'needs the outer filter (io_uring off)' : join(ROOT, 'native/seccomp.node'),
    },
  ];
  return layers;
}
