/**
 * The CPU-time and wall-time watchdogs of an isolate's requests, invocations and loading. Either one
 * firing ends the isolate (the only reliable way to stop it: isolated-vm's `timeout` does not cover
 * promise continuations).
 */
import type ivm from 'isolated-vm';

const WATCHDOG_MS = 10;
/**
 * A capability call is told the worker's time ends this much before the wall-time watchdog fires (a
 * tenth of the limit for short ones), so a storage call interrupted at its deadline still reaches the
 * worker as an error it can handle rather than the isolate being disposed under it.
 */
const CALL_MARGIN_MS = 250;

/** The CPU and wall-time watchdogs of one request (or of loading the worker). */
export interface Watch {
  readonly deadline: number;
  /** Stop the wall-time watchdog only (waitUntil outlives it, without being killed by it). */
  stopWall(): void;
  stop(): void;
}

export interface WatchdogHooks {
  /** A limit was broken: end the isolate. */
  kill(limit: 'cpu' | 'wall'): void;
  /** isolated-vm disposed the isolate itself (out of memory): answers will not come. */
  gone(): void;
}

/** The watchdogs armed on one isolate now: the earliest deadline ends it. */
export class Watchdogs {
  readonly #isolate: ivm.Isolate;
  readonly #hooks: WatchdogHooks;
  readonly #armed = new Set<Watch>();

  constructor(isolate: ivm.Isolate, hooks: WatchdogHooks) {
    this.#isolate = isolate;
    this.#hooks = hooks;
  }

  /** Arm the CPU-time and wall-time watchdogs; either disposes the isolate when it fires. */
  arm({ cpuMs, wallMs }: { cpuMs: number; wallMs: number }): Watch {
    const cpuStart = this.#isolate.cpuTime;
    const cpuLimit = BigInt(cpuMs) * 1_000_000n;
    const interval = setInterval(() => {
      if (this.#isolate.isDisposed) {
        clearInterval(interval);
        return this.#hooks.gone();
      }
      if (this.#isolate.cpuTime - cpuStart > cpuLimit) this.#hooks.kill('cpu');
    }, WATCHDOG_MS);
    const wall = setTimeout(() => this.#hooks.kill('wall'), wallMs);
    const watch: Watch = {
      deadline: Date.now() + wallMs,
      stopWall: () => clearTimeout(wall),
      stop: () => {
        clearInterval(interval);
        clearTimeout(wall);
        this.#armed.delete(watch);
      },
    };
    this.#armed.add(watch);
    return watch;
  }

  /** What the worker has left before the first of its deadlines, less the margin (CALL_MARGIN_MS). */
  timeLeft(wallMs: number): number | undefined {
    let deadline = Infinity;
    for (const w of this.#armed) deadline = Math.min(deadline, w.deadline);
    if (deadline === Infinity) return undefined;
    const margin = Math.min(CALL_MARGIN_MS, wallMs / 10);
    return Math.max(0, Math.floor(deadline - Date.now() - margin));
  }
}
