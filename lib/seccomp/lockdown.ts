/**
 * The sandbox's second layer: after the runtime has loaded and before any tenant code runs, the
 * process installs the seccomp filter of policy.ts on all its threads. Irreversible by design.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { compilePolicy } from './policy.ts';

const ADDON = join(import.meta.dirname, '..', '..', 'native', 'seccomp.node');

interface Addon {
  install(program: Buffer): void;
}

/** The addon, or why it cannot be had (not built, wrong platform). */
export function seccompAddon(): { addon: Addon } | { problem: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return { problem: `seccomp filters are built for linux/x64, not ${process.platform}/${process.arch}` };
  try {
    return { addon: createRequire(import.meta.url)(ADDON) as Addon };
  } catch (e) {
    return { problem: `native/seccomp.node did not load (${(e as Error).message.split('\n')[0]}); install a C compiler and run \`npm rebuild\`` };
  }
}

/**
 * Installs the filter on every thread of this process; throws (and installs nothing) if it cannot,
 * or if the process was not started under the outer filter (bubblewrap's): without it libuv holds
 * io_uring rings, which the inner filter would leave unusable and which seccomp cannot see into.
 */
export function lockdown(opts: { tcp?: boolean } = {}, status = readFileSync('/proc/self/status', 'utf8')): void {
  if (!/^Seccomp:\s+2$/m.test(status))
    throw new Error(
      'this sandbox was not started inside the process sandbox (no outer seccomp filter): start it with `cordon start`, or with --insecure-no-process-sandbox for development',
    );
  const found = seccompAddon();
  if ('problem' in found) throw new Error(found.problem);
  found.addon.install(compilePolicy(opts));
}
