/**
 * The engine as peers reach it. StepPort: one run of one instance, handed to the sandbox that runs it
 * (its `step.*` calls); WorkflowsCap: a worker's `env.<BINDING>`, one workflow of the worker's own
 * tenant. Both validate everything, since tenant code chose every argument.
 */
import { RpcTarget } from 'capnweb';
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { EventType, InstanceId, STATUSES, StepConfig, WireValue, type InstanceStatus, type StepApi, type StepReply, type WorkflowsApi } from '../../../schemas/workflows.ts';
import type { WorkflowEngine } from './engine.ts';

const StepName = z.string().min(1).max(256, 'step names are at most 256 characters');
const Count = z.number().int().min(1).max(1_000_000);
const Outcome = z.union([
  z.object({ value: WireValue.nullable() }).strict(),
  z.object({ error: z.object({ name: z.string().max(256), message: z.string().max(64 * 1024) }).strict(), nonRetryable: z.boolean() }).strict(),
]);
const Time = z.number().int().min(0).max(8.64e15);

export class StepPort extends RpcTarget implements StepApi {
  readonly #engine: WorkflowEngine;
  readonly #at: [string, string, string, string];

  constructor(engine: WorkflowEngine, tenant: string, workflow: string, id: string, token: string) {
    super();
    this.#engine = engine;
    this.#at = [tenant, workflow, id, token];
  }

  begin(name: unknown, count: unknown): Promise<StepReply> {
    return this.#engine.stepBegin(...this.#at, check(StepName, name, 'step name'), check(Count, count, 'step count'));
  }

  end(name: unknown, count: unknown, attempt: unknown, outcome: unknown, config: unknown): Promise<StepReply> {
    return this.#engine.stepEnd(
      ...this.#at,
      check(StepName, name, 'step name'),
      check(Count, count, 'step count'),
      check(Count, attempt, 'attempt'),
      check(Outcome, outcome, 'step outcome') as Parameters<WorkflowEngine['stepEnd']>[7],
      check(StepConfig, config, 'step config'),
    );
  }

  sleep(name: unknown, count: unknown, until: unknown): Promise<StepReply> {
    return this.#engine.stepSleep(...this.#at, check(StepName, name, 'step name'), check(Count, count, 'step count'), check(Time, until, 'wake time'));
  }

  waitForEvent(name: unknown, count: unknown, type: unknown, timeoutMs: unknown): Promise<StepReply> {
    return this.#engine.stepWaitForEvent(...this.#at, check(StepName, name, 'step name'), check(Count, count, 'step count'), check(EventType, type, 'event type'), check(Time, timeoutMs, 'timeout'));
  }
}

const Params = WireValue.nullable();
const Filter = z.object({ status: z.enum(STATUSES).optional(), limit: z.number().int().min(1).max(1000).optional() }).strict();

export class WorkflowsCap extends RpcTarget implements WorkflowsApi {
  readonly #engine: WorkflowEngine;
  readonly #tenant: string;
  readonly #workflow: string;

  constructor(engine: WorkflowEngine, tenant: string, workflow: string) {
    super();
    this.#engine = engine;
    this.#tenant = tenant;
    this.#workflow = workflow;
  }

  create(id: unknown, params: unknown): Promise<string> {
    return this.#engine.create(this.#tenant, this.#workflow, check(InstanceId.nullable(), id, 'instance id'), check(Params, params, 'params'));
  }

  createBatch(batch: unknown): Promise<string[]> {
    const items = check(z.array(z.object({ id: InstanceId.nullable(), params: Params }).strict()).max(100, 'createBatch takes at most 100 instances'), batch, 'batch');
    return this.#engine.createBatch(this.#tenant, this.#workflow, items);
  }

  async get(id: unknown): Promise<string> {
    return this.#engine.status(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id')).id;
  }

  async status(id: unknown): Promise<InstanceStatus> {
    return this.#engine.status(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'));
  }

  pause(id: unknown): Promise<void> {
    return this.#engine.pause(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'));
  }

  resume(id: unknown): Promise<void> {
    return this.#engine.resume(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'));
  }

  terminate(id: unknown): Promise<void> {
    return this.#engine.terminate(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'));
  }

  restart(id: unknown): Promise<void> {
    return this.#engine.restart(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'));
  }

  sendEvent(id: unknown, type: unknown, payload: unknown): Promise<void> {
    return this.#engine.sendEvent(this.#tenant, this.#workflow, check(InstanceId, id, 'instance id'), check(EventType, type, 'event type'), check(Params, payload, 'payload'));
  }

  async list(filter: unknown): Promise<InstanceStatus[]> {
    return this.#engine.list(this.#tenant, this.#workflow, check(Filter, filter ?? {}, 'filter') as { status?: (typeof STATUSES)[number]; limit?: number });
  }
}
