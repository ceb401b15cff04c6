import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lockdown } from './lockdown.ts';
import { ALLOWED, compileOuterPolicy, compilePolicy, ERRNO, evaluate, OUTER_REFUSED, REFUSED_PATHS, RET, SYSCALLS_X86_64 as NR } from './policy.ts';

const inner = compilePolicy();
const run = (name: string, args: number[] = [], program = inner) => evaluate(program, { nr: NR[name]!, args });

test('every allowed syscall has a reason, and no syscall is in two lists', () => {
  for (const [name, reason] of Object.entries(ALLOWED)) assert.ok(reason.length > 3, `${name} needs a reason`);
  const all = [...Object.keys(ALLOWED), ...REFUSED_PATHS];
  assert.equal(new Set(all).size, all.length);
  assert.ok(inner.length / 8 <= 4096, 'within BPF_MAXINSNS');
});

test('inner filter: the allow list passes, path syscalls and exec fail with EACCES', () => {
  for (const name of Object.keys(ALLOWED)) assert.equal(run(name), RET.ALLOW, name);
  for (const name of [...REFUSED_PATHS, 'execve', 'execveat', 'openat', 'open']) assert.equal(run(name), RET.errno(ERRNO.EACCES), name);
});

test('inner filter: Unix sockets only, threads only, no io_uring', () => {
  assert.equal(run('socket', [1]), RET.ALLOW, 'AF_UNIX');
  for (const family of [2, 10, 16, 17]) assert.equal(run('socket', [family]), RET.errno(ERRNO.EACCES), `family ${family}`);
  const CLONE_THREAD = 0x10000;
  assert.equal(run('clone', [0x3d0f00 | CLONE_THREAD]), RET.ALLOW, 'a thread');
  assert.equal(run('clone', [0x01200011]), RET.errno(ERRNO.EPERM), 'a fork');
  assert.equal(run('clone3'), RET.errno(ERRNO.ENOSYS));
  for (const name of ['fork', 'vfork']) assert.equal(run(name), RET.errno(ERRNO.EPERM));
  for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) assert.equal(run(name), RET.errno(ERRNO.ENOSYS));
});

test('inner filter with relays: IPv4 sockets too (only loopback exists in the namespace), nothing else more', () => {
  const relayed = compilePolicy({ tcp: true });
  assert.equal(run('socket', [1], relayed), RET.ALLOW);
  assert.equal(run('socket', [2], relayed), RET.ALLOW);
  for (const family of [10, 16, 17]) assert.equal(run('socket', [family], relayed), RET.errno(ERRNO.EACCES), `family ${family}`);
  assert.equal(run('ptrace', [], relayed), RET.KILL_PROCESS);
  assert.equal(run('clone', [0x01200011], relayed), RET.errno(ERRNO.EPERM));
});

test('inner filter: everything else kills, as do other ABIs', () => {
  for (const name of [
    'ptrace',
    'bpf',
    'mount',
    'unshare',
    'setns',
    'bind',
    'listen',
    'kill',
    'memfd_create',
    'process_vm_readv',
    'userfaultfd',
    'keyctl',
    'seccomp',
    'kexec_load',
  ])
    assert.equal(run(name), RET.KILL_PROCESS, name);
  assert.equal(evaluate(inner, { nr: 999 }), RET.KILL_PROCESS, 'an unknown number');
  assert.equal(evaluate(inner, { nr: 0x40000000 | NR.read! }), RET.KILL_PROCESS, 'x32 numbering');
  assert.equal(evaluate(inner, { nr: 3, arch: 0x40000003 }), RET.KILL_PROCESS, 'i386');
});

test('outer filter: io_uring is absent, the dangerous few refused, the rest allowed for start-up', () => {
  const outer = compileOuterPolicy();
  for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) assert.equal(run(name, [], outer), RET.errno(ERRNO.ENOSYS));
  for (const name of OUTER_REFUSED) assert.equal(run(name, [], outer), RET.errno(ERRNO.EPERM), name);
  for (const name of ['openat', 'execve', 'mmap', 'socket', 'bind']) assert.equal(run(name, [], outer), RET.ALLOW, name);
  assert.equal(evaluate(outer, { nr: 3, arch: 0x40000003 }), RET.KILL_PROCESS, 'i386');
});

test('lockdown refuses a process that was not started under the outer filter, and installs nothing', () => {
  assert.throws(() => lockdown({}, 'Name:\tnode\nSeccomp:\t0\n'), /not started inside the process sandbox/);
});
