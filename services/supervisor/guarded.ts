/** How a capability method reports what it refused, and hands the tenant only what it may read. */
import { SpanKind } from '@opentelemetry/api';
import { CordonError } from '../../lib/errors.ts';
import { inSpan, traceAttributes } from '../../lib/telemetry.ts';

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
