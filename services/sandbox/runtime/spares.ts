/**
 * Isolates made ahead of need. Creating an isolate from the start-up snapshot costs ~5 ms of
 * synchronous deserialisation, the largest part of a cold start; a spare made while the process is
 * idle takes that off the request's path. A spare is a bare isolate with an empty context: no
 * tenant has touched it, and each is handed to exactly one worker instance, never back.
 * Only the default memory limit is kept spare (V8 fixes the limit when the isolate is made).
 */
import ivm from 'isolated-vm';
import { bootstrap } from './bootstrap-bundle.ts';

const QUIET_MS = 25;

export interface Spare {
  isolate: ivm.Isolate;
  context: ivm.Context;
}

export class SpareIsolates {
  readonly #spares: Spare[] = [];
  readonly #size: number;
  readonly #memoryMb: number;
  readonly #onCatastrophe: (message: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #disposed = false;

  constructor(opts: { size: number; memoryMb: number; onCatastrophe: (message: string) => void }) {
    this.#size = opts.size;
    this.#memoryMb = opts.memoryMb;
    this.#onCatastrophe = opts.onCatastrophe;
    this.#refill();
  }

  /** A spare for an isolate with this memory limit, if one is ready; a new one is then made in the background. */
  take(memoryMb: number): Spare | undefined {
    const spare = memoryMb === this.#memoryMb ? this.#spares.pop() : undefined;
    this.#refill();
    return spare;
  }

  get ready(): number {
    return this.#spares.length;
  }

  /**
   * Made one at a time, and only once cold starts have paused for QUIET_MS: making one blocks the
   * event loop for the deserialisation, which must not land in the middle of a burst of cold starts
   * (those make their own isolates, as without spares).
   */
  #refill(): void {
    clearTimeout(this.#timer);
    if (this.#disposed || this.#spares.length >= this.#size) return;
    this.#timer = setTimeout(() => {
      void bootstrap().then((boot) => {
        if (this.#disposed || this.#spares.length >= this.#size) return;
        const isolate = new ivm.Isolate({ snapshot: boot.snapshot, memoryLimit: this.#memoryMb, onCatastrophicError: this.#onCatastrophe });
        this.#spares.push({ isolate, context: isolate.createContextSync() });
        this.#refill();
      });
    }, QUIET_MS).unref();
  }

  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    for (const s of this.#spares.splice(0)) s.isolate.dispose();
  }
}
