/**
 * W3C trace context across RPC. capnweb has no per-call metadata, so the transport prefixes each
 * outgoing call message with the caller's `traceparent` line, and the receiving session's read loop
 * runs in a context whose span is that line's (see session.ts): no target is wrapped. Formatting a
 * traceparent is four lines; the OpenTelemetry API gives us the active span context.
 */
import { context, INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace, TraceFlags, type Context, type SpanContext } from '@opentelemetry/api';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

export function parseTraceparent(value: string): SpanContext | undefined {
  const m = TRACEPARENT.exec(value);
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) & TraceFlags.SAMPLED, isRemote: true };
}

/** The traceparent of the active span, if any. */
export function activeTraceparent(): string | undefined {
  const sc = trace.getSpanContext(context.active());
  return sc && trace.isSpanContextValid(sc) ? formatTraceparent(sc) : undefined;
}

/**
 * A context whose active span stands for whatever `current()` says now: the parent of a span started
 * in it (and the traceparent of a call sent from it) is the caller's of the message being dispatched.
 * A handler that wants its caller as parent starts its span before its first await.
 */
export function dispatchContext(current: () => SpanContext | undefined): Context {
  const span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
  span.spanContext = () => current() ?? INVALID_SPAN_CONTEXT;
  return trace.setSpan(ROOT_CONTEXT, span);
}
