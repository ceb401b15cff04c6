/**
 * Durable Object alarms: each object's alarm time is in `objects.db` (registry.ts), so it outlives every
 * process. The scheduler looks for due alarms four times a second (an indexed query) and when one is
 * set, runs `alarm({ retryCount, isRetry })` on the object through its lease like any call, and, as on
 * Cloudflare, retries a failed run with exponential back-off from 2 s, up to 6 retries, then drops it.
 * An alarm the handler set again while it ran is kept; otherwise a successful run clears it.
 */
import type { Logger } from '../../../lib/log.ts';
import type { ObjectRegistry } from './registry.ts';

export const ALARM_RETRIES = 6;
const FIRST_BACKOFF_MS = 2000;
const TICK_MS = 250;
/** Alarms run at once at most (each is one call on one object). */
const MAX_RUNNING = 32;

export interface AlarmTarget {
  workerId: string;
  className: string;
  id: string;
  name: string | null;
}

export type RunAlarm = (target: AlarmTarget, info: { retryCount: number; isRetry: boolean }) => Promise<void>;

export class AlarmScheduler {
  readonly #registry: ObjectRegistry;
  readonly #run: RunAlarm;
  readonly #log: Logger;
  readonly #running = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #stopped = false;

  /** `run` resolves when alarm() returned, rejects when it threw or could not be delivered. */
  constructor(registry: ObjectRegistry, run: RunAlarm, log: Logger) {
    this.#registry = registry;
    this.#run = run;
    this.#log = log;
    this.#timer = setInterval(() => this.tick(), TICK_MS).unref();
  }

  /** Run what is due now (also called when an alarm is set, so a near one is not a tick late). */
  tick(): void {
    if (this.#stopped || this.#running.size >= MAX_RUNNING) return;
    for (const row of this.#registry.due(Date.now(), MAX_RUNNING * 2)) {
      const key = `${row.workerId}:${row.className}:${row.id}`;
      if (this.#running.has(key) || this.#running.size >= MAX_RUNNING) continue;
      this.#running.add(key);
      const fired = row.alarm!;
      this.#run(row, { retryCount: row.retries, isRetry: row.retries > 0 })
        .then(
          () => {
            // Set again by the handler (another time): keep it; else this alarm is done.
            if (this.#registry.getAlarm(row.workerId, row.className, row.id) === fired) this.#registry.setAlarm(row.workerId, row.className, row.id, null);
          },
          (e: Error) => {
            if (this.#registry.getAlarm(row.workerId, row.className, row.id) !== fired) return; // replaced meanwhile
            if (row.retries >= ALARM_RETRIES) {
              this.#log.warn('durable object alarm dropped after its retries', { object: key, error: e.message });
              this.#registry.setAlarm(row.workerId, row.className, row.id, null);
              return;
            }
            this.#registry.retryAlarm(row.workerId, row.className, row.id, Date.now() + FIRST_BACKOFF_MS * 2 ** row.retries, row.retries + 1);
          },
        )
        .catch((e: Error) => this.#log.warn('durable object alarm bookkeeping failed', { object: key, error: e.message }))
        .finally(() => this.#running.delete(key));
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}
