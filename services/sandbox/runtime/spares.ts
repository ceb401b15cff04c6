/**
 * Worker instances made ahead of need. Creating an isolate from the start-up snapshot (~3 ms of
 * deserialisation: on a thread of isolated-vm's pool where it was rebuilt with Isolate.createAsync,
 * else synchronously on this one) and initialising its context (host callbacks, the bootstrap, the
 * lockdown: ~4 ms) is most of a cold start; a spare made while the process is idle takes both off
 * the request's path, leaving the worker's own modules. A spare has not met any tenant: no worker
 * code has run in it, and each is handed to exactly one worker, never back. Only the default memory
 * limit is kept spare (V8 fixes the limit when the isolate is made), and not for workers that may
 * eval (the lockdown decides that at initialisation).
 */
import { WorkerInstance } from './instance.ts';

const QUIET_MS = 25;

export class SpareIsolates {
  readonly #spares: WorkerInstance[] = [];
  readonly #size: number;
  readonly #memoryMb: number;
  readonly #onCatastrophe: (message: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #making = false;
  #disposed = false;

  constructor(opts: { size: number; memoryMb: number; onCatastrophe: (message: string) => void }) {
    this.#size = opts.size;
    this.#memoryMb = opts.memoryMb;
    this.#onCatastrophe = opts.onCatastrophe;
    this.#refill();
  }

  /** A spare for an instance with this memory limit, if one is ready; a new one is then made in the background. */
  take(memoryMb: number): WorkerInstance | undefined {
    const spare = memoryMb === this.#memoryMb ? this.#spares.pop() : undefined;
    this.#refill();
    return spare;
  }

  get ready(): number {
    return this.#spares.length;
  }

  /**
   * Made one at a time, and only once cold starts have paused for QUIET_MS: making one takes CPU (and,
   * with the prebuilt isolated-vm, the event loop) that must not be taken from the middle of a burst of
   * cold starts (those make their own isolates, as without spares).
   */
  #refill(): void {
    clearTimeout(this.#timer);
    if (this.#disposed || this.#making || this.#spares.length >= this.#size) return;
    this.#timer = setTimeout(() => {
      this.#making = true;
      WorkerInstance.prepare(this.#onCatastrophe, this.#memoryMb).then(
        (spare) => {
          this.#making = false;
          if (this.#disposed || this.#spares.length >= this.#size) return spare.dispose();
          this.#spares.push(spare);
          this.#refill();
        },
        () => {
          this.#making = false; // tried again at the next take
        },
      );
    }, QUIET_MS).unref();
  }

  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    for (const s of this.#spares.splice(0)) s.dispose();
  }
}
