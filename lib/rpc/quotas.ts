/**
 * Per-session quotas. capnweb enforces message depth and size itself (RpcSessionOptions.limits);
 * the counts below are watched by the transport, which reads just the head of each capnweb message
 * (`["push"`, `["release",id`, …) rather than parsing it a second time.
 */
import { CordonError } from '../errors.ts';

export interface Quotas {
  /** Longest message in bytes; also the transport's frame limit. */
  maxMessage: number;
  /** Deepest nesting of a value in a message. */
  maxDepth: number;
  /** Objects this side exports to the peer at once (capabilities handed out plus pending calls). */
  maxExports: number;
  /** Calls from the peer that have started and neither finished nor been released. */
  maxCallsInFlight: number;
}

export const DEFAULT_QUOTAS: Quotas = {
  maxMessage: 16 * 1024 * 1024,
  maxDepth: 64,
  maxExports: 10_000,
  maxCallsInFlight: 1_000,
};

/** The peer went over a quota: 429, and a refusal (a peer that floods us is worth an audit entry). */
export class QuotaExceededError extends CordonError {
  constructor(message: string) {
    super(message, { status: 429, refusal: true });
    // The peer sees this name (capnweb sends it with the rejection); tests and logs match on it.
    this.name = 'QuotaExceededError';
  }
}

const INCOMING_CALL = /^\["(?:push|stream|pipe)"/;
const RELEASE = /^\["release",(\d+),/;
const OUTGOING_RESULT = /^\["(?:resolve|reject)",(\d+),/;

/** Tracks the peer's calls in flight from the messages that pass through the transport. */
export class CallAccounting {
  #nextId = 1; // capnweb numbers the peer's pushes 1, 2, 3, … in arrival order
  #pending = new Set<number>();
  readonly #quotas: Quotas;
  constructor(quotas: Quotas) {
    this.#quotas = quotas;
  }

  #admitted = 0;

  get inFlight(): number {
    return this.#pending.size + this.#admitted;
  }

  /**
   * A call from the peer that does not pass through capnweb (the HTTP fast path) counts against the
   * same quota: throws QuotaExceededError when it would go over; call the returned function once it ends.
   */
  admit(): () => void {
    if (this.inFlight >= this.#quotas.maxCallsInFlight) throw new QuotaExceededError(`peer exceeded ${this.#quotas.maxCallsInFlight} calls in flight`);
    this.#admitted++;
    let ended = false;
    return () => {
      if (!ended) this.#admitted--;
      ended = true;
    };
  }

  /** Throws QuotaExceededError when the peer goes over its in-flight quota. */
  incoming(message: string): void {
    if (INCOMING_CALL.test(message)) {
      this.#pending.add(this.#nextId++);
      if (this.inFlight > this.#quotas.maxCallsInFlight) {
        throw new QuotaExceededError(`peer exceeded ${this.#quotas.maxCallsInFlight} calls in flight`);
      }
      return;
    }
    const release = RELEASE.exec(message);
    if (release) this.#pending.delete(Number(release[1]));
  }

  outgoing(message: string): void {
    const result = OUTGOING_RESULT.exec(message);
    if (result) this.#pending.delete(Number(result[1]));
  }
}
