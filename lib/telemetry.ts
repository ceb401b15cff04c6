/**
 * OpenTelemetry: the async context manager and the W3C propagator are always on, so trace context
 * flows through every hop (HTTP headers at ingress, RPC frames between services). Spans are recorded
 * and exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 */
import {
  context,
  INVALID_SPAN_CONTEXT,
  propagation,
  trace,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { createHmac } from 'node:crypto';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  RandomIdGenerator,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  TracerProvider,
  type IdGenerator,
  type Sampler,
} from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';

let provider: TracerProvider | undefined;
let sampler: Sampler | undefined;

/** The ids the next root span takes, when they are derived (see derivedTrace) rather than random. */
let forcedIds: { traceId: string; spanId: string } | undefined;
class DerivableIds implements IdGenerator {
  readonly #random = new RandomIdGenerator();
  generateTraceId(): string {
    return forcedIds?.traceId ?? this.#random.generateTraceId();
  }
  generateSpanId(): string {
    return forcedIds?.spanId ?? this.#random.generateSpanId();
  }
}

/** `cordon` names a sandbox's cordon: every span of that process is in it. */
export function initTelemetry(service: string, env: NodeJS.ProcessEnv = process.env, cordon?: string): { shutdown(): Promise<void> } {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
    sampler = samplerFromEnv(env);
    provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': `cordon-${service}`, ...traceAttributes({ cordon }) }),
      sampler,
      idGenerator: new DerivableIds(),
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
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return ratio();
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: ratio() });
    default:
      throw new Error(`OTEL_TRACES_SAMPLER=${name} is not supported: use always_on, always_off, traceidratio or their parentbased_ forms`);
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

/** The trace id of the active span when it is recorded (sampled): what a log line can link to. */
export function recordedTraceId(): string | undefined {
  const sc = trace.getSpanContext(context.active());
  return sc && trace.isSpanContextValid(sc) && sc.traceFlags & TraceFlags.SAMPLED && trace.getActiveSpan()?.isRecording() ? sc.traceId : undefined;
}

/** Add facts to the active span (learnt after it started, e.g. the route or the status); without an exporter, no span records them. */
export function annotateSpan(facts: TraceFacts): void {
  if (provider) trace.getActiveSpan()?.setAttributes(traceAttributes(facts));
}

/** What `inSpan` hands `fn` when no span is recorded: setting its attributes or status does nothing. */
const UNRECORDED = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Run `fn` in a new active span that ends (and records an error) when `fn` settles. Without an
 * exporter no span is recorded, and the API's no-op span would carry the active context's span
 * context unchanged: `fn` runs in the active context as it is, which propagates the same trace
 * context (traceparent) onward, without a context switch and a span per call (every request makes two).
 */
export function inSpan<T>(name: string, kind: SpanKind, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!provider) {
    try {
      return fn(UNRECORDED);
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return tracer().startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      // The error's name only: a message can quote what a tenant sent (a query, a URL, a key).
      span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.name : 'Error' });
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * The trace of something that outlives a process (a workflow instance): its trace and root span ids
 * derive from its name, so every run, in any process and after any restart, joins the same trace
 * under the same root. Keyed (HMAC with a key of the supervisor's), so nobody else can compute the ids
 * and make a request's spans (a client's traceparent is honoured at ingress) join that trace.
 * Whether it is sampled is the root sampler's decision for that trace id.
 */
export function derivedTrace(key: Buffer, name: string): { traceId: string; context(): Context; recordRoot(spanName: string, attributes: Attributes): void } {
  const digest = createHmac('sha256', key).update(`cordon trace\0${name}`).digest('hex');
  const ids = { traceId: digest.slice(0, 32), spanId: digest.slice(32, 48) };
  return {
    traceId: ids.traceId,
    context() {
      const sampled = sampler?.shouldSample(ROOT_CONTEXT, ids.traceId, name, SpanKind.INTERNAL, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
      return trace.setSpanContext(ROOT_CONTEXT, { ...ids, traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
    },
    recordRoot(spanName, attributes) {
      // Span creation is synchronous: nothing else can start a span while the ids are forced.
      forcedIds = ids;
      try {
        tracer().startSpan(spanName, { root: true, attributes }, ROOT_CONTEXT).end();
      } finally {
        forcedIds = undefined;
      }
    },
  };
}

/** A span of something that already happened (a sleep, a wait, a step attempt), as a child of the active span. */
export function recordSpan(name: string, startMs: number, endMs: number, attributes: Attributes, error?: string): void {
  const span = tracer().startSpan(name, { startTime: startMs, attributes });
  if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
  span.end(Math.max(startMs, endMs));
}
