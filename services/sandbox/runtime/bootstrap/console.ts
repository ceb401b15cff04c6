/** `console`: every level goes to the host's log callback, one line per call, at most 64 KiB. */
import type { HostCallbacks } from '../abi.ts';

// Captured before tenant code can patch them.
const JSONstringify = JSON.stringify;
const StringCtor = String;

/** A value as a log line shows it. */
export function show(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
  try {
    return JSONstringify(v) ?? StringCtor(v);
  } catch {
    return StringCtor(v);
  }
}

/** Installs a frozen `console`; returns its `error`, for the runtime's own reports of tenant exceptions. */
export function installConsole(g: Record<string, unknown>, log: HostCallbacks['log']): (...args: unknown[]) => void {
  const consoleObj: Record<string, (...a: unknown[]) => void> = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    consoleObj[level] = (...args: unknown[]) =>
      log(
        level,
        args
          .map(show)
          .join(' ')
          .slice(0, 64 * 1024),
      );
  }
  consoleObj.trace = consoleObj.debug!;
  g.console = Object.freeze(consoleObj);
  return consoleObj.error!;
}
