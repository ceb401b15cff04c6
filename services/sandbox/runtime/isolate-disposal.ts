/**
 * Idle isolates torn down a few per turn of the event loop, not all at once.
 *
 * Disposing a V8 isolate is synchronous on the thread that asks: V8 frees its heap there. That is
 * ~0.5 ms for a hello-world isolate, on the sandbox's event loop. The idle sweep lets go of every
 * isolate idle past its time in one go, and after a burst of Dynamic Workers that is hundreds. Each such
 * sweep held the event loop, and every other worker's requests with it, for tens of ms.
 *
 * Only isolates with nothing running come here (WorkerInstance.dispose). An isolate that is running
 * code, such as one killed at a limit, is disposed at once, since disposing it is what stops it.
 */

/** What is disposed: an isolated-vm isolate. */
export interface Disposable {
  readonly isDisposed: boolean;
  dispose(): void;
}

/** Isolates disposed per turn at most: ~1 ms of the event loop. */
export const DISPOSED_PER_TURN = 2;

export class PacedDisposal {
  readonly #queue: Disposable[] = [];
  #scheduled = false;
  readonly #perTurn: number;
  readonly #nextTurn: (run: () => void) => void;

  /** `nextTurn` runs its callback on a coming turn of the event loop (setImmediate; a test's own, to count turns). */
  constructor(perTurn = DISPOSED_PER_TURN, nextTurn: (run: () => void) => void = (run) => void setImmediate(run)) {
    this.#perTurn = perTurn;
    this.#nextTurn = nextTurn;
  }

  /** Isolates waiting to be disposed. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Disposes `isolate` on a coming turn of the event loop, after those already waiting. */
  add(isolate: Disposable): void {
    this.#queue.push(isolate);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#nextTurn(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    for (const isolate of this.#queue.splice(0, this.#perTurn)) {
      try {
        if (!isolate.isDisposed) isolate.dispose();
      } catch {
        // Already gone (disposed by isolated-vm itself, e.g. at its memory limit): nothing left to free.
      }
    }
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      this.#nextTurn(() => this.#turn());
    }
  }
}

/** The process's one queue: the event loop it paces is the process's. */
export const isolateDisposal = new PacedDisposal();
