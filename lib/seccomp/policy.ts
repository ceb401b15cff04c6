/**
 * The sandbox process's syscall policy, compiled to a classic BPF program for seccomp (x86-64).
 * Built here rather than with libseccomp: the policy is a table, the program is a straight list of
 * comparisons, and this way nothing but a 40-line addon (native/seccomp.c) has to be compiled — no
 * library to install on the host. The measured basis is in docs/security.md ("seccomp"): path syscalls fail with
 * EACCES (glibc's malloc opens /proc files from threads; a kill there would crash the cordon), the
 * syscalls below are allowed, and everything else kills the process.
 */

/** x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) for every name the policy mentions. */
export const SYSCALLS_X86_64: Record<string, number> = {
  read: 0,
  write: 1,
  open: 2,
  close: 3,
  stat: 4,
  fstat: 5,
  lstat: 6,
  poll: 7,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  rt_sigprocmask: 14,
  rt_sigreturn: 15,
  ioctl: 16,
  pread64: 17,
  pwrite64: 18,
  readv: 19,
  writev: 20,
  access: 21,
  pipe: 22,
  sched_yield: 24,
  mremap: 25,
  mincore: 27,
  madvise: 28,
  dup: 32,
  dup2: 33,
  nanosleep: 35,
  getpid: 39,
  socket: 41,
  connect: 42,
  accept: 43,
  sendto: 44,
  recvfrom: 45,
  sendmsg: 46,
  recvmsg: 47,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  getpeername: 52,
  socketpair: 53,
  setsockopt: 54,
  getsockopt: 55,
  clone: 56,
  fork: 57,
  vfork: 58,
  execve: 59,
  exit: 60,
  wait4: 61,
  kill: 62,
  uname: 63,
  fcntl: 72,
  fsync: 74,
  fdatasync: 75,
  truncate: 76,
  ftruncate: 77,
  getcwd: 79,
  chdir: 80,
  rename: 82,
  mkdir: 83,
  rmdir: 84,
  creat: 85,
  link: 86,
  unlink: 87,
  symlink: 88,
  readlink: 89,
  chmod: 90,
  chown: 92,
  lchown: 94,
  gettimeofday: 96,
  getrlimit: 97,
  getrusage: 98,
  sysinfo: 99,
  ptrace: 101,
  getuid: 102,
  getgid: 104,
  setuid: 105,
  setgid: 106,
  geteuid: 107,
  getegid: 108,
  getppid: 110,
  capget: 125,
  capset: 126,
  sigaltstack: 131,
  mknod: 133,
  personality: 135,
  statfs: 137,
  getpriority: 140,
  setpriority: 141,
  sched_setparam: 142,
  sched_getparam: 143,
  sched_setscheduler: 144,
  sched_getscheduler: 145,
  prctl: 157,
  arch_prctl: 158,
  chroot: 161,
  mount: 165,
  umount2: 166,
  swapon: 167,
  reboot: 169,
  init_module: 175,
  delete_module: 176,
  gettid: 186,
  tkill: 200,
  futex: 202,
  sched_getaffinity: 204,
  restart_syscall: 219,
  clock_gettime: 228,
  clock_getres: 229,
  clock_nanosleep: 230,
  exit_group: 231,
  epoll_wait: 232,
  epoll_ctl: 233,
  tgkill: 234,
  utimes: 235,
  kexec_load: 246,
  add_key: 248,
  request_key: 249,
  keyctl: 250,
  inotify_add_watch: 254,
  openat: 257,
  mkdirat: 258,
  mknodat: 259,
  fchownat: 260,
  futimesat: 261,
  newfstatat: 262,
  unlinkat: 263,
  renameat: 264,
  linkat: 265,
  symlinkat: 266,
  readlinkat: 267,
  fchmodat: 268,
  faccessat: 269,
  ppoll: 271,
  unshare: 272,
  set_robust_list: 273,
  utimensat: 280,
  epoll_pwait: 281,
  eventfd2: 290,
  epoll_create1: 291,
  dup3: 292,
  accept4: 288,
  pipe2: 293,
  perf_event_open: 298,
  prlimit64: 302,
  setns: 308,
  process_vm_readv: 310,
  process_vm_writev: 311,
  finit_module: 313,
  renameat2: 316,
  seccomp: 317,
  getrandom: 318,
  memfd_create: 319,
  kexec_file_load: 320,
  bpf: 321,
  execveat: 322,
  userfaultfd: 323,
  membarrier: 324,
  pkey_mprotect: 329,
  statx: 332,
  rseq: 334,
  io_uring_setup: 425,
  io_uring_enter: 426,
  io_uring_register: 427,
  pidfd_open: 434,
  clone3: 435,
  close_range: 436,
  openat2: 437,
  pidfd_getfd: 438,
  faccessat2: 439,
  epoll_pwait2: 441,
};

/** Allowed, each for a reason (measured under Node 24 + isolated-vm unless said otherwise). */
export const ALLOWED: Record<string, string> = {
  // memory: V8 heaps, isolates, Wasm code pages, glibc malloc
  brk: 'glibc malloc',
  mmap: 'V8 and malloc',
  munmap: 'V8 and malloc',
  mprotect: 'V8 code pages (W^X)',
  mremap: 'realloc of large blocks',
  madvise: 'V8 and malloc give pages back',
  mincore: 'V8 page probing',
  pkey_mprotect: 'V8 memory protection keys where the CPU has them',
  // threads: the isolated-vm and libuv pools, V8 platform workers
  futex: 'every lock and condition variable',
  set_robust_list: 'thread start',
  rseq: 'thread start (glibc)',
  exit: 'a thread ends',
  exit_group: 'the process ends',
  gettid: 'thread ids',
  sched_yield: 'spin locks',
  sched_getaffinity: 'pool sizing',
  sched_getparam: 'V8 reads thread priorities (pthread_getschedparam)',
  sched_getscheduler: 'V8 reads thread priorities (pthread_getschedparam)',
  getpriority: 'os.getPriority',
  membarrier: 'V8 code patching',
  sigaltstack: 'thread start',
  tgkill: 'V8 and libuv signal a thread',
  rt_sigaction: 'signal handlers',
  rt_sigprocmask: 'signal masks',
  rt_sigreturn: 'return from a signal handler',
  restart_syscall: 'an interrupted sleep resumes',
  prctl: 'thread names (PR_SET_NAME)',
  capget: 'worker_threads start-up (credentials check)',
  // time
  clock_gettime: 'clocks where the vDSO falls back',
  clock_getres: 'timer resolution',
  clock_nanosleep: 'sleeps',
  nanosleep: 'sleeps',
  gettimeofday: 'clock fallback',
  // the event loop and the inherited or accepted Unix sockets
  epoll_create1: 'libuv loops',
  epoll_ctl: 'libuv loops',
  epoll_wait: 'libuv loops',
  epoll_pwait: 'libuv loops',
  epoll_pwait2: 'libuv loops',
  poll: 'libuv',
  ppoll: 'libuv',
  eventfd2: 'libuv async handles',
  pipe2: 'libuv signal pipes',
  read: 'sockets and pipes',
  write: 'sockets, pipes, the log on stderr',
  readv: 'sockets',
  writev: 'sockets',
  pread64: 'the flight recorder file opened before lockdown',
  pwrite64: 'the flight recorder file opened before lockdown',
  lseek: 'open descriptors',
  close: 'descriptors',
  dup: 'descriptors',
  dup3: 'descriptors',
  fcntl: 'descriptor flags',
  ioctl: 'FIONBIO on sockets, terminals',
  fstat: 'open descriptors',
  fsync: 'the flight recorder',
  fdatasync: 'the flight recorder',
  ftruncate: 'the flight recorder',
  socketpair: 'libuv',
  accept: 'the mesh socket',
  accept4: 'the mesh socket (libuv)',
  connect: 'reconnecting to the supervisor over a Unix socket (only AF_UNIX sockets can exist)',
  sendmsg: 'sockets',
  recvmsg: 'sockets',
  sendto: 'sockets',
  recvfrom: 'sockets',
  shutdown: 'sockets',
  getsockname: 'sockets',
  getpeername: 'sockets',
  getsockopt: 'sockets',
  setsockopt: 'sockets',
  // identity and limits the runtime asks about
  getpid: 'logging',
  getppid: 'libuv',
  getuid: 'Node',
  geteuid: 'Node',
  getgid: 'Node',
  getegid: 'Node',
  uname: 'os.release',
  sysinfo: 'V8 heap sizing',
  wait4: 'libuv reaps the esbuild service that built the bootstrap (it exits before lockdown)',
  getrlimit: 'Node',
  prlimit64: 'Node and V8 stack limits',
  getrusage: 'process.cpuUsage',
  getrandom: 'OpenSSL and V8 seeds',
};

/** Refused with EACCES: every syscall that names a path (the root is empty anyway), and exec. */
export const REFUSED_PATHS = [
  'open',
  'openat',
  'openat2',
  'creat',
  'execve',
  'execveat',
  'getcwd',
  'readlink',
  'readlinkat',
  'newfstatat',
  'statx',
  'stat',
  'lstat',
  'access',
  'faccessat',
  'faccessat2',
  'mkdir',
  'mkdirat',
  'rmdir',
  'unlink',
  'unlinkat',
  'rename',
  'renameat',
  'renameat2',
  'symlink',
  'symlinkat',
  'link',
  'linkat',
  'chmod',
  'fchmodat',
  'chown',
  'fchownat',
  'lchown',
  'truncate',
  'utimes',
  'utimensat',
  'futimesat',
  'inotify_add_watch',
  'chdir',
  'statfs',
  'mknod',
  'mknodat',
];

const BPF = { LD_W_ABS: 0x20, JEQ: 0x15, JGE: 0x35, JSET: 0x45, RET: 0x06 } as const;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
export const RET = { KILL_PROCESS: 0x80000000, ALLOW: 0x7fff0000, errno: (n: number) => 0x00050000 | n } as const;
export const ERRNO = { EPERM: 1, EACCES: 13, ENOSYS: 38 } as const;
const AF_UNIX = 1;
const AF_INET = 2;
const CLONE_THREAD = 0x00010000;
/** Offsets into struct seccomp_data. */
const NR = 0;
const ARCH = 4;
const ARG0_LOW = 16;

/** Refused by the outer filter (bwrap applies it before Node starts): nothing of the runtime uses them. */
export const OUTER_REFUSED = [
  'ptrace',
  'process_vm_readv',
  'process_vm_writev',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'keyctl',
  'add_key',
  'request_key',
  'mount',
  'umount2',
  'chroot',
  'unshare',
  'setns',
  'kexec_load',
  'kexec_file_load',
  'init_module',
  'finit_module',
  'delete_module',
  'swapon',
  'reboot',
  'personality',
];
/**
 * io_uring runs file and socket operations that seccomp never sees. libuv sets up rings at start-up
 * whatever UV_USE_IO_URING says; told io_uring does not exist (ENOSYS) it uses epoll throughout.
 */
const IO_URING = ['io_uring_setup', 'io_uring_enter', 'io_uring_register'];

type Insn = [code: number, jt: number, jf: number, k: number];

function syscallNumber(name: string): number {
  const n = SYSCALLS_X86_64[name];
  if (n === undefined) throw new Error(`no x86-64 number for syscall ${name}`);
  return n;
}

/** The start every program shares: x86-64 only, no x32 numbers; the accumulator then holds the syscall number. */
function prologue(): Insn[] {
  return [
    [BPF.LD_W_ABS, 0, 0, ARCH],
    [BPF.JEQ, 1, 0, AUDIT_ARCH_X86_64],
    [BPF.RET, 0, 0, RET.KILL_PROCESS], // another ABI (i386 via int 0x80) would renumber everything
    [BPF.LD_W_ABS, 0, 0, NR],
    [BPF.JGE, 0, 1, X32_SYSCALL_BIT],
    [BPF.RET, 0, 0, RET.KILL_PROCESS], // x32 numbers alias x86-64 ones
  ];
}

function rule(prog: Insn[], name: string, action: number): void {
  prog.push([BPF.JEQ, 0, 1, syscallNumber(name)], [BPF.RET, 0, 0, action]);
}

/** 8 bytes per instruction (struct sock_filter), little-endian. */
function encode(prog: Insn[]): Buffer {
  const out = Buffer.alloc(prog.length * 8);
  prog.forEach(([code, jt, jf, k], i) => {
    out.writeUInt16LE(code, i * 8);
    out.writeUInt8(jt, i * 8 + 2);
    out.writeUInt8(jf, i * 8 + 3);
    out.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return out;
}

/** The outer filter: everything is allowed but io_uring (ENOSYS) and OUTER_REFUSED (EPERM). */
export function compileOuterPolicy(): Buffer {
  const prog = prologue();
  for (const name of IO_URING) rule(prog, name, RET.errno(ERRNO.ENOSYS));
  for (const name of OUTER_REFUSED) rule(prog, name, RET.errno(ERRNO.EPERM));
  prog.push([BPF.RET, 0, 0, RET.ALLOW]);
  return encode(prog);
}

/**
 * The inner filter, installed by the process itself once loaded: the allow list; everything else
 * kills. `tcp`: TCP sockets too, for a sandbox whose relays (lib/relay.ts) listen on loopback — in its
 * own network namespace nothing else is there to reach.
 */
export function compilePolicy(opts: { tcp?: boolean } = {}): Buffer {
  const prog = prologue();
  for (const name of Object.keys(ALLOWED)) rule(prog, name, RET.ALLOW);
  for (const name of REFUSED_PATHS) rule(prog, name, RET.errno(ERRNO.EACCES));
  rule(prog, 'clone3', RET.errno(ERRNO.ENOSYS)); // glibc then falls back to clone, which is checked below
  for (const name of ['fork', 'vfork']) rule(prog, name, RET.errno(ERRNO.EPERM)); // child_process fails, not the process
  for (const name of ['setpriority', 'sched_setparam', 'sched_setscheduler']) rule(prog, name, RET.errno(ERRNO.EPERM)); // priorities stay as they are
  for (const name of IO_URING) rule(prog, name, RET.errno(ERRNO.ENOSYS));
  // Blocks that inspect an argument come last: they overwrite the accumulator (the syscall number).
  // socket(): Unix sockets only (and IPv4 with relays). Anything else fails softly — no network exists here anyway.
  if (opts.tcp)
    prog.push(
      [BPF.JEQ, 0, 5, syscallNumber('socket')],
      [BPF.LD_W_ABS, 0, 0, ARG0_LOW],
      [BPF.JEQ, 1, 0, AF_UNIX],
      [BPF.JEQ, 0, 1, AF_INET],
      [BPF.RET, 0, 0, RET.ALLOW],
      [BPF.RET, 0, 0, RET.errno(ERRNO.EACCES)],
    );
  else
    prog.push(
      [BPF.JEQ, 0, 4, syscallNumber('socket')],
      [BPF.LD_W_ABS, 0, 0, ARG0_LOW],
      [BPF.JEQ, 0, 1, AF_UNIX],
      [BPF.RET, 0, 0, RET.ALLOW],
      [BPF.RET, 0, 0, RET.errno(ERRNO.EACCES)],
    );
  // clone(): threads only; a new process (fork) is refused.
  prog.push(
    [BPF.JEQ, 0, 4, syscallNumber('clone')],
    [BPF.LD_W_ABS, 0, 0, ARG0_LOW],
    [BPF.JSET, 0, 1, CLONE_THREAD],
    [BPF.RET, 0, 0, RET.ALLOW],
    [BPF.RET, 0, 0, RET.errno(ERRNO.EPERM)],
  );
  prog.push([BPF.RET, 0, 0, RET.KILL_PROCESS]);
  return encode(prog);
}

/**
 * Runs a compiled program on one syscall, as the kernel would: what the tests use to check the
 * program against the tables without installing it.
 */
export function evaluate(program: Buffer, call: { arch?: number; nr: number; args?: number[] }): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(call.nr >>> 0, NR);
  data.writeUInt32LE((call.arch ?? AUDIT_ARCH_X86_64) >>> 0, ARCH);
  (call.args ?? []).forEach((a, i) => data.writeUInt32LE(a >>> 0, ARG0_LOW + i * 8));
  let acc = 0;
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    if (code === BPF.LD_W_ABS) acc = data.readUInt32LE(k);
    else if (code === BPF.RET) return k;
    else if (code === BPF.JEQ) pc += acc === k ? jt : jf;
    else if (code === BPF.JGE) pc += acc >= k ? jt : jf;
    else if (code === BPF.JSET) pc += (acc & k) !== 0 ? jt : jf;
    else throw new Error(`unknown instruction ${code}`);
  }
  throw new Error('the program fell off its end');
}
