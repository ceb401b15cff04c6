/**
 * The last hour of each worker's traffic, in memory, from ingress's reports (a batch every few
 * seconds, lib/request-stats.ts): per minute, requests, 5xx and latency bucket counts. Bounded: a
 * reporter can name only workers that exist, at most MAX_WORKERS_PER_REPORT per report, each count
 * is capped, and at most MAX_TRACKED workers are kept (the one reported least recently goes first),
 * each in a fixed-size ring of MINUTES minutes. Only ingress's port can report (ports.ts).
 */
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import { LATENCY_BUCKETS, MAX_WORKERS_PER_REPORT, p99 } from '../../lib/request-stats.ts';

const MINUTES = 60;
const MINUTE_MS = 60_000;
/** Workers tracked at once: about 6 KB each. */
export const MAX_TRACKED = 2000;
/** One report's count for one worker: far above what one ingress serves in a few seconds. */
const MAX_COUNT = 10_000_000;
/** Per minute slot: requests, errors, then the latency buckets. */
const SLOT = 2 + LATENCY_BUCKETS;

const Count = z.number().int().min(0).max(MAX_COUNT);
const Report = z
  .array(
    z
      .object({
        workerId: z.string().max(130),
        requests: Count,
        errors: Count,
        latency: z.array(Count).length(LATENCY_BUCKETS),
      })
      .strict()
      .refine((s) => s.errors <= s.requests, 'errors cannot exceed requests'),
  )
  .max(MAX_WORKERS_PER_REPORT);

interface Series {
  /** The minute (epoch ms) each slot holds, or 0. */
  minutes: Float64Array;
  counts: Uint32Array;
}

export interface MinuteStats {
  /** Start of the minute, epoch ms. */
  minute: number;
  requests: number;
  errors: number;
  /** 99th percentile latency in ms (a bucket bound), null without requests; Infinity shows as null in JSON. */
  p99Ms: number | null;
}

export class RequestMetrics {
  /** In order of last report: the first is the one evicted. */
  readonly #series = new Map<string, Series>();
  readonly #exists: (workerId: string) => boolean;
  readonly #now: () => number;

  constructor(exists: (workerId: string) => boolean, now: () => number = Date.now) {
    this.#exists = exists;
    this.#now = now;
  }

  get tracked(): number {
    return this.#series.size;
  }

  /** One ingress report; throws (a refusal) when it is malformed. Workers that do not exist are skipped. */
  add(report: unknown): void {
    const batch = check(Report, report, 'request stats');
    const minute = Math.floor(this.#now() / MINUTE_MS) * MINUTE_MS;
    const slot = (minute / MINUTE_MS) % MINUTES;
    for (const s of batch) {
      if (s.requests === 0 || !this.#exists(s.workerId)) continue;
      let series = this.#series.get(s.workerId);
      if (series) this.#series.delete(s.workerId);
      else {
        if (this.#series.size >= MAX_TRACKED) this.#series.delete(this.#series.keys().next().value!);
        series = { minutes: new Float64Array(MINUTES), counts: new Uint32Array(MINUTES * SLOT) };
      }
      this.#series.set(s.workerId, series);
      const base = slot * SLOT;
      if (series.minutes[slot] !== minute) {
        series.minutes[slot] = minute;
        series.counts.fill(0, base, base + SLOT);
      }
      // Uint32 saturates rather than wraps: a minute of more than 4e9 requests is not a real one.
      const add = (i: number, n: number) => (series.counts[base + i] = Math.min(0xffffffff, series.counts[base + i]! + n));
      add(0, s.requests);
      add(1, s.errors);
      for (let b = 0; b < LATENCY_BUCKETS; b++) add(2 + b, s.latency[b]!);
    }
  }

  /** The last hour of a worker, minute by minute, oldest first (minutes without traffic are zeros). */
  lastHour(workerId: string): MinuteStats[] {
    const series = this.#series.get(workerId);
    const now = Math.floor(this.#now() / MINUTE_MS) * MINUTE_MS;
    const out: MinuteStats[] = [];
    for (let m = now - (MINUTES - 1) * MINUTE_MS; m <= now; m += MINUTE_MS) {
      const slot = (m / MINUTE_MS) % MINUTES;
      if (!series || series.minutes[slot] !== m) {
        out.push({ minute: m, requests: 0, errors: 0, p99Ms: null });
        continue;
      }
      const base = slot * SLOT;
      const p = p99(series.counts.subarray(base + 2, base + SLOT));
      out.push({ minute: m, requests: series.counts[base]!, errors: series.counts[base + 1]!, p99Ms: p === Number.POSITIVE_INFINITY ? null : p });
    }
    return out;
  }

  forget(workerId: string): void {
    this.#series.delete(workerId);
  }
}
