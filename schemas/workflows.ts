/**
 * Workflows across service boundaries: what a worker declares, what its `env.<BINDING>` may ask the
 * supervisor (WorkflowsApi, scoped to the worker's tenant and one workflow), and how the supervisor
 * has a sandbox run `run(event, step)` (WorkerRunner, schemas/services.ts) with each `step.*` call answered by the
 * engine (StepApi, bound to one run of one instance).
 */
import { z } from 'zod';

/** Cloudflare's pattern for workflow names, instance ids and event types. */
const ID = /^[a-zA-Z0-9_][a-zA-Z0-9-_]*$/;
export const WorkflowName = z.string().min(1).max(64).regex(ID, 'workflow names are letters, digits, - and _');
export const InstanceId = z.string().min(1).max(100).regex(ID, 'instance ids are up to 100 letters, digits, - and _');
export const EventType = z.string().min(1).max(100).regex(ID, 'event types are up to 100 letters, digits, - and _');
export const ClassName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z_$][A-Za-z0-9_$]*$/, 'a JavaScript class name');

/** A workflow a worker hosts: `export class <className> extends WorkflowEntrypoint`. */
export const WorkflowDecl = z.object({ name: WorkflowName, className: ClassName });
export type WorkflowDecl = z.infer<typeof WorkflowDecl>;

/** Params, outputs, step results and event payloads travel as the isolate's wire encoding, at most 1 MiB. */
export const MAX_VALUE = 1024 * 1024;
export const WireValue = z.string().max(MAX_VALUE + 1024, 'a value over 1 MiB');

export { STATUSES, type InstanceStatusName } from './workflow-statuses.ts';
import type { InstanceStatusName } from './workflow-statuses.ts';

export interface StepRecord {
  name: string;
  count: number;
  type: 'do' | 'sleep' | 'waitForEvent';
  status: 'running' | 'waiting' | 'complete' | 'errored';
  attempts: number;
  startedAt: string | null;
  endedAt: string | null;
  /** Wire-encoded result (do, waitForEvent) when complete. */
  output?: string;
  error?: { name: string; message: string };
}

export interface InstanceStatus {
  id: string;
  workflow: string;
  status: InstanceStatusName;
  /** Wire-encoded return value of run(), once complete. */
  output?: string;
  error?: { name: string; message: string };
  createdAt: string;
  steps: StepRecord[];
}

/** env.<BINDING> of a worker: one workflow of the worker's own tenant. */
export interface WorkflowsApi {
  create(id: string | null, params: string | null): Promise<string>;
  createBatch(batch: { id: string | null; params: string | null }[]): Promise<string[]>;
  /** The id if the instance exists; throws otherwise. */
  get(id: string): Promise<string>;
  status(id: string): Promise<InstanceStatus>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  terminate(id: string): Promise<void>;
  restart(id: string): Promise<void>;
  sendEvent(id: string, type: string, payload: string | null): Promise<void>;
  list(filter: { status?: InstanceStatusName; limit?: number }): Promise<InstanceStatus[]>;
}
export const WORKFLOW_METHODS = [
  'create',
  'createBatch',
  'get',
  'status',
  'pause',
  'resume',
  'terminate',
  'restart',
  'sendEvent',
  'list',
] as const satisfies readonly (keyof WorkflowsApi)[];

/** The engine's answer to a step call: go on with a recorded value or error, run the callback, or stop here. */
export type StepReply =
  | { state: 'done'; value: string | null }
  | { state: 'error'; name: string; message: string }
  | { state: 'run'; attempt: number }
  | { state: 'suspend' };

/** How an attempt of a `step.do` ended: its result, or what it threw (NonRetryableError: no retry). */
export type StepOutcome = { value: string | null } | { error: { name: string; message: string }; nonRetryable: boolean };

/** One run of one instance, as the isolate's `step` object reaches the engine (through the sandbox). */
export interface StepApi {
  /** step.do: the recorded outcome, or permission to run attempt N (committed before the callback runs). */
  begin(name: string, count: number): Promise<StepReply>;
  /** The attempt's outcome; the engine decides: done, error (no retries left), or suspend (a retry later). */
  end(name: string, count: number, attempt: number, outcome: StepOutcome, config: StepConfig): Promise<StepReply>;
  sleep(name: string, count: number, until: number): Promise<StepReply>;
  waitForEvent(name: string, count: number, type: string, timeoutMs: number): Promise<StepReply>;
}
export const STEP_METHODS = ['begin', 'end', 'sleep', 'waitForEvent'] as const satisfies readonly (keyof StepApi)[];
export const STEP_HANDLE = '$step';

export const StepConfig = z
  .object({
    retries: z.object({
      limit: z.number().int().min(0).max(10_000),
      delay: z
        .number()
        .min(0)
        .max(365 * 86_400_000),
      backoff: z.enum(['constant', 'linear', 'exponential']),
    }),
    timeout: z
      .number()
      .min(1)
      .max(365 * 86_400_000),
  })
  .strict();
export type StepConfig = z.infer<typeof StepConfig>;
