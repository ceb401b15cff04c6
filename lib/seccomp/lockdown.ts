/**
 * The sandbox's second layer: after the runtime has loaded and before any tenant code runs, the
 * process installs the seccomp filter of policy.ts on all its threads. Irreversible by design.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { compilePolicy } from './policy.ts';

const ADDON = join(import.meta.dirname, '..', '..', 'native', 'seccomp.node');

interface Addon {
  install(program: Buffer): void;
}

/** The addon, or why it cannot be had (not built, wrong platform). */
export function seccompAddon(): { addon: Addon } | { problem: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') return { problem: `seccomp filters are built for linux/x64, not ${process.platform}/${process.arch}` };
  try {
    return { addon: createRequire(import.meta.url)(ADDON) as Addon };
  } catch (e) {
    return { problem: `native/seccomp.node did not load (${(e as Error).message.split('\n')[0]}); install a C compiler and run \`npm rebuild\`` };
  }
}

/** Installs the filter on every thread of this process; throws (and installs nothing) if it cannot. */
export function lockdown(opts: { tcp?: boolean } = {}): void {
  const found = seccompAddon();
  if ('problem' in found) throw new Error(found.problem);
  found.addon.install(compilePolicy(opts));
}
