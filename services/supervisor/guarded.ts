/** How a capability method reports what it refused, and hands the tenant only what it may read. */
import { RpcTarget } from 'capnweb';
import { SpanKind } from '@opentelemetry/api';
import { CordonError } from '../../lib/errors.ts';
import { inSpan, traceAttributes } from '../../lib/telemetry.ts';
import type { PooledDatabase } from './sql-pool.ts';

export type Audit = (action: string, error: Error) => void;

/**
 * Turn a CordonError into a plain error with its message for the tenant (no host stack), auditing it
 * when it is a refusal; any other error is the host's own and says only that the call failed.
 */
export async function guarded<T>(audit: Audit, action: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof CordonError) {
      if (e.refusal) audit(action, e);
      throw new Error(e.message);
    }
    throw new Error(`${action} failed`);
  }
}

/** `guarded` in a span of the worker's trace; the span names the operation only, never a key, query or body. */
export function tracedGuarded<T>(workerId: string, audit: Audit, action: string, fn: () => T | Promise<T>): Promise<T> {
  return inSpan(action, SpanKind.SERVER, traceAttributes({ workerId }), () => guarded(audit, action, fn));
}

/** A call into the SQL processes, interrupted after `leftMs` (at most the worker's wall limit; that by default). */
export type PooledCall = (method: string, args: unknown[], leftMs?: number) => Promise<unknown>;

/**
 * What every capability over one of a worker's SQLite files in the SQL processes shares (storage, KV,
 * D1, queues): each method is one traced, guarded call whose SQL never outlives the worker's wall limit.
 */
export abstract class PooledDbCap extends RpcTarget {
  readonly #db: PooledDatabase;
  readonly #audit: Audit;
  readonly #maxMs: number;
  readonly #workerId: string;
  constructor(db: PooledDatabase, audit: Audit, maxMs: number, workerId: string) {
    super();
    this.#db = db;
    this.#audit = audit;
    this.#maxMs = maxMs;
    this.#workerId = workerId;
  }

  /** `fn` checks the arguments and makes the SQL calls, all inside `tracedGuarded`. */
  protected run<T>(action: string, fn: (call: PooledCall) => T | Promise<T>): Promise<T> {
    return tracedGuarded(this.#workerId, this.#audit, action, () =>
      fn((method, args, leftMs = this.#maxMs) => this.#db.call(method, args, Date.now() + Math.min(leftMs, this.#maxMs))),
    );
  }
}
