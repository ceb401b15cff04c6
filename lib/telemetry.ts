/**
 * OpenTelemetry: the async context manager and the W3C propagator are always on, so trace context
 * flows through every hop (HTTP headers at ingress, RPC frames between services). Spans are recorded
 * and exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
import { context, propagation, trace, SpanKind, SpanStatusCode, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

let provider: TracerProvider | undefined;

/** `cordon` names a sandbox's cordon: every span of that process is in it. */
export function initTelemetry(service: string, env: NodeJS.ProcessEnv = process.env, cordon?: string): { shutdown(): Promise<void> } {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': `cordon-${service}`, ...traceAttributes({ cordon }) }),
      sampler: samplerFromEnv(env),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter(), scheduledDelayMillis: 500 })],
    });
    trace.setGlobalTracerProvider(provider);
  }
  return { shutdown: async () => provider?.shutdown() };
}

/**
 * The sampler the OpenTelemetry spec's `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name (this
 * SDK package does not read them itself). Default: parentbased_always_on. An unknown name or a bad
 * ratio is an error naming the variable, so a typo does not silently sample everything.
 */
export function samplerFromEnv(env: NodeJS.ProcessEnv): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
  const ratio = () => {
    const raw = env.OTEL_TRACES_SAMPLER_ARG?.trim();
    const r = raw === undefined || raw === '' ? 1 : Number(raw);
    if (!(r >= 0 && r <= 1)) throw new Error(`OTEL_TRACES_SAMPLER_ARG=${raw} is not a ratio between 0 and 1`);
    return new TraceIdRatioBasedSampler(r);
  };
  switch (name) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return ratio();
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: ratio() });
    default: throw new Error(`OTEL_TRACES_SAMPLER=${name} is not supported: use always_on, always_off, traceidratio or their parentbased_ forms`);
  }
}

export function tracer(): Tracer {
  return trace.getTracer('cordon');
}

/**
 * What Cordon says about a span. Traces leave the mesh (to any collector the operator names), so
 * spans carry identities and outcomes only — never a secret, token, code key, header or body — and
 * every attribute goes through here so that this is the one place to check.
 */
export interface TraceFacts {
  /** `<tenant>/<worker>`: split into the two attributes. */
  workerId?: string;
  version?: string;
  cordon?: string;
  route?: string;
  status?: number;
}

export function traceAttributes(facts: TraceFacts): Attributes {
  const out: Attributes = {};
  if (facts.workerId) {
    const [tenant, worker] = facts.workerId.split('/');
    out['cordon.tenant'] = tenant;
    out['cordon.worker'] = worker;
  }
  if (facts.version) out['cordon.version'] = facts.version;
  if (facts.cordon) out['cordon.cordon'] = facts.cordon;
  if (facts.route) out['http.route'] = facts.route;
  if (facts.status !== undefined) out['http.response.status_code'] = facts.status;
  return out;
}

/** Add facts to the active span (learnt after it started, e.g. the route or the status). */
export function annotateSpan(facts: TraceFacts): void {
  trace.getActiveSpan()?.setAttributes(traceAttributes(facts));
}

/** Run `fn` in a new active span that ends (and records an error) when `fn` settles. */
export function inSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
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
