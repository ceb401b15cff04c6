/**
 * What the workflows engine keeps: workflows, instances, steps and events in one database per tenant
 * (tenant-db.ts: the schema and the group commit). Every statement over them is here, one named method
 * each, its parameters bound by name from the references the engine passes. Reads run at once; the
 * writes are reachable only inside `write()`, so each is part of a group commit and on disk before its
 * caller is answered. Which write to make when is the engine's state machine (engine.ts).
 */
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { NAME } from '../../../schemas/worker.ts';
import type { InstanceStatusName, WorkflowDecl } from '../../../schemas/workflows.ts';
import { WorkflowError } from './errors.ts';
import { TenantDb } from './tenant-db.ts';

/** One workflow of one tenant. */
export interface WorkflowRef {
  readonly tenant: string;
  readonly workflow: string;
}

/** One instance of a tenant's workflow: how the engine, its ports and the admin routes name it. */
export interface InstanceRef extends WorkflowRef {
  readonly id: string;
}

/** One step of an instance: its name and which call of that name in run() it is (1, 2, …). */
export interface StepAt extends InstanceRef {
  readonly name: string;
  readonly count: number;
}

export interface InstanceRow {
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

export interface StepRow {
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

export interface StepError {
  name: string;
  message: string;
}

/** A step recorded for the first time. */
export interface NewStep {
  type: StepRow['type'];
  status: StepRow['status'];
  now: number;
  attempts?: number;
  value?: string | null;
  wakeAt?: number | null;
  eventType?: string | null;
}

export class InstanceStore {
  readonly #dir: string;
  readonly #tenants = new Map<string, { db: TenantDb; writes: InstanceWrites }>();

  constructor(dir: string) {
    this.#dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** The tenants that have a database (after a restart: whose instances to look at). */
  tenants(): string[] {
    return readdirSync(this.#dir).flatMap((file) => {
      const m = /^([a-z0-9-]+)\.db$/.exec(file);
      return m && NAME.test(m[1]!) ? [m[1]!] : [];
    });
  }

  /** Runs `fn`'s writes in the tenant's next group commit; resolves once they are durable. */
  write(tenant: string, fn: (tx: InstanceWrites) => void): Promise<void> {
    const { db, writes } = this.#open(tenant);
    return db.write(() => fn(writes));
  }

  close(): void {
    for (const { db } of this.#tenants.values()) db.close();
    this.#tenants.clear();
  }

  // --- workflows ---------------------------------------------------------------------------------------

  /** The worker hosting the workflow and the class it runs. */
  host(wf: WorkflowRef): { worker: string; className: string } | undefined {
    return this.#db(wf.tenant).prepare('SELECT worker, class_name AS className FROM workflows WHERE name = @workflow').get(wf) as
      | { worker: string; className: string }
      | undefined;
  }

  workflows(tenant: string): { name: string; worker: string; className: string }[] {
    return this.#db(tenant).prepare('SELECT name, worker, class_name AS className FROM workflows ORDER BY name').all() as {
      name: string;
      worker: string;
      className: string;
    }[];
  }

  // --- instances ---------------------------------------------------------------------------------------

  instance(ref: InstanceRef): InstanceRow | undefined {
    return this.#db(ref.tenant).prepare('SELECT * FROM instances WHERE workflow = @workflow AND id = @id').get(ref) as InstanceRow | undefined;
  }

  /** The status alone: what every step call reads, without the instance's params. */
  state(ref: InstanceRef): InstanceStatusName | undefined {
    return this.#db(ref.tenant).prepare('SELECT status FROM instances WHERE workflow = @workflow AND id = @id').pluck().get(ref) as
      | InstanceStatusName
      | undefined;
  }

  /** Newest first. */
  /** Newest first; `after`: the last row of the previous page (created_at, then id, is the order). */
  list(
    wf: WorkflowRef,
    filter: { status?: InstanceStatusName | undefined; limit: number; after?: { createdAt: number; id: string } | undefined },
  ): InstanceRow[] {
    const db = this.#db(wf.tenant);
    const params = { workflow: wf.workflow, status: filter.status, limit: filter.limit, at: filter.after?.createdAt, id: filter.after?.id };
    const where = ['workflow = @workflow', filter.status ? 'status = @status' : '', filter.after ? '(created_at < @at OR (created_at = @at AND id > @id))' : '']
      .filter(Boolean)
      .join(' AND ');
    return db.prepare(`SELECT * FROM instances WHERE ${where} ORDER BY created_at DESC, id LIMIT @limit`).all(params) as InstanceRow[];
  }

  /** How many instances of the workflow are in each status. */
  counts(wf: WorkflowRef): Record<string, number> {
    const rows = this.#db(wf.tenant).prepare('SELECT status, COUNT(*) AS n FROM instances WHERE workflow = @workflow GROUP BY status').all(wf) as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  /** Instances a restart of the engine must run again or wake at their time. */
  unfinished(tenant: string): Pick<InstanceRow, 'workflow' | 'id' | 'status' | 'wake_at'>[] {
    return this.#db(tenant).prepare("SELECT workflow, id, status, wake_at FROM instances WHERE status IN ('queued', 'running', 'waiting')").all() as Pick<
      InstanceRow,
      'workflow' | 'id' | 'status' | 'wake_at'
    >[];
  }

  // --- steps and events --------------------------------------------------------------------------------

  /** In the order they were first recorded. */
  steps(ref: InstanceRef): StepRow[] {
    return this.#db(ref.tenant).prepare('SELECT * FROM steps WHERE workflow = @workflow AND instance = @id ORDER BY seq').all(ref) as StepRow[];
  }

  step(at: StepAt): StepRow | undefined {
    return this.#db(at.tenant).prepare('SELECT * FROM steps WHERE workflow = @workflow AND instance = @id AND name = @name AND count = @count').get(at) as
      | StepRow
      | undefined;
  }

  /** How many `step.do` the instance has recorded (they are limited). */
  doSteps(ref: InstanceRef): number {
    return this.#db(ref.tenant).prepare("SELECT COUNT(*) FROM steps WHERE workflow = @workflow AND instance = @id AND type = 'do'").pluck().get(ref) as number;
  }

  /** Whether the instance is parked in a waitForEvent for this type. */
  waitsFor(ref: InstanceRef, type: string): boolean {
    return (
      this.#db(ref.tenant)
        .prepare("SELECT 1 FROM steps WHERE workflow = @workflow AND instance = @id AND type = 'waitForEvent' AND status = 'waiting' AND event_type = @type")
        .get({ ...ref, type }) !== undefined
    );
  }

  /** The oldest event of this type the instance has not taken yet. */
  nextEvent(ref: InstanceRef, type: string): { seq: number; payload: string | null; sent_at: number } | undefined {
    return this.#db(ref.tenant)
      .prepare('SELECT seq, payload, sent_at FROM events WHERE workflow = @workflow AND instance = @id AND type = @type AND consumed = 0 ORDER BY seq LIMIT 1')
      .get({ ...ref, type }) as { seq: number; payload: string | null; sent_at: number } | undefined;
  }

  #db(tenant: string): TenantDb {
    return this.#open(tenant).db;
  }

  #open(tenant: string): { db: TenantDb; writes: InstanceWrites } {
    let t = this.#tenants.get(tenant);
    if (!t) {
      // The name becomes a file name.
      if (!NAME.test(tenant)) throw new WorkflowError(400, `bad tenant name ${JSON.stringify(tenant)}`);
      const db = new TenantDb(join(this.#dir, `${tenant}.db`));
      this.#tenants.set(tenant, (t = { db, writes: new InstanceWrites(db) }));
    }
    return t;
  }
}

/** The writes to one tenant's database, handed out only inside its group commit (`InstanceStore.write`). */
export class InstanceWrites {
  readonly #db: TenantDb;

  constructor(db: TenantDb) {
    this.#db = db;
  }

  #run(sql: string, params: object): number {
    return this.#db.prepare(sql).run(params).changes;
  }

  declare(worker: string, decl: WorkflowDecl): void {
    this.#run(
      'INSERT INTO workflows (name, worker, class_name) VALUES (@name, @worker, @className) ON CONFLICT(name) DO UPDATE SET worker = excluded.worker, class_name = excluded.class_name',
      {
        name: decl.name,
        worker,
        className: decl.className,
      },
    );
  }

  /** A queued instance; false if the id is in use in the workflow already. */
  createInstance(ref: InstanceRef, made: { worker: string; version: string; className: string; params: string | null; now: number }): boolean {
    return (
      this.#run(
        "INSERT INTO instances (workflow, id, worker, version, class_name, status, params, created_at, updated_at) VALUES (@workflow, @id, @worker, @version, @className, 'queued', @params, @now, @now) ON CONFLICT DO NOTHING",
        { ...ref, ...made },
      ) > 0
    );
  }

  /** Back to the start: its steps and buffered events are erased, its outcome cleared, and it is queued. */
  reset(ref: InstanceRef, now: number): void {
    this.#run('DELETE FROM steps WHERE workflow = @workflow AND instance = @id', ref);
    this.#run('DELETE FROM events WHERE workflow = @workflow AND instance = @id', ref);
    this.#run(
      "UPDATE instances SET status = 'queued', output = NULL, error_name = NULL, error_message = NULL, wake_at = NULL, updated_at = @now WHERE workflow = @workflow AND id = @id",
      { ...ref, now },
    );
  }

  /** An operator's or binding's pause, resume or terminate. */
  setStatus(ref: InstanceRef, status: InstanceStatusName, now: number): void {
    this.#run('UPDATE instances SET status = @status, updated_at = @now WHERE workflow = @workflow AND id = @id', { ...ref, status, now });
  }

  /** queued → running. */
  start(ref: InstanceRef, now: number): void {
    this.#run("UPDATE instances SET status = 'running', updated_at = @now WHERE workflow = @workflow AND id = @id AND status = 'queued'", { ...ref, now });
  }

  /** waiting → running; false if it was not waiting. */
  wake(ref: InstanceRef, now: number): boolean {
    return (
      this.#run("UPDATE instances SET status = 'running', wake_at = NULL, updated_at = @now WHERE workflow = @workflow AND id = @id AND status = 'waiting'", {
        ...ref,
        now,
      }) > 0
    );
  }

  /** running → waiting (hibernating) until `wakeAt` or an event. */
  sleep(ref: InstanceRef, wakeAt: number, now: number): void {
    this.#run("UPDATE instances SET status = 'waiting', wake_at = @wakeAt, updated_at = @now WHERE workflow = @workflow AND id = @id AND status = 'running'", {
      ...ref,
      wakeAt,
      now,
    });
  }

  /** running → complete, with run()'s return value. */
  complete(ref: InstanceRef, output: string | null, now: number): void {
    this.#run("UPDATE instances SET status = 'complete', output = @output, updated_at = @now WHERE workflow = @workflow AND id = @id AND status = 'running'", {
      ...ref,
      output,
      now,
    });
  }

  /** running → errored, with what run() threw. */
  fail(ref: InstanceRef, error: StepError, now: number): void {
    this.#run(
      "UPDATE instances SET status = 'errored', error_name = @errorName, error_message = @errorMessage, updated_at = @now WHERE workflow = @workflow AND id = @id AND status = 'running'",
      { ...ref, errorName: error.name, errorMessage: error.message, now },
    );
  }

  addEvent(ref: InstanceRef, type: string, payload: string | null, now: number): void {
    this.#run('INSERT INTO events (workflow, instance, type, payload, sent_at) VALUES (@workflow, @id, @type, @payload, @now)', { ...ref, type, payload, now });
  }

  /** The event was taken by a waitForEvent. */
  consumeEvent(seq: number): void {
    this.#run('UPDATE events SET consumed = 1 WHERE seq = @seq', { seq });
  }

  /** A step's first record; `seq` keeps the order steps were first reached in. */
  addStep(at: StepAt, step: NewStep): void {
    this.#run(
      `INSERT INTO steps (workflow, instance, name, count, type, status, attempts, value, started_at, ended_at, wake_at, event_type, seq)
       VALUES (@workflow, @id, @name, @count, @type, @status, @attempts, @value, @now, @endedAt, @wakeAt, @eventType, (SELECT COUNT(*) FROM steps WHERE workflow = @workflow AND instance = @id))`,
      {
        ...at,
        type: step.type,
        status: step.status,
        attempts: step.attempts ?? 0,
        value: step.value ?? null,
        now: step.now,
        endedAt: step.status === 'complete' ? step.now : null,
        wakeAt: step.wakeAt ?? null,
        eventType: step.eventType ?? null,
      },
    );
  }

  /** Another attempt of a `step.do` is running. */
  retryStep(at: StepAt, attempt: number): void {
    this.#run(
      "UPDATE steps SET attempts = @attempt, status = 'running', wake_at = NULL WHERE workflow = @workflow AND instance = @id AND name = @name AND count = @count",
      { ...at, attempt },
    );
  }

  /** Done, with its value (none for a sleep); an earlier attempt's error is cleared. */
  completeStep(at: StepAt, value: string | null, now: number): void {
    this.#run(
      "UPDATE steps SET status = 'complete', value = @value, error_name = NULL, error_message = NULL, ended_at = @now WHERE workflow = @workflow AND instance = @id AND name = @name AND count = @count",
      { ...at, value, now },
    );
  }

  /** Failed for good: replays throw this error. */
  failStep(at: StepAt, error: StepError, now: number): void {
    this.#run(
      "UPDATE steps SET status = 'errored', error_name = @errorName, error_message = @errorMessage, ended_at = @now WHERE workflow = @workflow AND instance = @id AND name = @name AND count = @count",
      { ...at, errorName: error.name, errorMessage: error.message, now },
    );
  }

  /** The attempt failed; the next one waits until `wakeAt`. */
  retryLater(at: StepAt, error: StepError, wakeAt: number): void {
    this.#run(
      "UPDATE steps SET status = 'waiting', error_name = @errorName, error_message = @errorMessage, wake_at = @wakeAt WHERE workflow = @workflow AND instance = @id AND name = @name AND count = @count",
      { ...at, errorName: error.name, errorMessage: error.message, wakeAt },
    );
  }
}
