/**
 * Sends items in order with at most `limit` calls in flight, the rest waiting here. A WebSocket
 * relayed over RPC needs this both ways: the mesh ends a session whose peer has too many calls in
 * flight, and a socket can deliver thousands of messages in one read.
 */
export class SendQueue<T> {
  readonly #limit: number;
  readonly #send: (item: T) => Promise<unknown>;
  readonly #settled: (item: T, error?: unknown) => void;
  readonly #waiting: T[] = [];
  #inFlight = 0;

  /** `settled` hears of each item once its call has finished (with the error if it failed). */
  constructor(limit: number, send: (item: T) => Promise<unknown>, settled: (item: T, error?: unknown) => void = () => {}) {
    this.#limit = limit;
    this.#send = send;
    this.#settled = settled;
  }

  /** Items queued or in flight. */
  get size(): number {
    return this.#waiting.length + this.#inFlight;
  }

  push(item: T): void {
    this.#waiting.push(item);
    this.#pump();
  }

  /** Drops what has not been sent yet. */
  clear(): void {
    this.#waiting.length = 0;
  }

  #pump(): void {
    while (this.#inFlight < this.#limit && this.#waiting.length) {
      const item = this.#waiting.shift()!;
      this.#inFlight++;
      this.#send(item).then(
        () => this.#done(item),
        (e: unknown) => this.#done(item, e ?? new Error('send failed')),
      );
    }
  }

  #done(item: T, error?: unknown): void {
    this.#inFlight--;
    this.#settled(item, error);
    this.#pump();
  }
}

/**
 * A SendQueue of batches: what is pushed in one tick goes in one call, in order, cut at `maxItems` items or
 * `maxBytes` bytes (an item larger than that goes alone), with at most `limit` calls in flight.
 */
export class BatchQueue<T> {
  readonly #opts: { maxItems: number; maxBytes: number; sizeOf: (item: T) => number };
  readonly #calls: SendQueue<T[]>;
  #gathering: T[] = [];

  /** `settled` hears of each call's items once it has finished (with the error if it failed). */
  constructor(
    opts: { limit: number; maxItems: number; maxBytes: number; sizeOf: (item: T) => number },
    send: (items: T[]) => Promise<unknown>,
    settled: (items: T[], error?: unknown) => void = () => {},
  ) {
    this.#opts = opts;
    this.#calls = new SendQueue<T[]>(opts.limit, send, settled);
  }

  /** 0 once everything pushed has been sent (items gathered this tick, and calls queued or in flight, otherwise). */
  get size(): number {
    return this.#gathering.length + this.#calls.size;
  }

  push(item: T): void {
    if (this.#gathering.push(item) === 1) queueMicrotask(() => this.#flush());
  }

  /** Drops what has not been sent yet. */
  clear(): void {
    this.#gathering = [];
    this.#calls.clear();
  }

  #flush(): void {
    const items = this.#gathering;
    this.#gathering = [];
    let batch: T[] = [];
    let bytes = 0;
    for (const item of items) {
      const size = this.#opts.sizeOf(item);
      if (batch.length > 0 && (batch.length >= this.#opts.maxItems || bytes + size > this.#opts.maxBytes)) {
        this.#calls.push(batch);
        batch = [];
        bytes = 0;
      }
      batch.push(item);
      bytes += size;
    }
    if (batch.length > 0) this.#calls.push(batch);
  }
}
