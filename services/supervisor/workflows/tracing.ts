/**
 * A workflow instance is one trace: its root span is recorded when it is created, every run is a span
 * under that root (in whichever supervisor process runs it, after any restart: the ids derive from the
 * instance's name, see derivedTrace), and each step attempt, sleep and event wait is a span of the run
 * it ended in. Spans name the step and carry identities only — never params, values or error messages.
 */
import { context, SpanKind } from '@opentelemetry/api';
import { derivedTrace, inSpan, recordSpan, traceAttributes } from '../../../lib/telemetry.ts';
import type { InstanceRef } from './instance-store.ts';

function instanceAttributes(ref: InstanceRef, workerId?: string, version?: string) {
  return { ...traceAttributes({ workerId, version }), 'cordon.tenant': ref.tenant, 'cordon.workflow': ref.workflow, 'cordon.workflow.instance': ref.id };
}

/** The instances' traces, whose ids derive from their names under the supervisor's key. */
export class InstanceTraces {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    this.#key = key;
  }

  #of(ref: InstanceRef) {
    return derivedTrace(this.#key, `workflow\0${ref.tenant}\0${ref.workflow}\0${ref.id}`);
  }

  /** The trace id of an instance (the dashboard links it to Jaeger). */
  traceId(ref: InstanceRef): string {
    return this.#of(ref).traceId;
  }

  created(ref: InstanceRef, workerId: string, version: string): void {
    this.#of(ref).recordRoot('workflow instance', instanceAttributes(ref, workerId, version));
  }

  /** `fn` (one run) in a span under the instance's root: the runner call carries it to the sandbox. */
  inRun<T>(ref: InstanceRef, workerId: string, version: string, fn: () => Promise<T>): Promise<T> {
    return context.with(this.#of(ref).context(), () => inSpan('workflow run', SpanKind.INTERNAL, instanceAttributes(ref, workerId, version), fn));
  }
}

/** A step attempt, sleep or event wait that ended, as a span of the active run. */
export function traceStep(
  kind: 'step' | 'sleep' | 'waitForEvent',
  ref: InstanceRef & { name: string; count: number },
  startMs: number,
  endMs: number,
  extra: { attempt?: number; error?: string } = {},
): void {
  const attributes = {
    ...instanceAttributes(ref),
    'cordon.workflow.step.count': ref.count,
    ...(extra.attempt !== undefined ? { 'cordon.workflow.step.attempt': extra.attempt } : {}),
  };
  recordSpan(`${kind} ${ref.name}`, startMs, endMs, attributes, extra.error);
}
