/**
 * Request rate, error rate and latency per worker, as ingress counts them and the supervisor keeps
 * them (services/supervisor/request-metrics.ts). Latencies go into fixed buckets, so a report is a
 * few numbers per worker whatever the traffic, and a p99 is read off the bucket counts (as the
 * bucket's upper bound: at most one bucket step above the true value).
 */
import type { RequestStats } from '../schemas/services.ts';

/** Upper bounds of the latency buckets, in milliseconds; the last bucket holds everything slower. */
export const LATENCY_BOUNDS_MS = [1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200, 300, 500, 800, 1200, 2000, 3000, 5000, 8000, 12_000, 20_000, 30_000, 60_000];
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1;
/** Workers one report names at most: ingress keeps no more per interval, the supervisor takes no more. */
export const MAX_WORKERS_PER_REPORT = 1000;

export function latencyBucket(ms: number): number {
  let i = 0;
  while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
  return i;
}

/** The 99th percentile of the counts, as its bucket's upper bound (ms); null with no requests. */
export function p99(counts: ArrayLike<number>): number | null {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return null;
  const rank = Math.ceil(total * 0.99);
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i]!;
    if (seen >= rank) return LATENCY_BOUNDS_MS[i] ?? Number.POSITIVE_INFINITY;
  }
  return Number.POSITIVE_INFINITY;
}

/** Ingress's counts since its last report: one entry per worker, at most MAX_WORKERS_PER_REPORT. */
export class RequestTally {
  #byWorker = new Map<string, RequestStats>();

  /** A request routed to `workerId` answered with `status` after `ms`. A 5xx is an error (ingress's own 502s too). */
  record(workerId: string, status: number, ms: number): void {
    let s = this.#byWorker.get(workerId);
    if (!s) {
      if (this.#byWorker.size >= MAX_WORKERS_PER_REPORT) return;
      this.#byWorker.set(workerId, (s = { workerId, requests: 0, errors: 0, latency: new Array<number>(LATENCY_BUCKETS).fill(0) }));
    }
    s.requests++;
    if (status >= 500) s.errors++;
    s.latency[latencyBucket(ms)]!++;
  }

  /** The counts so far, and a fresh start. */
  drain(): RequestStats[] {
    const out = [...this.#byWorker.values()];
    this.#byWorker = new Map();
    return out;
  }
}
