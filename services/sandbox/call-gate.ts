/**
 * At most a number of calls at once; the rest wait their turn, in order. A sandbox process has one
 * session to the supervisor for all its workers, and the supervisor ends a session whose calls in
 * flight go over its quota: the calls the sandbox makes on it, for whichever worker, pass this gate.
 */
import { DEFAULT_QUOTAS } from '../../lib/rpc/quotas.ts';

export class CallGate {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(max: number) {
    this.#free = max;
  }

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await call();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** Half the supervisor's quota: the rest is headroom for the calls it makes on us and for replies in flight. */
export const supervisorCalls = new CallGate(DEFAULT_QUOTAS.maxCallsInFlight / 2);
