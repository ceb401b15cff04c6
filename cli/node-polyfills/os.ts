/**
 * `node:os` as workerd has it (from the 2025-09-15 compatibility date, or with enable_nodejs_os_module):
 * a worker runs on no particular machine, so every answer is workerd's fixed one (no CPUs, no memory, no
 * network interfaces, `localhost`, `/tmp/`), the host's own values never reach the isolate. The
 * constants are unenv's (Node's tables). Arguments are checked as workerd checks them.
 */
import { constants } from 'unenv/node/os';
import { describeReceived, nodeError } from './node-error.ts';

/** ERR_INVALID_ARG_TYPE for a value that is not a number. */
function checkNumber(name: string, value: unknown): void {
  if (typeof value === 'number') return;
  throw nodeError(TypeError, `The "${name}" argument must be of type number. Received ${describeReceived(value)}`, 'ERR_INVALID_ARG_TYPE');
}

export const EOL = '\n';
export const devNull = '/dev/null';
export const arch = (): string => 'x64';
export const machine = (): string => 'x86_64';
export const platform = (): string => 'linux';
export const type = (): string => 'Linux';
export const release = (): string => '';
export const version = (): string => '';
export const endianness = (): 'LE' => 'LE';
export const hostname = (): string => 'localhost';
export const homedir = (): string => '/tmp/';
export const tmpdir = (): string => '/tmp/';
export const availableParallelism = (): number => 1;
export const cpus = (): never[] => [];
export const freemem = (): number => 0;
export const totalmem = (): number => 0;
export const uptime = (): number => 0;
export const loadavg = (): number[] => [0, 0, 0];
export const networkInterfaces = (): Record<string, never> => ({});
export const userInfo = (): Record<string, never> => ({});

export function getPriority(pid: unknown = 0): number {
  checkNumber('pid', pid);
  return 0;
}

export function setPriority(pid: unknown, priority: unknown): void {
  checkNumber('pid', pid);
  checkNumber('priority', priority);
}

export { constants };

export default {
  EOL,
  arch,
  availableParallelism,
  constants,
  cpus,
  devNull,
  endianness,
  freemem,
  getPriority,
  homedir,
  hostname,
  loadavg,
  machine,
  networkInterfaces,
  platform,
  release,
  setPriority,
  tmpdir,
  totalmem,
  type,
  uptime,
  userInfo,
  version,
};
