/**
 * The one error type for what Cordon refuses or cannot do. It carries the HTTP status the admin API
 * answers with, and whether it is a refusal — the caller asked for something it may not do or have —
 * which the capabilities audit (and count toward quarantine). Both are decided where the error is
 * thrown, so no handler guesses them from the error's class or its words. Its message is written for
 * the caller; errors of any other type are the host's own and are not shown to a tenant.
 */
export class CordonError extends Error {
  declare readonly status: number;
  declare readonly refusal: boolean;
  constructor(message: string, opts: { status?: number; refusal?: boolean } = {}) {
    super(message);
    // Not enumerable: capnweb sends an error's own enumerable properties to the peer, and these are the host's.
    Object.defineProperties(this, { status: { value: opts.status ?? 500 }, refusal: { value: opts.refusal ?? false } });
  }
}
