/**
 * setTimeout, setInterval, their clears and queueMicrotask. A timer belongs to a request: the host
 * keeps the real timer and calls back (Entry.fireTimer); outside a request none can be set, and the
 * host's `end` drops them all.
 */
import type { HostCallbacks } from '../abi.ts';
import { setClock } from './clock.ts';
import { bindToFrame, enterRoot } from './async-context.ts';

const MAX_TIMERS = 10_000;
const PromiseCtor = Promise;

export interface Timers {
  add(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number;
  clear(id: unknown): void;
  /** The host's timer `id` fired (Entry.fireTimer). */
  fire(id: number, now: number): void;
  /** No request is in flight any more (Entry.end). */
  clearAll(): void;
}

export function installTimers(
  g: Record<string, unknown>,
  host: Pick<HostCallbacks, 'setTimer' | 'clearTimer'>,
  inRequest: () => boolean,
  logError: (...args: unknown[]) => void,
): Timers {
  const timers = new Map<number, { fn: (...a: unknown[]) => void; args: unknown[]; interval: number | undefined }>();
  let nextTimer = 1;
  function add(fn: unknown, ms: unknown, args: unknown[], repeat: boolean): number {
    if (typeof fn !== 'function') throw new TypeError('setTimeout/setInterval need a function (strings are not evaluated)');
    if (!inRequest()) throw new Error('Timers can only be set while a request is being handled (not in global scope)');
    if (timers.size >= MAX_TIMERS) throw new RangeError(`too many pending timers (limit ${MAX_TIMERS})`);
    const delay = Math.max(0, Math.min(Number(ms) || 0, 2 ** 31 - 1));
    const id = nextTimer++;
    timers.set(id, { fn: bindToFrame(fn as (...a: unknown[]) => void), args, interval: repeat ? delay : undefined });
    host.setTimer(id, delay);
    return id;
  }
  function clear(id: unknown): void {
    if (timers.delete(Number(id))) host.clearTimer(Number(id));
  }
  function fire(id: number, now: number): void {
    const t = timers.get(id);
    if (!t) return;
    setClock(now);
    enterRoot();
    if (t.interval === undefined) timers.delete(id);
    else host.setTimer(id, t.interval);
    try {
      t.fn(...t.args);
    } catch (e) {
      logError('uncaught exception in a timer:', e);
    }
  }
  g.setTimeout = (fn: unknown, ms?: unknown, ...args: unknown[]) => add(fn, ms, args, false);
  g.setInterval = (fn: unknown, ms?: unknown, ...args: unknown[]) => add(fn, ms, args, true);
  g.clearTimeout = clear;
  g.clearInterval = clear;
  g.queueMicrotask = (fn: unknown) => {
    if (typeof fn !== 'function') throw new TypeError('queueMicrotask needs a function');
    PromiseCtor.resolve()
      .then(bindToFrame(fn as () => void))
      .catch((e) => logError('uncaught exception in a microtask:', e));
  };
  return { add, clear, fire, clearAll: () => timers.clear() };
}
