/**
 * Cron triggers: each worker's `crons` (Cloudflare's five-field expressions, UTC) scheduled with
 * croner, a well-kept zero-dependency cron library; on each tick the supervisor has a sandbox of the
 * worker's cordon run its scheduled() handler. A tick while the supervisor is down is not made up for
 * (as a missed tick of a Cloudflare cron is simply missed); a tick that finds the previous run of the
 * same trigger still going is skipped (croner's `protect`).
 */
import { Cron } from 'croner';
import { CordonError } from '../../lib/errors.ts';
import type { RpcStub } from 'capnweb';
import type { Logger } from '../../lib/log.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import type { CodeStore } from './store.ts';

export class CronError extends CordonError {
  constructor(message: string) {
    super(message, { status: 400 });
  }
}

/** A cron expression as Cloudflare takes it: five fields, checked by parsing it. */
export function checkCron(expr: string): string {
  const fields = expr.trim().split(/\s+/);
  if (fields.length !== 5) throw new CronError(`cron ${JSON.stringify(expr)} must have five fields: minute hour day-of-month month day-of-week`);
  try {
    new Cron(fields.join(' '), { timezone: 'UTC', paused: true }).stop();
  } catch (e) {
    throw new CronError(`cron ${JSON.stringify(expr)} is not valid: ${(e as Error).message}`);
  }
  return fields.join(' ');
}

export class CronScheduler {
  readonly #store: CodeStore;
  readonly #runner: (cordon: string) => RpcStub<WorkerRunner> | undefined;
  readonly #log: Logger;
  /** Per worker: the version its jobs were made for, and the jobs. */
  readonly #jobs = new Map<string, { version: string; jobs: Cron[] }>();

  constructor(store: CodeStore, runner: (cordon: string) => RpcStub<WorkerRunner> | undefined, log: Logger) {
    this.#store = store;
    this.#runner = runner;
    this.#log = log;
  }

  /** After a deploy, rollback or delete (and at start): jobs for what is current now. */
  refresh(): void {
    const current = new Map(this.#store.workers().map((w) => [w.id, w]));
    for (const [id, entry] of this.#jobs) {
      if (current.get(id)?.version === entry.version) continue;
      for (const j of entry.jobs) j.stop();
      this.#jobs.delete(id);
    }
    for (const w of current.values()) {
      if (this.#jobs.has(w.id)) continue;
      let crons: string[];
      try {
        crons = this.#store.bundleForKey(w.codeKey)?.bundle.crons ?? [];
      } catch (e) {
        // A bundle that fails its integrity check is refused wherever it is asked for; it schedules nothing.
        this.#log.error('cannot read the cron triggers of a worker', { worker: w.id, error: (e as Error).message });
        crons = [];
      }
      const jobs = crons.map(
        (cron) =>
          new Cron(
            cron,
            { timezone: 'UTC', protect: true, unref: true, catch: true },
            (job: Cron) => void this.#fire(w.id, cron, job.currentRun()?.getTime() ?? Date.now()),
          ),
      );
      this.#jobs.set(w.id, { version: w.version, jobs });
    }
  }

  /** Run scheduled() of a worker now (cron ticks, and `cordon trigger`). */
  async run(workerId: string, cron: string, scheduledTime = Date.now()): Promise<{ ok: true } | { ok: false; error: string }> {
    const w = this.#store.worker(workerId);
    if (!w) return { ok: false, error: `no worker ${workerId}` };
    const runner = this.#runner(w.cordon);
    if (!runner) return { ok: false, error: `no sandbox of cordon ${w.cordon} is connected` };
    return (await runner.scheduled(w.codeKey, cron, scheduledTime)) as { ok: true } | { ok: false; error: string };
  }

  async #fire(workerId: string, cron: string, scheduledTime: number): Promise<void> {
    const r = await this.run(workerId, cron, scheduledTime).catch((e: Error) => ({ ok: false as const, error: e.message }));
    if (!r.ok) this.#log.warn('a cron trigger failed', { worker: workerId, cron, error: r.error });
  }

  /** The crons currently scheduled, by worker (for tests and operators). */
  scheduled(): Record<string, string[]> {
    return Object.fromEntries([...this.#jobs].filter(([, e]) => e.jobs.length).map(([id, e]) => [id, e.jobs.map((j) => j.getPattern() ?? '')]));
  }

  stop(): void {
    for (const e of this.#jobs.values()) for (const j of e.jobs) j.stop();
    this.#jobs.clear();
  }
}
