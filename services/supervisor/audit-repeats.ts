/**
 * Repeated refusals, aggregated. Of the refusals of one kind (same actor, action and target) in a
 * window, the first few are written one by one; the rest are counted, and one summary entry with the
 * count and the reasons is written when the window ends. A flood of refused calls (a compromised
 * sandbox probing code keys, a client without a token) then costs a few fsync'd entries per window
 * instead of one each, and no refusal goes uncounted.
 *
 * The counts of a window still open live in memory until it ends (or the log is closed): a supervisor
 * killed outright loses at most one window's counts, never an entry written one by one.
 */
import type { AuditInput } from './audit.ts';

export interface RepeatLimits {
  windowMs: number;
  /** Refusals of one kind written one by one per window. */
  individually: number;
  /** Kinds tracked at once; refusals of further kinds share one kind per actor and action. */
  maxKinds: number;
  /** Distinct reasons counted by name in a summary; the rest count under "other". */
  maxReasons: number;
}

export const REPEAT_LIMITS: RepeatLimits = { windowMs: 5_000, individually: 10, maxKinds: 1_000, maxReasons: 20 };

interface Kind {
  actor: string;
  action: string;
  target: string | undefined;
  since: number;
  written: number;
  counted: number;
  reasons: Map<string, number>;
  timer?: NodeJS.Timeout;
}

function reasonOf(input: AuditInput): string {
  const reason = input.detail?.reason;
  return (typeof reason === 'string' ? reason : JSON.stringify(input.detail ?? null)).slice(0, 300);
}

export class RefusalRepeats {
  readonly #write: (input: AuditInput) => void;
  readonly #limits: RepeatLimits;
  readonly #now: () => number;
  readonly #kinds = new Map<string, Kind>();

  constructor(write: (input: AuditInput) => void, limits: RepeatLimits = REPEAT_LIMITS, now: () => number = Date.now) {
    this.#write = write;
    this.#limits = limits;
    this.#now = now;
  }

  /** True when this refusal is to be written now; false when it was counted into its window's summary. */
  admit(input: AuditInput): boolean {
    const now = this.#now();
    let key = JSON.stringify([input.actor, input.action, input.target ?? null]);
    let kind = this.#kinds.get(key);
    if (kind && now - kind.since >= this.#limits.windowMs) {
      this.#end(key);
      kind = undefined;
    }
    if (!kind) {
      if (this.#kinds.size >= this.#limits.maxKinds) this.#sweep(now);
      let target = input.target;
      if (this.#kinds.size >= this.#limits.maxKinds) {
        // Too many kinds (targets an attacker chooses, say): this actor's refusals of this action share one.
        key = JSON.stringify([input.actor, input.action, '*']);
        target = '*';
      }
      kind = this.#kinds.get(key);
      if (!kind) this.#kinds.set(key, (kind = { actor: input.actor, action: input.action, target, since: now, written: 0, counted: 0, reasons: new Map() }));
    }
    if (kind.written < this.#limits.individually && kind.target === input.target) {
      kind.written++;
      return true;
    }
    kind.counted++;
    const reason = kind.target === input.target ? reasonOf(input) : `${input.target}: ${reasonOf(input)}`;
    const name = kind.reasons.has(reason) || kind.reasons.size < this.#limits.maxReasons ? reason : 'other';
    kind.reasons.set(name, (kind.reasons.get(name) ?? 0) + 1);
    kind.timer ??= setTimeout(() => this.#end(key), Math.max(0, kind.since + this.#limits.windowMs - now)).unref();
    return false;
  }

  /** Write every open window's summary now (the log is closing). */
  flush(): void {
    for (const key of [...this.#kinds.keys()]) this.#end(key);
  }

  #end(key: string): void {
    const kind = this.#kinds.get(key);
    if (!kind) return;
    this.#kinds.delete(key);
    clearTimeout(kind.timer);
    if (!kind.counted) return;
    this.#write({
      actor: kind.actor,
      action: kind.action,
      target: kind.target,
      outcome: 'denied',
      detail: {
        summary: `${kind.counted} more refusals like this were counted, not written one by one`,
        count: kind.counted,
        since: new Date(kind.since).toISOString(),
        until: new Date(Math.min(this.#now(), kind.since + this.#limits.windowMs)).toISOString(),
        reasons: Object.fromEntries(kind.reasons),
      },
    });
  }

  /** Forget windows that ended with nothing counted (those that counted something end on their timer). */
  #sweep(now: number): void {
    for (const [key, kind] of this.#kinds) if (!kind.counted && now - kind.since >= this.#limits.windowMs) this.#kinds.delete(key);
  }
}
