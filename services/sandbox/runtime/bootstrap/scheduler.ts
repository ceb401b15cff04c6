/**
 * `scheduler.wait(ms, { signal })` as Workers has it: a promise that resolves after `ms`, on the
 * request's own timers (so it is refused outside a request and dropped when the request ends, as
 * setTimeout is), rejected with the signal's reason if the signal aborts first.
 */
import type { Timers } from './timers.ts';
import { AbortSignal } from './web-globals.ts';

const PromiseCtor = Promise;

export function installScheduler(g: Record<string, unknown>, timers: Pick<Timers, 'add' | 'clear'>): void {
  function wait(ms: unknown, options?: { signal?: unknown }): Promise<void> {
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal))
      return PromiseCtor.reject(new TypeError('scheduler.wait: options.signal must be an AbortSignal'));
    return new PromiseCtor<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        timers.clear(id);
        reject(signal!.reason);
      };
      const id = timers.add(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        ms,
        [],
        false,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  g.scheduler = Object.freeze({ wait });
}
