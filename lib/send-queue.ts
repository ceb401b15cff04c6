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
