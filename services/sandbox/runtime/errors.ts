/**
 * Errors across the isolate boundary: what a request that failed gets (WorkerError, safe to show a
 * client, with the tenant's own detail for its log), and what the isolate may see of a host failure.
 */
import { CordonError } from '../../../lib/errors.ts';

/** A request the worker failed: its status and message are for the client, its detail for the worker's log. */
export class WorkerError extends CordonError {
  /** What the worker's log gets: the tenant's own error and stack, never ours. */
  readonly detail: string;
  /** The limit the worker broke, if that is what ended the request (reported to the supervisor's quarantine). */
  readonly limit: 'cpu' | 'wall' | 'memory' | undefined;
  /** What a loaded Worker's entrypoint threw for its parent's fetch() (its name and message), for the parent to throw again. */
  thrown: readonly [name: string, message: string] | undefined;
  constructor(status: number, message: string, detail = message, limit?: 'cpu' | 'wall' | 'memory') {
    super(message, { status });
    this.name = 'WorkerError';
    this.detail = detail;
    this.limit = limit;
  }
}

export const limitError = (limit: 'cpu' | 'wall' | 'memory', message: string) => new WorkerError(503, message, message, limit);

const HOST_FRAME = /^\s+at .*(?:file:\/\/|node:|\(\/|at \/)/;

/**
 * The part of a stack that is the tenant's: everything above isolated-vm's boundary marker, and never
 * a frame that names a host file (whatever arrives here, it is logged for the tenant to read).
 */
export function tenantStack(stack: unknown): string {
  const text = typeof stack === 'string' ? stack : String(stack);
  const cut = text.indexOf('\n    at (<isolated-vm boundary>)');
  const mine = cut < 0 ? text : text.slice(0, cut);
  return mine
    .split('\n')
    .filter((line) => !HOST_FRAME.test(line))
    .join('\n');
}

/** An error a host callback may throw into the isolate: the message only, never the host's stack (it names host files). */
export function sanitized(e: unknown): Error {
  const err = new Error(e instanceof Error ? e.message : 'host call failed');
  err.stack = `Error: ${err.message}`;
  return err;
}

/** A host callback whose failures reach the isolate as sanitized errors. */
export function hostCallback<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R {
  return (...args: A) => {
    try {
      return fn(...args);
    } catch (e) {
      throw sanitized(e);
    }
  };
}
