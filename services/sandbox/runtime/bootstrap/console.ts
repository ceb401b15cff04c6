/**
 * `console`: every level goes to the host's log callback, one line per call, at most 64 KiB, printed as
 * workerd prints it: Node's util.format of the arguments (objects as util.inspect shows them; `%s`, `%d`,
 * `%o`, … formats). Plain strings are joined here; anything else crosses as LogValues (log-mirror.ts) and
 * the host formats them with Node's own code (log-format.ts), so no formatter lives in any isolate. The
 * describer itself is loaded on an isolate's first line with a value (its script from the host, run by the
 * Function constructor captured before lockdown), so an isolate that never logs one holds none of it.
 */
import type { HostCallbacks } from '../abi.ts';
import type * as LogMirror from './log-mirror.ts';

// Captured before tenant code can patch them.
const JSONstringify = JSON.stringify;
const FunctionCtor = Function;
const StringCtor = String;
const apply = Reflect.apply;
const join = Array.prototype.join;
const includes = String.prototype.includes;
const slice = String.prototype.slice;

const MAX_LINE = 64 * 1024;

/** A value as the runtime's own messages show it (an exception's text in a response or a result). */
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
export function installConsole(g: Record<string, unknown>, log: HostCallbacks['log'], mirrorSource: HostCallbacks['logMirror']): (...args: unknown[]) => void {
  let mirror: typeof LogMirror | undefined;
  const consoleObj: Record<string, (...a: unknown[]) => void> = {};
  for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
    consoleObj[level] = (...args: unknown[]) => {
      let plain = true;
      for (let i = 0; i < args.length && plain; i++) plain = typeof args[i] === 'string' && !(i === 0 && apply(includes, args[0], ['%']));
      if (plain) return log(level, apply(slice, apply(join, args, [' ']), [0, MAX_LINE]) as string);
      let values;
      try {
        mirror ??= apply(new FunctionCtor(mirrorSource()), undefined, []) as typeof LogMirror;
        values = mirror.mirrorArgs(args);
      } catch (e) {
        // A value that throws as it is looked at (a hostile proxy; a toString or toJSON of `%s`/`%j`): said so, as util.format would throw.
        return log(level, `[a console line that could not be printed: ${show(e)}]`);
      }
      log(level, values);
    };
  }
  consoleObj.trace = consoleObj.debug!;
  g.console = Object.freeze(consoleObj);
  return consoleObj.error!;
}
