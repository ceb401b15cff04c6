/**
 * The workflows engine: durable instances of tenants' WorkflowEntrypoint classes.
 *
 * An instance advances by runs: the engine has a sandbox of the worker's cordon run `run(event, step)`
 * of the worker version the instance was created with, and answers each `step.*` call itself. A step's
 * attempt, outcome, timer and consumed event are committed (group commit, tenant-db.ts) before the
 * answer goes back, so `run()` can be replayed from the top at any time: completed steps return their
 * recorded value (key: step name + occurrence count). A sleep, a wait for an event or a retry delay
 * ends the run (`suspend`): the instance holds no isolate and no memory but a row and a timer.
 * If a run dies with its sandbox, or the supervisor dies, the instance is simply run again.
 *
 * This module is the state machine; what is stored, and every statement over it, is instance-store.ts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { RpcStub } from 'capnweb';
import type { Logger } from '../../../lib/log.ts';
import { retryDelay } from '../../../lib/workflow-durations.ts';
import {
  MAX_VALUE,
  type InstanceStatus,
  type InstanceStatusName,
  type StepConfig,
  type StepOutcome,
  type StepRecord,
  type StepReply,
  type WorkflowDecl,
} from '../../../schemas/workflows.ts';
import type { WorkerRunner } from '../../../schemas/services.ts';
import { WorkflowError } from './errors.ts';
import { InstanceStore, type InstanceRef, type InstanceRow, type InstanceWrites, type StepAt, type StepRow, type WorkflowRef } from './instance-store.ts';
import { WakeTimers } from './timers.ts';
import { InstanceTraces, traceStep } from './tracing.ts';
import { StepPort } from './ports.ts';

// The admin API maps this error's status to its answer.
export { WorkflowError };

/** One run of one instance: `run` is its token; step calls of any other run are told to stop. */
export interface RunRef extends InstanceRef {
  readonly run: string;
}

/** One step call of a run. */
export type StepRef = RunRef & StepAt;

/** What a watcher of an instance is told: a step ended (complete or errored), or the status changed. */
export type InstanceChange = { type: 'step'; step: StepRecord } | { type: 'status'; status: InstanceStatus };

/** The watchers of one instance, and what they were last told (to tell only what changed). */
interface Watched {
  status: InstanceStatusName;
  ended: Set<string>;
  listeners: Set<(change: InstanceChange) => void>;
}

export interface EngineDeps {
  dir: string;
  /** The worker's current version and cordon, if it exists. */
  worker(workerId: string): { version: string; cordon: string } | undefined;
  /** A code key that unlocks exactly this version of the worker (for pinned instances). */
  codeKeyFor(workerId: string, version: string): string | undefined;
  /** The runner the sandbox of a cordon registered, if it is connected. */
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
  log: Logger;
  /** What instance trace ids derive from (a key of the supervisor's; random by default). */
  traceKey?: Buffer;
  now?: () => number;
  stepLimit?: number;
  maxConcurrentRuns?: number;
}

const FINISHED: InstanceStatusName[] = ['complete', 'errored', 'terminated'];
const RETRY_RUN_MS = [250, 1000, 5000, 15_000];

/** A wire value from a peer: JSON text (it is spliced into event objects) of at most 1 MiB. */
function checkValue(v: string | null, what: string): string | null {
  if (v === null) return null;
  if (v.length > MAX_VALUE) throw new WorkflowError(413, `${what} is over 1 MiB`);
  try {
    JSON.parse(v);
  } catch {
    throw new WorkflowError(400, `${what} is not a valid encoded value`);
  }
  return v;
}

/** The instance alone, for what outlives a call (timers, queues): not the run or step it came with. */
const instanceOf = (ref: InstanceRef): InstanceRef => ({ tenant: ref.tenant, workflow: ref.workflow, id: ref.id });
const keyOf = (ref: InstanceRef): string => `${ref.tenant}\0${ref.workflow}\0${ref.id}`;

export class WorkflowEngine {
  readonly #deps: EngineDeps;
  readonly #now: () => number;
  readonly #store: InstanceStore;
  readonly #timers: WakeTimers<InstanceRef>;
  /** Instances with a run in flight, and that run's token: step calls of any other run are told to stop. */
  readonly #running = new Map<string, string>();
  readonly #backlog = new Map<string, InstanceRef>();
  readonly #failures = new Map<string, number>();
  readonly #noRunner = new Map<string, InstanceRef>();
  readonly #watched = new Map<string, Watched>();
  readonly #stepLimit: number;
  readonly #maxRuns: number;
  readonly #traces: InstanceTraces;
  #stopped = false;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#stepLimit = deps.stepLimit ?? 10_000;
    this.#maxRuns = deps.maxConcurrentRuns ?? 256;
    this.#timers = new WakeTimers((ref) => this.#consider(ref), this.#now);
    this.#store = new InstanceStore(deps.dir);
    this.#traces = new InstanceTraces(deps.traceKey ?? randomBytes(32));
  }

  /** The id of the instance's one trace (whether it was recorded is the sampler's choice). */
  traceId(ref: InstanceRef): string {
    this.#instance(ref); // an instance that does not exist is the usual 404
    return this.#traces.traceId(ref);
  }

  /** After a (re)start: every unfinished instance runs again or waits for its timer. */
  recover(): void {
    for (const tenant of this.#store.tenants()) {
      for (const r of this.#store.unfinished(tenant)) {
        const ref = { tenant, workflow: r.workflow, id: r.id };
        if (r.status === 'waiting') {
          if (r.wake_at !== null) this.#timers.at(r.wake_at, ref);
        } else this.#consider(ref);
      }
    }
  }

  /** A sandbox connected: instances that found no runner go now rather than at their retry time. */
  runnerAvailable(): void {
    const refs = [...this.#noRunner.values()];
    this.#noRunner.clear();
    for (const ref of refs) this.#consider(ref);
  }

  /** Timers due by the engine's clock fire now (tests move the clock). */
  poke(): void {
    this.#timers.poke();
  }

  stop(): void {
    this.#stopped = true;
    this.#timers.stop();
    this.#store.close();
  }

  get sleeping(): number {
    return this.#timers.size;
  }

  // --- registration (at deploy) ------------------------------------------------------------------------

  /** Refuses a workflow name another worker of the tenant hosts already (names are per tenant, as per account in Cloudflare). */
  checkDeclarations(tenant: string, workerId: string, decls: WorkflowDecl[]): void {
    for (const d of decls) {
      const owner = this.#store.host({ tenant, workflow: d.name })?.worker;
      if (owner && owner !== workerId) throw new WorkflowError(409, `workflow ${d.name} is already hosted by worker ${owner}`);
    }
  }

  async declare(tenant: string, workerId: string, decls: WorkflowDecl[]): Promise<void> {
    await this.#store.write(tenant, (tx) => {
      for (const d of decls) tx.declare(workerId, d);
    });
  }

  workflows(tenant: string): { name: string; worker: string; className: string }[] {
    return this.#store.workflows(tenant);
  }

  // --- the API (bindings, admin, CLI): always one tenant ---------------------------------------------------

  async create(wf: WorkflowRef, id: string | null, params: string | null): Promise<string> {
    const [created] = await this.#createMany(wf, [{ id, params }], false);
    return created!;
  }

  /** Existing ids are skipped (and left out of the result), as Cloudflare's createBatch does. */
  async createBatch(wf: WorkflowRef, batch: { id: string | null; params: string | null }[]): Promise<string[]> {
    if (batch.length > 100) throw new WorkflowError(400, 'createBatch takes at most 100 instances');
    return this.#createMany(wf, batch, true);
  }

  async #createMany(wf: WorkflowRef, batch: { id: string | null; params: string | null }[], skipExisting: boolean): Promise<string[]> {
    const host = this.#store.host(wf);
    if (!host)
      throw new WorkflowError(
        404,
        `no workflow ${wf.workflow} in tenant ${wf.tenant}; declare it in the worker's config (workflows: [{ name, binding, class_name }])`,
      );
    const current = this.#deps.worker(host.worker);
    if (!current) throw new WorkflowError(404, `the worker hosting workflow ${wf.workflow} no longer exists`);
    const items = batch.map((b) => ({ ref: { tenant: wf.tenant, workflow: wf.workflow, id: b.id ?? randomUUID() }, params: checkValue(b.params, 'params') }));
    const created: InstanceRef[] = [];
    const now = this.#now();
    await this.#store.write(wf.tenant, (tx) => {
      for (const { ref, params } of items) {
        if (tx.createInstance(ref, { worker: host.worker, version: current.version, className: host.className, params, now })) created.push(ref);
        else if (!skipExisting) throw new WorkflowError(409, `instance id ${ref.id} is already in use in workflow ${wf.workflow}; restart it instead`);
      }
    });
    for (const ref of created) {
      this.#traces.created(ref, host.worker, current.version);
      this.#consider(ref);
    }
    return created.map((ref) => ref.id);
  }

  status(ref: InstanceRef): InstanceStatus {
    return describe(this.#instance(ref), this.#store.steps(ref));
  }

  /** Newest first; `after`: the id of the last instance of the previous page. */
  list(wf: WorkflowRef, filter: { status?: InstanceStatusName; limit?: number; after?: string }): InstanceStatus[] {
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 10_000);
    const last = filter.after === undefined ? undefined : this.#store.instance({ ...wf, id: filter.after });
    if (filter.after !== undefined && !last)
      throw new WorkflowError(400, `the cursor names no instance of workflow ${wf.workflow}: pass the id of the last instance of the previous page`);
    return this.#store.list(wf, { status: filter.status, limit, after: last && { createdAt: last.created_at, id: last.id } }).map((r) => describe(r, []));
  }

  /** How many instances of the workflow are in each status. */
  counts(wf: WorkflowRef): Record<string, number> {
    return this.#store.counts(wf);
  }

  async pause(ref: InstanceRef): Promise<void> {
    await this.#transition(ref, (row) => {
      if (FINISHED.includes(row.status) || row.status === 'paused')
        throw new WorkflowError(409, `instance ${ref.id} is ${row.status}; only an unfinished instance can be paused`);
      return 'paused';
    });
  }

  async resume(ref: InstanceRef): Promise<void> {
    await this.#transition(ref, (row) => {
      if (row.status !== 'paused') throw new WorkflowError(409, `instance ${ref.id} is ${row.status}, not paused`);
      // Run again from the top: recorded steps replay, a sleep not yet due or a wait with no event suspends
      // again with its recorded timer, and an event that arrived while paused is taken.
      return 'running';
    });
  }

  async terminate(ref: InstanceRef): Promise<void> {
    await this.#transition(ref, (row) => {
      if (FINISHED.includes(row.status)) throw new WorkflowError(409, `instance ${ref.id} is already ${row.status}`);
      return 'terminated';
    });
  }

  /** From the start: recorded steps and buffered events are erased, as Cloudflare's restart() does. */
  async restart(ref: InstanceRef): Promise<void> {
    this.#instance(ref);
    await this.#commit(ref, (tx) => tx.reset(ref, this.#now()));
    this.#consider(ref);
  }

  /** Buffered per type: an event sent before its waitForEvent is not lost. */
  async sendEvent(ref: InstanceRef, type: string, payload: string | null): Promise<void> {
    const row = this.#instance(ref);
    if (FINISHED.includes(row.status)) throw new WorkflowError(409, `instance ${ref.id} is ${row.status}; it takes no more events`);
    const value = checkValue(payload, 'the event payload');
    let wake = false;
    await this.#commit(ref, (tx) => {
      tx.addEvent(ref, type, value, this.#now());
      if (this.#store.waitsFor(ref, type) && tx.wake(ref, this.#now())) wake = true;
    });
    if (wake) this.#consider(ref);
  }

  /**
   * Tell `listener` of every step that ends and every status change of the instance, starting with its
   * status now, until the returned function is called. Reads only when the instance is watched.
   */
  watch(ref: InstanceRef, listener: (change: InstanceChange) => void): () => void {
    const row = this.#instance(ref);
    const key = keyOf(ref);
    let w = this.#watched.get(key);
    if (!w) {
      w = { status: row.status, ended: new Set(this.#store.steps(ref).filter(ended).map(stepKey)), listeners: new Set() };
      this.#watched.set(key, w);
    }
    const watched = w;
    const own = (change: InstanceChange) => listener(change);
    watched.listeners.add(own);
    // The status now holds the steps that ended before the watch began: no step event will tell of them.
    listener({ type: 'status', status: describe(row, this.#store.steps(ref)) });
    return () => {
      watched.listeners.delete(own);
      if (!watched.listeners.size && this.#watched.get(key) === watched) this.#watched.delete(key);
    };
  }

  /** Instances watched now (tests look for leaks). */
  get watchedInstances(): number {
    return this.#watched.size;
  }

  /** A write to one instance, committed; then its watchers hear what it changed. */
  async #commit(ref: InstanceRef, fn: (tx: InstanceWrites) => void): Promise<void> {
    await this.#store.write(ref.tenant, fn);
    const w = this.#watched.get(keyOf(ref));
    if (w) this.#tell(ref, w);
  }

  #tell(ref: InstanceRef, w: Watched): void {
    const row = this.#store.instance(ref);
    if (!row) return;
    const changes: InstanceChange[] = [];
    const steps = this.#store.steps(ref);
    // A restart erases the steps: those that end again are news again.
    if (steps.length < w.ended.size) w.ended.clear();
    for (const s of steps) {
      if (ended(s) && !w.ended.has(stepKey(s))) {
        w.ended.add(stepKey(s));
        changes.push({ type: 'step', step: describe(row, [s]).steps[0]! });
      }
    }
    if (row.status !== w.status) {
      w.status = row.status;
      changes.push({ type: 'status', status: describe(row, []) });
    }
    for (const change of changes) {
      for (const listener of w.listeners) {
        try {
          listener(change);
        } catch (e) {
          this.#deps.log.warn('a workflow watcher failed', { error: e as Error });
        }
      }
    }
  }

  // --- steps: called through the StepPort of one run ------------------------------------------------------

  /** Whether the run may go on: it is the instance's current run and the instance is running. */
  #live(run: RunRef): boolean {
    return this.#running.get(keyOf(run)) === run.run && this.#store.state(run) === 'running';
  }

  /**
   * How every step call starts: a run that is no longer current is told to suspend, a recorded
   * outcome is replayed (a sleep records no value), and a step recorded as another kind is refused.
   */
  #replay(at: StepRef, type: StepRow['type']): { reply: StepReply } | { step: StepRow | undefined } {
    if (!this.#live(at)) return { reply: { state: 'suspend' } };
    const step = this.#store.step(at);
    if (step?.status === 'complete') return { reply: { state: 'done', value: step.value } };
    if (step?.status === 'errored') return { reply: { state: 'error', name: step.error_name ?? 'Error', message: step.error_message ?? '' } };
    if (step && step.type !== type)
      throw new WorkflowError(400, `step "${at.name}" #${at.count} was a ${step.type} when this instance last ran; step names must be deterministic`);
    return { step };
  }

  async stepBegin(at: StepRef): Promise<StepReply> {
    const seen = this.#replay(at, 'do');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const now = this.#now();
    if (!step && this.#store.doSteps(at) >= this.#stepLimit)
      return { state: 'error', name: 'Error', message: `The limit of ${this.#stepLimit} steps has been reached` };
    const attempt = (step?.attempts ?? 0) + 1;
    await this.#commit(at, (tx) => {
      if (step) tx.retryStep(at, attempt);
      else tx.addStep(at, { type: 'do', status: 'running', attempts: 1, now });
    });
    return { state: 'run', attempt };
  }

  async stepEnd(at: StepRef, attempt: number, outcome: StepOutcome, config: StepConfig): Promise<StepReply> {
    if (!this.#live(at)) return { state: 'suspend' };
    const step = this.#store.step(at);
    if (!step || step.type !== 'do' || step.status !== 'running' || step.attempts !== attempt) return { state: 'suspend' }; // a stale attempt
    const now = this.#now();
    if ('value' in outcome) {
      const value = checkValue(outcome.value, `the result of step "${at.name}"`);
      await this.#commit(at, (tx) => tx.completeStep(at, value, now));
      return { state: 'done', value };
    }
    const error = { name: outcome.error.name.slice(0, 256), message: outcome.error.message.slice(0, 4096) };
    if (outcome.nonRetryable || attempt > config.retries.limit) {
      await this.#commit(at, (tx) => tx.failStep(at, error, now));
      return { state: 'error', ...error };
    }
    const wakeAt = now + retryDelay(config.retries, attempt);
    await this.#commit(at, (tx) => {
      tx.retryLater(at, error, wakeAt);
      tx.sleep(at, wakeAt, this.#now());
    });
    this.#timers.at(wakeAt, instanceOf(at));
    return { state: 'suspend' };
  }

  async stepSleep(at: StepRef, until: number): Promise<StepReply> {
    const seen = this.#replay(at, 'sleep');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const now = this.#now();
    // The time to wake is the one recorded first: a replay's own Date.now() does not move it.
    const wakeAt = step?.wake_at ?? until;
    if (wakeAt <= now) {
      await this.#commit(at, (tx) => {
        if (step) tx.completeStep(at, null, now);
        else tx.addStep(at, { type: 'sleep', status: 'complete', now, wakeAt });
      });
      traceStep('sleep', at, step?.started_at ?? now, now);
      return { state: 'done', value: null };
    }
    await this.#commit(at, (tx) => {
      if (!step) tx.addStep(at, { type: 'sleep', status: 'waiting', now, wakeAt });
      tx.sleep(at, wakeAt, this.#now());
    });
    this.#timers.at(wakeAt, instanceOf(at));
    return { state: 'suspend' };
  }

  async stepWaitForEvent(at: StepRef, type: string, timeoutMs: number): Promise<StepReply> {
    const seen = this.#replay(at, 'waitForEvent');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const now = this.#now();
    const eventType = step?.event_type ?? type;
    /** Takes the next buffered event of the type inside `tx`, completing the step with it; undefined when there is none. */
    const take = (tx: InstanceWrites): string | undefined => {
      const event = this.#store.nextEvent(at, eventType);
      if (!event) return undefined;
      const value = `{"payload":${event.payload ?? 'null'},"timestamp":${event.sent_at},"type":${JSON.stringify(eventType)}}`;
      tx.consumeEvent(event.seq);
      if (step) tx.completeStep(at, value, now);
      else tx.addStep(at, { type: 'waitForEvent', status: 'complete', now, eventType, value });
      return value;
    };
    const wakeAt = step?.wake_at ?? now + timeoutMs;
    let taken: string | undefined;
    if (wakeAt <= now && !this.#store.nextEvent(at, eventType)) {
      const error = { name: 'WorkflowTimeoutError', message: `Execution timed out after ${timeoutMs}ms waiting for an event of type ${eventType}` };
      await this.#commit(at, (tx) => {
        if (step) tx.failStep(at, error, now);
      });
      traceStep('waitForEvent', at, step?.started_at ?? now, now, { error: error.name });
      return { state: 'error', ...error };
    }
    // The check for a buffered event and the decision to wait are one write: an event that sendEvent
    // writes in the meantime is either seen here, or sees this step waiting and wakes the instance
    // (read first and written later, an event sent in between was stored and never woke anyone).
    await this.#commit(at, (tx) => {
      taken = take(tx);
      if (taken !== undefined) return;
      if (!step) tx.addStep(at, { type: 'waitForEvent', status: 'waiting', now, wakeAt, eventType });
      tx.sleep(at, wakeAt, this.#now());
    });
    if (taken !== undefined) {
      traceStep('waitForEvent', at, step?.started_at ?? now, now);
      return { state: 'done', value: taken };
    }
    this.#timers.at(wakeAt, instanceOf(at));
    return { state: 'suspend' };
  }

  // --- running instances ----------------------------------------------------------------------------------

  /** Look at an instance and do what its state asks: run it, wake it, or wait. */
  #consider(ref: InstanceRef): void {
    const key = keyOf(ref);
    if (this.#stopped || this.#running.has(key)) return;
    const row = this.#store.instance(ref);
    if (!row) return;
    if (row.status === 'waiting') {
      if (row.wake_at === null || row.wake_at > this.#now()) return; // an event or a later timer wakes it
      void this.#commit(ref, (tx) => void tx.wake(ref, this.#now())).then(() => this.#consider(ref));
      return;
    }
    if (row.status !== 'queued' && row.status !== 'running') return;
    if (this.#running.size >= this.#maxRuns) {
      this.#backlog.set(key, ref);
      return;
    }
    const token = randomUUID();
    this.#running.set(key, token);
    void this.#run({ ...instanceOf(ref), run: token }, row).then((again) => {
      if (this.#running.get(key) === token) this.#running.delete(key);
      if (again) this.#consider(ref); // it may have been woken while this run was finishing
      for (const [next, nextRef] of this.#backlog) {
        if (this.#running.size >= this.#maxRuns) break;
        this.#backlog.delete(next);
        this.#consider(nextRef);
      }
    });
  }

  /** One run; whether to look at the instance again at once (not when a retry is already scheduled). */
  async #run(run: RunRef, row: InstanceRow): Promise<boolean> {
    try {
      return await this.#runOnce(run, row);
    } catch (e) {
      this.#later(run, (e as Error).message);
      return false;
    }
  }

  async #runOnce(run: RunRef, row: InstanceRow): Promise<boolean> {
    if (row.status === 'queued') await this.#commit(run, (tx) => tx.start(run, this.#now()));
    const codeKey = this.#deps.codeKeyFor(row.worker, row.version);
    if (!codeKey) {
      await this.#finish(run, { outcome: 'errored', name: 'Error', message: `version ${row.version.slice(0, 12)} of worker ${row.worker} is gone` });
      return false;
    }
    const runner = this.#deps.runner(this.#deps.worker(row.worker)?.cordon ?? '');
    if (!runner) {
      this.#noRunner.set(keyOf(run), instanceOf(run));
      this.#later(run, "no sandbox of the worker's cordon is connected");
      return false;
    }
    const event = JSON.stringify({ payload: null, timestamp: row.created_at, instanceId: run.id, workflowName: run.workflow }).replace(
      '"payload":null',
      `"payload":${row.params ?? 'null'}`,
    );
    let result: Awaited<ReturnType<WorkerRunner['run']>>;
    try {
      result = await this.#traces.inRun(
        run,
        row.worker,
        row.version,
        async () => (await runner.run(codeKey, row.class_name, event, new StepPort(this, run) as never)) as typeof result,
      );
    } catch (e) {
      // The sandbox died or the session broke mid-run: nothing recorded is lost; run it again soon.
      this.#later(run, (e as Error).message);
      return false;
    }
    this.#failures.delete(keyOf(run));
    await this.#finish(run, result);
    return true;
  }

  #later(ref: InstanceRef, why: string): void {
    const key = keyOf(ref);
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const delay = RETRY_RUN_MS[Math.min(n, RETRY_RUN_MS.length - 1)]!;
    this.#deps.log.warn('workflow run failed; trying again', { instance: `${ref.tenant}/${ref.workflow}/${ref.id}`, in: delay, why });
    const again = instanceOf(ref);
    setTimeout(() => this.#consider(again), delay).unref();
  }

  async #finish(run: RunRef, result: Awaited<ReturnType<WorkerRunner['run']>>): Promise<void> {
    if (result.outcome === 'suspended' || !this.#live(run)) return;
    const now = this.#now();
    if (result.outcome === 'complete') {
      let output: string | null;
      try {
        output = checkValue(result.output, 'the output of run()');
      } catch (e) {
        return this.#finish(run, { outcome: 'errored', name: 'Error', message: (e as Error).message });
      }
      await this.#commit(run, (tx) => tx.complete(run, output, now));
    } else {
      await this.#commit(run, (tx) => tx.fail(run, { name: String(result.name).slice(0, 256), message: String(result.message).slice(0, 4096) }, now));
    }
  }

  async #transition(ref: InstanceRef, change: (row: InstanceRow) => InstanceStatusName): Promise<void> {
    await this.#commit(ref, (tx) => tx.setStatus(ref, change(this.#instance(ref)), this.#now()));
    this.#consider(ref);
  }

  /** The instance's row, or a 404 that names it. */
  #instance(ref: InstanceRef): InstanceRow {
    const row = this.#store.instance(ref);
    if (!row) throw new WorkflowError(404, `no instance ${ref.id} of workflow ${ref.workflow}`);
    return row;
  }
}

const ended = (s: StepRow) => s.status === 'complete' || s.status === 'errored';
const stepKey = (s: StepRow) => `${s.count}\0${s.name}`;

function describe(row: InstanceRow, steps: StepRow[]): InstanceStatus {
  const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
  const out: InstanceStatus = {
    id: row.id,
    workflow: row.workflow,
    status: row.status,
    createdAt: new Date(row.created_at).toISOString(),
    steps: steps.map((s) => {
      const r: StepRecord = {
        name: s.name,
        count: s.count,
        type: s.type,
        status: s.status,
        attempts: s.attempts,
        startedAt: iso(s.started_at),
        endedAt: iso(s.ended_at),
      };
      if (s.status === 'complete' && s.value !== null) r.output = s.value;
      if (s.error_name !== null) r.error = { name: s.error_name, message: s.error_message ?? '' };
      return r;
    }),
  };
  if (row.output !== null) out.output = row.output;
  if (row.error_name !== null) out.error = { name: row.error_name, message: row.error_message ?? '' };
  return out;
}
