/**
 * OpenTelemetry: the async context manager and the W3C propagator are always on, so trace context
 * flows through every hop (HTTP headers at ingress, RPC frames between services). Spans are recorded
 * and exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
import { context, propagation, trace, type SpanKind, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

let provider: TracerProvider | undefined;

export function initTelemetry(service: string, env: NodeJS.ProcessEnv = process.env): { shutdown(): Promise<void> } {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': `cordon-${service}` }),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: 500 })],
    });
    trace.setGlobalTracerProvider(provider);
  }
  return { shutdown: async () => provider?.shutdown() };
}

export function tracer(): Tracer {
  return trace.getTracer('cordon');
}

/** Run `fn` in a new active span that ends (and records an error) when `fn` settles. */
export function inSpan<T>(name: string, kind: SpanKind, attributes: Record<string, string | number>, fn: (span: Span) => Promise<T>): Promise<T> {
  return tracer().startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error)?.message });
      throw e;
    } finally {
      span.end();
    }
  });
}
