/**
 * A hard memory ceiling from the kernel for each sandbox process: a cgroup of its own with a memory
 * limit, so that whatever a sandbox holds (isolates, their Wasm memories, Node itself, and anything
 * the isolates' own accounting misses) the kernel stops it there — the OOM killer ends that process
 * alone, and the launcher restarts it like any crash.
 *
 * cgroup v2 (`memory.max`) where the machine delegates the memory controller to the launcher's cgroup,
 * else cgroup v1 (`memory.limit_in_bytes`) where its memory hierarchy is writable, else none (the
 * launcher says so at start, and `cordon doctor` says why). The launcher's cgroups are made under its
 * own cgroup, in `cordon-<launcher pid>/`, one per sandbox process, and removed when the mesh stops.
 */
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { processAlive } from './process-alive.ts';

export type CeilingKind = 'cgroup2' | 'cgroup1';
/** Where sandbox cgroups can be made, or why they cannot. */
export type CeilingSupport = { kind: CeilingKind; parent: string } | { kind: 'none'; reason: string };

/** The files a ceiling is read from and written to, by kind. */
const FILES: Record<CeilingKind, { limit: string; swap: string; events: string; describe: string }> = {
  cgroup2: { limit: 'memory.max', swap: 'memory.swap.max', events: 'memory.events', describe: 'cgroup v2 memory.max' },
  cgroup1: { limit: 'memory.limit_in_bytes', swap: 'memory.memsw.limit_in_bytes', events: 'memory.oom_control', describe: 'cgroup v1 memory.limit_in_bytes' },
};

interface Mount {
  root: string;
  point: string;
  fstype: string;
  options: string[];
}

function mounts(proc: string): Mount[] {
  const out: Mount[] = [];
  for (const line of readFileSync(join(proc, 'self/mountinfo'), 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const [fstype, , superOptions] = right.split(' ');
    out.push({ root: f[3]!, point: f[4]!.replace(/\\040/g, ' '), fstype: fstype!, options: (superOptions ?? '').split(',') });
  }
  return out;
}

const writable = (dir: string) => {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
};

/** The directory of process `pid`'s memory cgroup (v2 when it has the memory controller, else v1), if it has one. */
export function memoryCgroupOf(pid: number | 'self', proc = '/proc'): { kind: CeilingKind; dir: string } | { problem: string } {
  let lines: string[];
  let all: Mount[];
  try {
    lines = readFileSync(join(proc, String(pid), 'cgroup'), 'utf8').split('\n');
    all = mounts(proc);
  } catch (e) {
    return { problem: `cannot read the cgroups of ${pid === 'self' ? 'this process' : `process ${pid}`}: ${(e as Error).message}` };
  }
  const problems: string[] = [];
  const v2 = all.find((m) => m.fstype === 'cgroup2');
  const v2Path = lines.find((l) => l.startsWith('0::'))?.slice(3);
  if (v2 && v2Path !== undefined) {
    const dir = join(v2.point, relative(v2.root, v2Path));
    const controllers = existsSync(join(dir, 'cgroup.controllers')) ? readFileSync(join(dir, 'cgroup.controllers'), 'utf8').trim().split(/\s+/) : [];
    if (controllers.includes('memory')) return { kind: 'cgroup2', dir };
    problems.push(`cgroup v2 (${v2.point}) does not delegate the memory controller to ${dir}`);
  } else problems.push('no cgroup v2 hierarchy is mounted');
  const v1 = all.find((m) => m.fstype === 'cgroup' && m.options.includes('memory'));
  const v1Path = lines.map((l) => l.split(':')).find((f) => f[1]?.split(',').includes('memory'))?.[2];
  if (v1 && v1Path !== undefined) {
    const dir = join(v1.point, relative(v1.root, v1Path));
    if (existsSync(join(dir, 'memory.limit_in_bytes'))) return { kind: 'cgroup1', dir };
    problems.push(`cgroup v1: ${dir} is not the memory cgroup as seen from here`);
  } else problems.push('no cgroup v1 memory hierarchy is mounted');
  return { problem: problems.join('; ') };
}

/** Which kind of ceiling this machine gives the launcher's process, and where its cgroups go. */
export function ceilingSupport(proc = '/proc'): CeilingSupport {
  const own = memoryCgroupOf('self', proc);
  if ('problem' in own) return { kind: 'none', reason: own.problem };
  if (!writable(own.dir)) return { kind: 'none', reason: `${own.kind === 'cgroup2' ? 'cgroup v2' : 'cgroup v1'}: ${own.dir} is not writable by this user` };
  return { kind: own.kind, parent: own.dir };
}

/** The ceiling file of a cgroup of `kind`. */
export const limitFile = (kind: CeilingKind) => FILES[kind].limit;

/**
 * `command args` started inside the cgroup whose `cgroup.procs` file is `procs`: a shell writes its
 * own pid there, then execs the command, so that the process and all it forks are in the cgroup from
 * their first instruction (no window in which a child could be forked outside it).
 */
export function inCgroup(procs: string, command: string, args: string[]): [string, string[]] {
  return ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procs, command, ...args]];
}

/** Removes a cgroup directory and the (empty) cgroups under it; cgroup files go with their directory. */
function removeTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) removeTree(join(dir, entry.name));
  rmdirSync(dir);
}

/** The launcher's sandbox cgroups: one per sandbox process, each with the same memory ceiling. */
export class MemoryCeilings {
  readonly kind: CeilingKind;
  readonly bytes: number;
  /** `cordon-<launcher pid>` under the launcher's own cgroup. */
  readonly group: string;

  private constructor(kind: CeilingKind, group: string, bytes: number) {
    this.kind = kind;
    this.group = group;
    this.bytes = bytes;
  }

  /** Makes the launcher's group of sandbox cgroups, or says why there is none. */
  static open(support: CeilingSupport, bytes: number): MemoryCeilings | { reason: string } {
    if (support.kind === 'none') return { reason: support.reason };
    const { parent } = support;
    // Groups left by a launcher that did not stop cleanly (and whose processes are gone).
    for (const entry of readdirSync(parent)) {
      const pid = /^cordon-(\d+)(?:-launcher)?$/.exec(entry)?.[1];
      if (pid && Number(pid) !== process.pid && !processAlive(Number(pid))) {
        try {
          removeTree(join(parent, entry));
        } catch {
          // still holds a process: left alone
        }
      }
    }
    const group = join(parent, `cordon-${process.pid}`);
    try {
      mkdirSync(group, { recursive: true });
      if (support.kind === 'cgroup2') delegateMemory(parent, group);
      return new MemoryCeilings(support.kind, group, bytes);
    } catch (e) {
      try {
        removeTree(group);
      } catch {
        // nothing made
      }
      return { reason: `cannot set up ${group}: ${(e as Error).message}` };
    }
  }

  describe(): string {
    return `${FILES[this.kind].describe} = ${Math.round(this.bytes / 1024 / 1024)} MB for each sandbox process (under ${this.group})`;
  }

  /** The cgroup of sandbox process `name` with its ceiling set (made once); returns its `cgroup.procs` file. */
  join(name: string): string {
    const dir = join(this.group, name);
    mkdirSync(dir, { recursive: true });
    const files = FILES[this.kind];
    writeFileSync(join(dir, files.limit), String(this.bytes));
    // No way around the ceiling through swap, where swap is accounted (v1 only takes it after the limit).
    const swap = join(dir, files.swap);
    if (existsSync(swap)) {
      try {
        writeFileSync(swap, this.kind === 'cgroup2' ? '0' : String(this.bytes));
      } catch {
        // swap accounting switched off in the kernel
      }
    }
    // v2: the OOM killer takes the whole sandbox (bwrap and Node), not one of its processes.
    if (this.kind === 'cgroup2' && existsSync(join(dir, 'memory.oom.group'))) writeFileSync(join(dir, 'memory.oom.group'), '1');
    return join(dir, 'cgroup.procs');
  }

  /** The ceiling actually in force for `name` (bytes), as the kernel reads it back. */
  limitOf(name: string): number {
    const raw = readFileSync(join(this.group, name, FILES[this.kind].limit), 'utf8').trim();
    return raw === 'max' ? Infinity : Number(raw);
  }

  /** How many times the kernel's OOM killer acted in `name`'s cgroup (0 where the kernel does not say). */
  oomKills(name: string): number {
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.group, name, FILES[this.kind].events), 'utf8'));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  /** Removes `name`'s cgroup (its process has exited). */
  release(name: string): void {
    try {
      rmdirSync(join(this.group, name));
    } catch {
      // a process still in it, or already gone
    }
  }

  /** Removes every sandbox cgroup and the group (the mesh has stopped). */
  close(): void {
    try {
      removeTree(this.group);
    } catch {
      // a process still in one: the next launcher sweeps it
    }
  }
}

/**
 * cgroup v2 lets a cgroup hand a controller to its children only while it holds no process itself
 * ("no internal processes"). A launcher alone in its cgroup (a systemd unit or scope with
 * Delegate=yes) moves itself into a leaf of its own first; one sharing its cgroup with other
 * processes cannot, and gets no ceiling.
 */
function delegateMemory(parent: string, group: string): void {
  const enable = (dir: string) => writeFileSync(join(dir, 'cgroup.subtree_control'), '+memory');
  try {
    enable(parent);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
    const others = readFileSync(join(parent, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((p) => p && Number(p) !== process.pid);
    if (others.length)
      throw new Error(
        `${parent} holds other processes (${others.slice(0, 5).join(', ')}), so it cannot delegate memory to sub-groups; run cordon in a cgroup of its own with the memory controller delegated (systemd: Delegate=yes)`,
      );
    const leaf = join(parent, `cordon-${process.pid}-launcher`);
    mkdirSync(leaf, { recursive: true });
    writeFileSync(join(leaf, 'cgroup.procs'), String(process.pid));
    enable(parent);
  }
  enable(group);
}
