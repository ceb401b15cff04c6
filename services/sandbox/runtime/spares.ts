/**
 * Worker instances made ahead of need. Creating an isolate from the start-up snapshot (~3 ms of
 * deserialisation: on a thread of isolated-vm's pool where it was rebuilt with Isolate.createAsync,
 * else synchronously on this one) and initialising its context (host callbacks, the bootstrap, the
 * lockdown: ~4 ms) is most of a cold start; a spare made while the process is idle takes both off
 * the request's path, leaving the worker's own modules. A spare has not met any tenant: no worker
 * code has run in it, and each is handed to exactly one worker, never back. Only the default memory
 * limit is kept spare (V8 fixes the limit when the isolate is made), and not for workers that may
 * eval (the lockdown decides that at initialisation).
 *
 * Two kinds, `size` of each: plain ones, and ones with the url unit loaded, for workers whose code names
 * URL (most take their request's URL apart; loading the unit is otherwise ~half of such a cold start). A
 * worker that names no URL never gets one of the latter: an isolate that makes no URL never carries the
 * unit (the memory the lazy unit saves). One that names URL takes a plain spare when no other is ready.
 */
import { WorkerInstance } from './instance.ts';

const QUIET_MS = 5;

export class SpareIsolates {
  readonly #plain: WorkerInstance[] = [];
  readonly #withUrl: WorkerInstance[] = [];
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

  /**
   * A spare for an instance with this memory limit, if one is ready, with the url unit loaded where the worker's
   * code names URL (`namesUrl`) and one is ready; a new one is then made in the background.
   */
  take(memoryMb: number, namesUrl: boolean): WorkerInstance | undefined {
    const spare = memoryMb !== this.#memoryMb ? undefined : ((namesUrl ? this.#withUrl.pop() : undefined) ?? this.#plain.pop());
    this.#refill();
    return spare;
  }

  get ready(): number {
    return this.#plain.length + this.#withUrl.length;
  }

  /**
   * Made one at a time, once no cold start has begun for QUIET_MS, so not in the middle of a burst of cold
   * starts (those make their own isolates, as without spares). A spare made beside a cold start still
   * under way is the next one's: with a steady stream of them (50 new Dynamic Workers a second) each takes
   * a spare and answers in half the time for the same CPU, where waiting for a 25 ms pause never made one.
   */
  #refill(): void {
    clearTimeout(this.#timer);
    // The kind with fewer ready is made first.
    const kind = this.#withUrl.length < this.#plain.length ? this.#withUrl : this.#plain;
    if (this.#disposed || this.#making || kind.length >= this.#size) return;
    this.#timer = setTimeout(() => {
      this.#making = true;
      WorkerInstance.prepare(this.#onCatastrophe, this.#memoryMb, kind === this.#withUrl).then(
        (spare) => {
          this.#making = false;
          if (this.#disposed || kind.length >= this.#size) return spare.dispose();
          kind.push(spare);
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
    for (const s of [...this.#plain.splice(0), ...this.#withUrl.splice(0)]) s.dispose();
  }
}
