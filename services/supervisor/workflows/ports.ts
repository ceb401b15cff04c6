/**
 * The engine as peers reach it. StepPort: one run of one instance, handed to the sandbox that runs it
 * (its `step.*` calls); WorkflowsCap: a worker's `env.<BINDING>`, one workflow of the worker's own
 * tenant. Both validate everything, since tenant code chose every argument.
 */
import { RpcTarget } from 'capnweb';
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import {
  EventType,
  InstanceId,
  STATUSES,
  StepConfig,
  WireValue,
  type InstanceStatus,
  type StepApi,
  type StepReply,
  type WorkflowsApi,
} from '../../../schemas/workflows.ts';
import type { RunRef, StepRef, WorkflowEngine } from './engine.ts';
import { context } from '@opentelemetry/api';
import { traceStep } from './tracing.ts';
import type { InstanceRef, WorkflowRef } from './instance-store.ts';

const StepName = z.string().min(1).max(256, 'step names are at most 256 characters');
const Count = z.number().int().min(1).max(1_000_000);
const Outcome = z.union([
  z.object({ value: WireValue.nullable() }).strict(),
  z.object({ error: z.object({ name: z.string().max(256), message: z.string().max(64 * 1024) }).strict(), nonRetryable: z.boolean() }).strict(),
]);
const Time = z.number().int().min(0).max(8.64e15);
/** Attempts begun and not yet ended that one run keeps a start time for (a run has few at once). */
const MAX_OPEN_ATTEMPTS = 1000;

export class StepPort extends RpcTarget implements StepApi {
  readonly #engine: WorkflowEngine;
  /** Set by the engine when it starts the run; the sandbox names only the step. */
  readonly #run: RunRef;
  /** The run's span, active when the engine made this port: the step spans are its children. */
  readonly #trace = context.active();
  /** When each attempt this run began started, by step and attempt, until it ends. */
  readonly #attempts = new Map<string, number>();

  constructor(engine: WorkflowEngine, run: RunRef) {
    super();
    this.#engine = engine;
    this.#run = run;
  }

  begin(name: unknown, count: unknown): Promise<StepReply> {
    const at = this.#step(name, count);
    return context.with(this.#trace, async () => {
      const reply = await this.#engine.stepBegin(at);
      if (reply.state === 'run' && this.#attempts.size < MAX_OPEN_ATTEMPTS) this.#attempts.set(`${at.name}\0${at.count}\0${reply.attempt}`, Date.now());
      return reply;
    });
  }

  end(name: unknown, count: unknown, attempt: unknown, outcome: unknown, config: unknown): Promise<StepReply> {
    const at = this.#step(name, count);
    const n = check(Count, attempt, 'attempt');
    const out = check(Outcome, outcome, 'step outcome');
    const cfg = check(StepConfig, config, 'step config');
    return context.with(this.#trace, async () => {
      const reply = await this.#engine.stepEnd(at, n, out, cfg);
      const key = `${at.name}\0${at.count}\0${n}`;
      const started = this.#attempts.get(key);
      if (started !== undefined) {
        this.#attempts.delete(key);
        traceStep('step', at, started, Date.now(), { attempt: n, error: 'error' in out ? out.error.name : undefined });
      }
      return reply;
    });
  }

  sleep(name: unknown, count: unknown, until: unknown): Promise<StepReply> {
    const at = this.#step(name, count);
    const wake = check(Time, until, 'wake time');
    return context.with(this.#trace, () => this.#engine.stepSleep(at, wake));
  }

  waitForEvent(name: unknown, count: unknown, type: unknown, timeoutMs: unknown): Promise<StepReply> {
    const at = this.#step(name, count);
    const eventType = check(EventType, type, 'event type');
    const timeout = check(Time, timeoutMs, 'timeout');
    return context.with(this.#trace, () => this.#engine.stepWaitForEvent(at, eventType, timeout));
  }

  #step(name: unknown, count: unknown): StepRef {
    return { ...this.#run, name: check(StepName, name, 'step name'), count: check(Count, count, 'step count') };
  }
}

const Params = WireValue.nullable();
const Filter = z.object({ status: z.enum(STATUSES).optional(), limit: z.number().int().min(1).max(1000).optional() }).strict();

export class WorkflowsCap extends RpcTarget implements WorkflowsApi {
  readonly #engine: WorkflowEngine;
  /** The tenant is the one the capability was granted for (the worker's own); the sandbox names only instances. */
  readonly #workflow: WorkflowRef;

  constructor(engine: WorkflowEngine, tenant: string, workflow: string) {
    super();
    this.#engine = engine;
    this.#workflow = { tenant, workflow };
  }

  create(id: unknown, params: unknown): Promise<string> {
    return this.#engine.create(this.#workflow, check(InstanceId.nullable(), id, 'instance id'), check(Params, params, 'params'));
  }

  createBatch(batch: unknown): Promise<string[]> {
    const items = check(
      z.array(z.object({ id: InstanceId.nullable(), params: Params }).strict()).max(100, 'createBatch takes at most 100 instances'),
      batch,
      'batch',
    );
    return this.#engine.createBatch(this.#workflow, items);
  }

  async get(id: unknown): Promise<string> {
    return this.#engine.status(this.#instance(id)).id;
  }

  async status(id: unknown): Promise<InstanceStatus> {
    return this.#engine.status(this.#instance(id));
  }

  pause(id: unknown): Promise<void> {
    return this.#engine.pause(this.#instance(id));
  }

  resume(id: unknown): Promise<void> {
    return this.#engine.resume(this.#instance(id));
  }

  terminate(id: unknown): Promise<void> {
    return this.#engine.terminate(this.#instance(id));
  }

  restart(id: unknown): Promise<void> {
    return this.#engine.restart(this.#instance(id));
  }

  sendEvent(id: unknown, type: unknown, payload: unknown): Promise<void> {
    return this.#engine.sendEvent(this.#instance(id), check(EventType, type, 'event type'), check(Params, payload, 'payload'));
  }

  async list(filter: unknown): Promise<InstanceStatus[]> {
    return this.#engine.list(this.#workflow, check(Filter, filter ?? {}, 'filter') as { status?: (typeof STATUSES)[number]; limit?: number });
  }

  #instance(id: unknown): InstanceRef {
    return { ...this.#workflow, id: check(InstanceId, id, 'instance id') };
  }
}
