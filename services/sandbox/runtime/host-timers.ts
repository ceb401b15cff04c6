/**
 * The host's side of an isolate's timers: the bootstrap's setTimeout asks the host for a real timer
 * (HostCallbacks.setTimer), and the host calls back into the isolate when it elapses (Entry.fireTimer).
 * None outlives the isolate: they are all dropped when its last request ends and when it is disposed.
 */
export interface HostTimerDeps<T> {
  /** The isolate is gone: no timer is set, and none fires. */
  disposed(): boolean;
  /** Timer `id` elapsed: call into the isolate, on behalf of the `owners` it was set with. */
  fire(id: number, owners: T): void;
}

/** `T`: whom a timer's callback is charged to (watchdog.ts), kept with it from when it is set. */
export class HostTimers<T> {
  readonly #timers = new Map<number, NodeJS.Timeout>();
  readonly #deps: HostTimerDeps<T>;

  constructor(deps: HostTimerDeps<T>) {
    this.#deps = deps;
  }

  /** `id` and `ms` come from the isolate: checked here. */
  set(id: number, ms: number, owners: T): void {
    if (this.#deps.disposed() || typeof id !== 'number') return;
    this.clear(id);
    const delay = Math.max(0, Math.min(Number(ms) || 0, 2 ** 31 - 1));
    const t = setTimeout(() => {
      this.#timers.delete(id);
      if (this.#deps.disposed()) return;
      this.#deps.fire(id, owners);
    }, delay);
    this.#timers.set(id, t);
  }

  clear(id: number): void {
    const t = this.#timers.get(id);
    if (t) clearTimeout(t);
    this.#timers.delete(id);
  }

  clearAll(): void {
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
  }
}
