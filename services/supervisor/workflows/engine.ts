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
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RpcStub } from 'capnweb';
import type { Logger } from '../../../lib/log.ts';
import { retryDelay } from '../../../lib/workflow-durations.ts';
import { NAME } from '../../../schemas/worker.ts';
import { MAX_VALUE, type InstanceStatus, type InstanceStatusName, type StepConfig, type StepRecord, type StepReply, type WorkflowDecl } from '../../../schemas/workflows.ts';
import type { WorkerRunner } from '../../../schemas/services.ts';
import { WorkflowError } from './errors.ts';
import { TenantDb } from './tenant-db.ts';
import { WakeTimers } from './timers.ts';
import { StepPort } from './ports.ts';

// The admin API maps this error's status to its answer.
export { WorkflowError };

export interface EngineDeps {
  dir: string;
  /** The worker's current version and cordon, if it exists. */
  worker(workerId: string): { version: string; cordon: string } | undefined;
  /** A code key that unlocks exactly this version of the worker (for pinned instances). */
  codeKeyFor(workerId: string, version: string): string | undefined;
  /** The runner the sandbox of a cordon registered, if it is connected. */
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
  log: Logger;
  now?: () => number;
  stepLimit?: number;
  maxConcurrentRuns?: number;
}

interface InstanceRow {
  workflow: string;
  id: string;
  worker: string;
  version: string;
  class_name: string;
  status: InstanceStatusName;
  params: string | null;
  output: string | null;
  error_name: string | null;
  error_message: string | null;
  created_at: number;
  wake_at: number | null;
}

interface StepRow {
  name: string;
  count: number;
  type: 'do' | 'sleep' | 'waitForEvent';
  status: 'running' | 'waiting' | 'complete' | 'errored';
  attempts: number;
  value: string | null;
  error_name: string | null;
  error_message: string | null;
  started_at: number | null;
  ended_at: number | null;
  wake_at: number | null;
  event_type: string | null;
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

export class WorkflowEngine {
  readonly #deps: EngineDeps;
  readonly #now: () => number;
  readonly #dbs = new Map<string, TenantDb>();
  readonly #timers: WakeTimers;
  /** Instances with a run in flight, and that run's token: step calls of any other run are told to stop. */
  readonly #running = new Map<string, string>();
  readonly #backlog = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #noRunner = new Set<string>();
  readonly #stepLimit: number;
  readonly #maxRuns: number;
  #stopped = false;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#stepLimit = deps.stepLimit ?? 10_000;
    this.#maxRuns = deps.maxConcurrentRuns ?? 256;
    this.#timers = new WakeTimers((key) => this.#consider(key), this.#now);
    mkdirSync(deps.dir, { recursive: true, mode: 0o700 });
  }

  /** After a (re)start: every unfinished instance runs again or waits for its timer. */
  recover(): void {
    for (const file of readdirSync(this.#deps.dir)) {
      const m = /^([a-z0-9-]+)\.db$/.exec(file);
      if (!m || !NAME.test(m[1]!)) continue;
      const rows = this.#db(m[1]!).prepare("SELECT workflow, id, status, wake_at FROM instances WHERE status IN ('queued', 'running', 'waiting')").all() as Pick<InstanceRow, 'workflow' | 'id' | 'status' | 'wake_at'>[];
      for (const r of rows) {
        const key = this.#key(m[1]!, r.workflow, r.id);
        if (r.status === 'waiting') {
          if (r.wake_at !== null) this.#timers.at(r.wake_at, key);
        } else this.#consider(key);
      }
    }
  }

  /** A sandbox connected: instances that found no runner go now rather than at their retry time. */
  runnerAvailable(): void {
    const keys = [...this.#noRunner];
    this.#noRunner.clear();
    for (const key of keys) this.#consider(key);
  }

  /** Timers due by the engine's clock fire now (tests move the clock). */
  poke(): void {
    this.#timers.poke();
  }

  stop(): void {
    this.#stopped = true;
    this.#timers.stop();
    for (const db of this.#dbs.values()) db.close();
    this.#dbs.clear();
  }

  get sleeping(): number {
    return this.#timers.size;
  }

  // --- registration (at deploy) ------------------------------------------------------------------------

  /** Refuses a workflow name another worker of the tenant hosts already (names are per tenant, as per account in Cloudflare). */
  checkDeclarations(tenant: string, workerId: string, decls: WorkflowDecl[]): void {
    for (const d of decls) {
      const owner = this.#db(tenant).prepare('SELECT worker FROM workflows WHERE name = ?').pluck().get(d.name) as string | undefined;
      if (owner && owner !== workerId) throw new WorkflowError(409, `workflow ${d.name} is already hosted by worker ${owner}`);
    }
  }

  async declare(tenant: string, workerId: string, decls: WorkflowDecl[]): Promise<void> {
    const db = this.#db(tenant);
    await db.write(() => {
      for (const d of decls) db.prepare('INSERT INTO workflows (name, worker, class_name) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET worker = excluded.worker, class_name = excluded.class_name').run(d.name, workerId, d.className);
    });
  }

  workflows(tenant: string): { name: string; worker: string; className: string }[] {
    return this.#db(tenant).prepare('SELECT name, worker, class_name AS className FROM workflows ORDER BY name').all() as { name: string; worker: string; className: string }[];
  }

  // --- the API (bindings, admin, CLI): always one tenant ---------------------------------------------------

  async create(tenant: string, workflow: string, id: string | null, params: string | null): Promise<string> {
    const [created] = await this.#createMany(tenant, workflow, [{ id, params }], false);
    return created!;
  }

  /** Existing ids are skipped (and left out of the result), as Cloudflare's createBatch does. */
  async createBatch(tenant: string, workflow: string, batch: { id: string | null; params: string | null }[]): Promise<string[]> {
    if (batch.length > 100) throw new WorkflowError(400, 'createBatch takes at most 100 instances');
    return this.#createMany(tenant, workflow, batch, true);
  }

  async #createMany(tenant: string, workflow: string, batch: { id: string | null; params: string | null }[], skipExisting: boolean): Promise<string[]> {
    const def = this.#db(tenant).prepare('SELECT worker, class_name FROM workflows WHERE name = ?').get(workflow) as { worker: string; class_name: string } | undefined;
    if (!def) throw new WorkflowError(404, `no workflow ${workflow} in tenant ${tenant}; declare it in the worker's config (workflows: [{ name, binding, class_name }])`);
    const current = this.#deps.worker(def.worker);
    if (!current) throw new WorkflowError(404, `the worker hosting workflow ${workflow} no longer exists`);
    const items = batch.map((b) => ({ id: b.id ?? randomUUID(), params: checkValue(b.params, 'params') }));
    const db = this.#db(tenant);
    const created: string[] = [];
    const now = this.#now();
    await db.write(() => {
      const insert = db.prepare(
        "INSERT INTO instances (workflow, id, worker, version, class_name, status, params, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?) ON CONFLICT DO NOTHING",
      );
      for (const item of items) {
        if (insert.run(workflow, item.id, def.worker, current.version, def.class_name, item.params, now, now).changes) created.push(item.id);
        else if (!skipExisting) throw new WorkflowError(409, `instance id ${item.id} is already in use in workflow ${workflow}; restart it instead`);
      }
    });
    for (const id of created) this.#consider(this.#key(tenant, workflow, id));
    return created;
  }

  status(tenant: string, workflow: string, id: string): InstanceStatus {
    const row = this.#instance(tenant, workflow, id);
    if (!row) throw new WorkflowError(404, `no instance ${id} of workflow ${workflow}`);
    const steps = this.#db(tenant).prepare('SELECT * FROM steps WHERE workflow = ? AND instance = ? ORDER BY seq').all(workflow, id) as StepRow[];
    return this.#describe(row, steps);
  }

  list(tenant: string, workflow: string, filter: { status?: InstanceStatusName; limit?: number }): InstanceStatus[] {
    const limit = Math.min(Math.max(filter.limit ?? 50, 1), 10_000);
    const db = this.#db(tenant).db;
    const rows = (
      filter.status
        ? db.prepare('SELECT * FROM instances WHERE workflow = ? AND status = ? ORDER BY created_at DESC, id LIMIT ?').all(workflow, filter.status, limit)
        : db.prepare('SELECT * FROM instances WHERE workflow = ? ORDER BY created_at DESC, id LIMIT ?').all(workflow, limit)
    ) as InstanceRow[];
    return rows.map((r) => this.#describe(r, []));
  }

  /** How many instances of the workflow are in each status. */
  counts(tenant: string, workflow: string): Record<string, number> {
    const rows = this.#db(tenant).prepare('SELECT status, COUNT(*) AS n FROM instances WHERE workflow = ? GROUP BY status').all(workflow) as { status: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async pause(tenant: string, workflow: string, id: string): Promise<void> {
    await this.#transition(tenant, workflow, id, (row) => {
      if (FINISHED.includes(row.status) || row.status === 'paused') throw new WorkflowError(409, `instance ${id} is ${row.status}; only an unfinished instance can be paused`);
      return 'paused';
    });
  }

  async resume(tenant: string, workflow: string, id: string): Promise<void> {
    await this.#transition(tenant, workflow, id, (row) => {
      if (row.status !== 'paused') throw new WorkflowError(409, `instance ${id} is ${row.status}, not paused`);
      // Run again from the top: recorded steps replay, a sleep not yet due or a wait with no event suspends
      // again with its recorded timer, and an event that arrived while paused is taken.
      return 'running';
    });
  }

  async terminate(tenant: string, workflow: string, id: string): Promise<void> {
    await this.#transition(tenant, workflow, id, (row) => {
      if (FINISHED.includes(row.status)) throw new WorkflowError(409, `instance ${id} is already ${row.status}`);
      return 'terminated';
    });
  }

  /** From the start: recorded steps and buffered events are erased, as Cloudflare's restart() does. */
  async restart(tenant: string, workflow: string, id: string): Promise<void> {
    const db = this.#db(tenant);
    if (!this.#instance(tenant, workflow, id)) throw new WorkflowError(404, `no instance ${id} of workflow ${workflow}`);
    await db.write(() => {
      db.prepare('DELETE FROM steps WHERE workflow = ? AND instance = ?').run(workflow, id);
      db.prepare('DELETE FROM events WHERE workflow = ? AND instance = ?').run(workflow, id);
      db
        .prepare("UPDATE instances SET status = 'queued', output = NULL, error_name = NULL, error_message = NULL, wake_at = NULL, updated_at = ? WHERE workflow = ? AND id = ?")
        .run(this.#now(), workflow, id);
    });
    this.#consider(this.#key(tenant, workflow, id));
  }

  /** Buffered per type: an event sent before its waitForEvent is not lost. */
  async sendEvent(tenant: string, workflow: string, id: string, type: string, payload: string | null): Promise<void> {
    const row = this.#instance(tenant, workflow, id);
    if (!row) throw new WorkflowError(404, `no instance ${id} of workflow ${workflow}`);
    if (FINISHED.includes(row.status)) throw new WorkflowError(409, `instance ${id} is ${row.status}; it takes no more events`);
    const value = checkValue(payload, 'the event payload');
    const db = this.#db(tenant);
    let wake = false;
    await db.write(() => {
      db.prepare('INSERT INTO events (workflow, instance, type, payload, sent_at) VALUES (?, ?, ?, ?, ?)').run(workflow, id, type, value, this.#now());
      const waiting = db.prepare("SELECT 1 FROM steps WHERE workflow = ? AND instance = ? AND type = 'waitForEvent' AND status = 'waiting' AND event_type = ?").get(workflow, id, type);
      if (waiting && db.prepare("UPDATE instances SET status = 'running', wake_at = NULL, updated_at = ? WHERE workflow = ? AND id = ? AND status = 'waiting'").run(this.#now(), workflow, id).changes) wake = true;
    });
    if (wake) this.#consider(this.#key(tenant, workflow, id));
  }

  // --- steps: called through the StepPort of one run ------------------------------------------------------

  /** Whether `token`'s run may go on: it is the instance's current run and the instance is running. */
  #live(tenant: string, workflow: string, id: string, token: string): boolean {
    if (this.#running.get(this.#key(tenant, workflow, id)) !== token) return false;
    return this.#db(tenant).prepare('SELECT status FROM instances WHERE workflow = ? AND id = ?').pluck().get(workflow, id) === 'running';
  }

  #step(tenant: string, workflow: string, id: string, name: string, count: number): StepRow | undefined {
    return this.#db(tenant).prepare('SELECT * FROM steps WHERE workflow = ? AND instance = ? AND name = ? AND count = ?').get(workflow, id, name, count) as StepRow | undefined;
  }

  /**
   * How every step call starts: a run that is no longer current is told to suspend, a recorded
   * outcome is replayed (a sleep records no value), and a step recorded as another kind is refused.
   */
  #replay(tenant: string, workflow: string, id: string, token: string, name: string, count: number, type: StepRow['type']): { reply: StepReply } | { step: StepRow | undefined } {
    if (!this.#live(tenant, workflow, id, token)) return { reply: { state: 'suspend' } };
    const step = this.#step(tenant, workflow, id, name, count);
    if (step?.status === 'complete') return { reply: { state: 'done', value: step.value } };
    if (step?.status === 'errored') return { reply: { state: 'error', name: step.error_name ?? 'Error', message: step.error_message ?? '' } };
    if (step && step.type !== type) throw new WorkflowError(400, `step "${name}" #${count} was a ${step.type} when this instance last ran; step names must be deterministic`);
    return { step };
  }

  async stepBegin(tenant: string, workflow: string, id: string, token: string, name: string, count: number): Promise<StepReply> {
    const seen = this.#replay(tenant, workflow, id, token, name, count, 'do');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const db = this.#db(tenant);
    const now = this.#now();
    if (!step) {
      const used = db.prepare("SELECT COUNT(*) FROM steps WHERE workflow = ? AND instance = ? AND type = 'do'").pluck().get(workflow, id) as number;
      if (used >= this.#stepLimit) return { state: 'error', name: 'Error', message: `The limit of ${this.#stepLimit} steps has been reached` };
    }
    const attempt = (step?.attempts ?? 0) + 1;
    await db.write(() => {
      if (step) db.prepare("UPDATE steps SET attempts = ?, status = 'running', wake_at = NULL WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(attempt, workflow, id, name, count);
      else
        db
          .prepare("INSERT INTO steps (workflow, instance, name, count, type, status, attempts, started_at, seq) VALUES (?, ?, ?, ?, 'do', 'running', 1, ?, (SELECT COUNT(*) FROM steps WHERE workflow = ? AND instance = ?))")
          .run(workflow, id, name, count, now, workflow, id);
    });
    return { state: 'run', attempt };
  }

  async stepEnd(
    tenant: string,
    workflow: string,
    id: string,
    token: string,
    name: string,
    count: number,
    attempt: number,
    outcome: { value: string | null } | { error: { name: string; message: string }; nonRetryable: boolean },
    config: StepConfig,
  ): Promise<StepReply> {
    if (!this.#live(tenant, workflow, id, token)) return { state: 'suspend' };
    const step = this.#step(tenant, workflow, id, name, count);
    if (!step || step.type !== 'do' || step.status !== 'running' || step.attempts !== attempt) return { state: 'suspend' }; // a stale attempt
    const db = this.#db(tenant);
    const now = this.#now();
    const where = [workflow, id, name, count] as const;
    if ('value' in outcome) {
      const value = checkValue(outcome.value, `the result of step "${name}"`);
      await db.write(() => void db.prepare("UPDATE steps SET status = 'complete', value = ?, error_name = NULL, error_message = NULL, ended_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(value, now, ...where));
      return { state: 'done', value };
    }
    const error = { name: outcome.error.name.slice(0, 256), message: outcome.error.message.slice(0, 4096) };
    if (outcome.nonRetryable || attempt > config.retries.limit) {
      await db.write(
        () => void db.prepare("UPDATE steps SET status = 'errored', error_name = ?, error_message = ?, ended_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(error.name, error.message, now, ...where),
      );
      return { state: 'error', ...error };
    }
    const wakeAt = now + retryDelay(config.retries, attempt);
    await db.write(() => {
      db.prepare("UPDATE steps SET status = 'waiting', error_name = ?, error_message = ?, wake_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(error.name, error.message, wakeAt, ...where);
      this.#sleepInstance(db, workflow, id, wakeAt);
    });
    this.#timers.at(wakeAt, this.#key(tenant, workflow, id));
    return { state: 'suspend' };
  }

  async stepSleep(tenant: string, workflow: string, id: string, token: string, name: string, count: number, until: number): Promise<StepReply> {
    const seen = this.#replay(tenant, workflow, id, token, name, count, 'sleep');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const db = this.#db(tenant);
    const now = this.#now();
    // The time to wake is the one recorded first: a replay's own Date.now() does not move it.
    const wakeAt = step?.wake_at ?? until;
    if (wakeAt <= now) {
      await db.write(() => {
        if (step) db.prepare("UPDATE steps SET status = 'complete', ended_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(now, workflow, id, name, count);
        else this.#insertStep(db, workflow, id, name, count, 'sleep', 'complete', now, wakeAt, null);
      });
      return { state: 'done', value: null };
    }
    await db.write(() => {
      if (!step) this.#insertStep(db, workflow, id, name, count, 'sleep', 'waiting', now, wakeAt, null);
      this.#sleepInstance(db, workflow, id, wakeAt);
    });
    this.#timers.at(wakeAt, this.#key(tenant, workflow, id));
    return { state: 'suspend' };
  }

  async stepWaitForEvent(tenant: string, workflow: string, id: string, token: string, name: string, count: number, type: string, timeoutMs: number): Promise<StepReply> {
    const seen = this.#replay(tenant, workflow, id, token, name, count, 'waitForEvent');
    if ('reply' in seen) return seen.reply;
    const { step } = seen;
    const db = this.#db(tenant);
    const now = this.#now();
    const eventType = step?.event_type ?? type;
    const event = db.prepare('SELECT seq, payload, sent_at FROM events WHERE workflow = ? AND instance = ? AND type = ? AND consumed = 0 ORDER BY seq LIMIT 1').get(workflow, id, eventType) as
      | { seq: number; payload: string | null; sent_at: number }
      | undefined;
    if (event) {
      const value = `{"payload":${event.payload ?? 'null'},"timestamp":${event.sent_at},"type":${JSON.stringify(eventType)}}`;
      await db.write(() => {
        db.prepare('UPDATE events SET consumed = 1 WHERE seq = ?').run(event.seq);
        if (step) db.prepare("UPDATE steps SET status = 'complete', value = ?, ended_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(value, now, workflow, id, name, count);
        else this.#insertStep(db, workflow, id, name, count, 'waitForEvent', 'complete', now, null, eventType, value);
      });
      return { state: 'done', value };
    }
    const wakeAt = step?.wake_at ?? now + timeoutMs;
    if (wakeAt <= now) {
      const error = { name: 'WorkflowTimeoutError', message: `Execution timed out after ${timeoutMs}ms waiting for an event of type ${eventType}` };
      await db.write(() => {
        if (step) db.prepare("UPDATE steps SET status = 'errored', error_name = ?, error_message = ?, ended_at = ? WHERE workflow = ? AND instance = ? AND name = ? AND count = ?").run(error.name, error.message, now, workflow, id, name, count);
      });
      return { state: 'error', ...error };
    }
    await db.write(() => {
      if (!step) this.#insertStep(db, workflow, id, name, count, 'waitForEvent', 'waiting', now, wakeAt, eventType);
      this.#sleepInstance(db, workflow, id, wakeAt);
    });
    this.#timers.at(wakeAt, this.#key(tenant, workflow, id));
    return { state: 'suspend' };
  }

  #insertStep(db: TenantDb, workflow: string, id: string, name: string, count: number, type: string, status: string, now: number, wakeAt: number | null, eventType: string | null, value: string | null = null): void {
    db
      .prepare(
        `INSERT INTO steps (workflow, instance, name, count, type, status, attempts, value, started_at, ended_at, wake_at, event_type, seq)
         VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, (SELECT COUNT(*) FROM steps WHERE workflow = ? AND instance = ?))`,
      )
      .run(workflow, id, name, count, type, status, value, now, status === 'complete' ? now : null, wakeAt, eventType, workflow, id);
  }

  /** The run ends here; the instance waits (hibernates) until `wakeAt` or an event. */
  #sleepInstance(db: TenantDb, workflow: string, id: string, wakeAt: number): void {
    db.prepare("UPDATE instances SET status = 'waiting', wake_at = ?, updated_at = ? WHERE workflow = ? AND id = ? AND status = 'running'").run(wakeAt, this.#now(), workflow, id);
  }

  // --- running instances ----------------------------------------------------------------------------------

  #key(tenant: string, workflow: string, id: string): string {
    return `${tenant}\0${workflow}\0${id}`;
  }

  /** Look at an instance and do what its state asks: run it, wake it, or wait. */
  #consider(key: string): void {
    if (this.#stopped || this.#running.has(key)) return;
    const [tenant, workflow, id] = key.split('\0') as [string, string, string];
    const row = this.#instance(tenant, workflow, id);
    if (!row) return;
    if (row.status === 'waiting') {
      if (row.wake_at === null || row.wake_at > this.#now()) return; // an event or a later timer wakes it
      const db = this.#db(tenant);
      void db
        .write(() => void db.prepare("UPDATE instances SET status = 'running', wake_at = NULL, updated_at = ? WHERE workflow = ? AND id = ? AND status = 'waiting'").run(this.#now(), workflow, id))
        .then(() => this.#consider(key));
      return;
    }
    if (row.status !== 'queued' && row.status !== 'running') return;
    if (this.#running.size >= this.#maxRuns) {
      this.#backlog.add(key);
      return;
    }
    const token = randomUUID();
    this.#running.set(key, token);
    void this.#run(tenant, workflow, id, row, token).then((again) => {
      if (this.#running.get(key) === token) this.#running.delete(key);
      if (again) this.#consider(key); // it may have been woken while this run was finishing
      for (const next of this.#backlog) {
        if (this.#running.size >= this.#maxRuns) break;
        this.#backlog.delete(next);
        this.#consider(next);
      }
    });
  }

  /** One run; whether to look at the instance again at once (not when a retry is already scheduled). */
  async #run(tenant: string, workflow: string, id: string, row: InstanceRow, token: string): Promise<boolean> {
    try {
      return await this.#runOnce(tenant, workflow, id, row, token);
    } catch (e) {
      this.#later(this.#key(tenant, workflow, id), (e as Error).message);
      return false;
    }
  }

  async #runOnce(tenant: string, workflow: string, id: string, row: InstanceRow, token: string): Promise<boolean> {
    const db = this.#db(tenant);
    const key = this.#key(tenant, workflow, id);
    if (row.status === 'queued') await db.write(() => void db.prepare("UPDATE instances SET status = 'running', updated_at = ? WHERE workflow = ? AND id = ? AND status = 'queued'").run(this.#now(), workflow, id));
    const codeKey = this.#deps.codeKeyFor(row.worker, row.version);
    if (!codeKey) {
      await this.#finish(tenant, workflow, id, token, { outcome: 'errored', name: 'Error', message: `version ${row.version.slice(0, 12)} of worker ${row.worker} is gone` });
      return false;
    }
    const runner = this.#deps.runner(this.#deps.worker(row.worker)?.cordon ?? '');
    if (!runner) {
      this.#noRunner.add(key);
      this.#later(key, "no sandbox of the worker's cordon is connected");
      return false;
    }
    const event = JSON.stringify({ payload: null, timestamp: row.created_at, instanceId: id, workflowName: workflow }).replace('"payload":null', `"payload":${row.params ?? 'null'}`);
    let result: Awaited<ReturnType<WorkerRunner['run']>>;
    try {
      result = (await runner.run(codeKey, row.class_name, event, new StepPort(this, tenant, workflow, id, token) as never)) as typeof result;
    } catch (e) {
      // The sandbox died or the session broke mid-run: nothing recorded is lost; run it again soon.
      this.#later(key, (e as Error).message);
      return false;
    }
    this.#failures.delete(key);
    await this.#finish(tenant, workflow, id, token, result);
    return true;
  }

  #later(key: string, why: string): void {
    const n = this.#failures.get(key) ?? 0;
    this.#failures.set(key, n + 1);
    const delay = RETRY_RUN_MS[Math.min(n, RETRY_RUN_MS.length - 1)]!;
    this.#deps.log.warn('workflow run failed; trying again', { instance: key.replaceAll('\0', '/'), in: delay, why });
    setTimeout(() => this.#consider(key), delay).unref();
  }

  async #finish(tenant: string, workflow: string, id: string, token: string, result: Awaited<ReturnType<WorkerRunner['run']>>): Promise<void> {
    if (result.outcome === 'suspended' || !this.#live(tenant, workflow, id, token)) return;
    const db = this.#db(tenant);
    const now = this.#now();
    if (result.outcome === 'complete') {
      let output: string | null;
      try {
        output = checkValue(result.output, 'the output of run()');
      } catch (e) {
        return this.#finish(tenant, workflow, id, token, { outcome: 'errored', name: 'Error', message: (e as Error).message });
      }
      await db.write(() => void db.prepare("UPDATE instances SET status = 'complete', output = ?, updated_at = ? WHERE workflow = ? AND id = ? AND status = 'running'").run(output, now, workflow, id));
    } else {
      await db.write(
        () =>
          void db
            .prepare("UPDATE instances SET status = 'errored', error_name = ?, error_message = ?, updated_at = ? WHERE workflow = ? AND id = ? AND status = 'running'")
            .run(String(result.name).slice(0, 256), String(result.message).slice(0, 4096), now, workflow, id),
      );
    }
  }

  async #transition(tenant: string, workflow: string, id: string, change: (row: InstanceRow) => InstanceStatusName): Promise<void> {
    const db = this.#db(tenant);
    await db.write(() => {
      const row = this.#instance(tenant, workflow, id);
      if (!row) throw new WorkflowError(404, `no instance ${id} of workflow ${workflow}`);
      db.prepare('UPDATE instances SET status = ?, updated_at = ? WHERE workflow = ? AND id = ?').run(change(row), this.#now(), workflow, id);
    });
    this.#consider(this.#key(tenant, workflow, id));
  }

  #instance(tenant: string, workflow: string, id: string): InstanceRow | undefined {
    return this.#db(tenant).prepare('SELECT * FROM instances WHERE workflow = ? AND id = ?').get(workflow, id) as InstanceRow | undefined;
  }

  #describe(row: InstanceRow, steps: StepRow[]): InstanceStatus {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    const out: InstanceStatus = {
      id: row.id,
      workflow: row.workflow,
      status: row.status,
      createdAt: new Date(row.created_at).toISOString(),
      steps: steps.map((s) => {
        const r: StepRecord = { name: s.name, count: s.count, type: s.type, status: s.status, attempts: s.attempts, startedAt: iso(s.started_at), endedAt: iso(s.ended_at) };
        if (s.status === 'complete' && s.value !== null) r.output = s.value;
        if (s.error_name !== null) r.error = { name: s.error_name, message: s.error_message ?? '' };
        return r;
      }),
    };
    if (row.output !== null) out.output = row.output;
    if (row.error_name !== null) out.error = { name: row.error_name, message: row.error_message ?? '' };
    return out;
  }

  #db(tenant: string): TenantDb {
    let db = this.#dbs.get(tenant);
    if (!db) {
      if (!NAME.test(tenant)) throw new WorkflowError(400, `bad tenant name ${JSON.stringify(tenant)}`);
      this.#dbs.set(tenant, (db = new TenantDb(join(this.#deps.dir, `${tenant}.db`))));
    }
    return db;
  }
}
