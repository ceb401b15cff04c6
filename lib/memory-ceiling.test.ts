/**
 * Which memory ceiling a machine gives (read from a made-up /proc and cgroup tree), and the launcher's
 * cgroups: made with the ceiling, stale ones swept, all removed at the end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ceilingSupport, inCgroup, MemoryCeilings, memoryCgroupOf } from './memory-ceiling.ts';

/** A fake machine: /proc/self/{mountinfo,cgroup} and the cgroup directories they name. */
function machine(opts: { v2Controllers?: string; v1?: boolean }): { proc: string; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'cordon-cg-'));
  const proc = join(root, 'proc');
  mkdirSync(join(proc, 'self'), { recursive: true });
  const mountinfo = [`30 25 0:26 / ${root}/v2 rw,nosuid - cgroup2 cgroup2 rw`];
  const cgroup = ['0::/svc/cordon.service'];
  mkdirSync(join(root, 'v2/svc/cordon.service'), { recursive: true });
  writeFileSync(join(root, 'v2/svc/cordon.service/cgroup.controllers'), opts.v2Controllers ?? '');
  writeFileSync(join(root, 'v2/svc/cordon.service/cgroup.procs'), `${process.pid}\n`);
  if (opts.v1) {
    mountinfo.push(`35 31 0:32 / ${root}/memory rw,relatime - cgroup cgroup rw,memory`);
    cgroup.unshift('4:memory:/box');
    mkdirSync(join(root, 'memory/box'), { recursive: true });
    writeFileSync(join(root, 'memory/box/memory.limit_in_bytes'), '9223372036854771712');
  }
  writeFileSync(join(proc, 'self/mountinfo'), mountinfo.join('\n') + '\n');
  writeFileSync(join(proc, 'self/cgroup'), cgroup.join('\n') + '\n');
  return { proc, root };
}

test('cgroup v2 with the memory controller delegated is preferred; its group delegates memory on', () => {
  const { proc, root } = machine({ v2Controllers: 'cpu memory pids', v1: true });
  try {
    const support = ceilingSupport(proc);
    assert.deepEqual(support, { kind: 'cgroup2', parent: join(root, 'v2/svc/cordon.service') });
    const ceilings = MemoryCeilings.open(support, 512 * 1024 * 1024);
    assert.ok(ceilings instanceof MemoryCeilings);
    assert.equal(readFileSync(join(ceilings.group, 'cgroup.subtree_control'), 'utf8'), '+memory');
    const procs = ceilings.join('sandbox-standard');
    assert.equal(procs, join(ceilings.group, 'sandbox-standard', 'cgroup.procs'));
    assert.equal(ceilings.limitOf('sandbox-standard'), 512 * 1024 * 1024);
    assert.match(ceilings.describe(), /^cgroup v2 memory\.max = 512 MB/);
    ceilings.close(); // (a real cgroupfs removes the control files with their directory; this fake keeps them)
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cgroup v1 where v2 has no memory controller; stale groups of dead launchers are swept', () => {
  const { proc, root } = machine({ v1: true });
  try {
    const support = ceilingSupport(proc);
    assert.deepEqual(support, { kind: 'cgroup1', parent: join(root, 'memory/box') });
    // A launcher that died (pid 2^22 + 1 is above any pid_max) left its group behind.
    mkdirSync(join(root, 'memory/box/cordon-4194305/sandbox-standard'), { recursive: true });
    const ceilings = MemoryCeilings.open(support, 256 * 1024 * 1024);
    assert.ok(ceilings instanceof MemoryCeilings);
    assert.ok(!existsSync(join(root, 'memory/box/cordon-4194305')), 'the stale group is gone');
    ceilings.join('sandbox-untrusted');
    assert.equal(readFileSync(join(ceilings.group, 'sandbox-untrusted', 'memory.limit_in_bytes'), 'utf8'), String(256 * 1024 * 1024));
    writeFileSync(join(ceilings.group, 'sandbox-untrusted', 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
    assert.equal(ceilings.oomKills('sandbox-untrusted'), 2);
    assert.match(ceilings.describe(), /^cgroup v1 memory\.limit_in_bytes = 256 MB/);
    ceilings.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('no ceiling, with every reason, where neither hierarchy gives one', () => {
  const { proc, root } = machine({});
  try {
    const support = ceilingSupport(proc);
    assert.equal(support.kind, 'none');
    assert.match((support as { reason: string }).reason, /does not delegate the memory controller.*no cgroup v1 memory hierarchy/);
    assert.deepEqual(MemoryCeilings.open(support, 1), { reason: (support as { reason: string }).reason });
    assert.ok('problem' in memoryCgroupOf('self', proc));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a process joins its cgroup before it execs: the shell writes its own pid, then execs the command', () => {
  const [command, args] = inCgroup('/cg/cgroup.procs', '/usr/bin/bwrap', ['--unshare-all', 'node']);
  assert.equal(command, '/bin/sh');
  assert.deepEqual(args, ['-c', 'echo $$ > "$0" && exec "$@"', '/cg/cgroup.procs', '/usr/bin/bwrap', '--unshare-all', 'node']);
});
