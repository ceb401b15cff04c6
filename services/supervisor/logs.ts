/** Per-worker log streams (tenant console output): a bounded ring per worker plus live followers. */
import type { LogEntry } from '../../schemas/services.ts';

const KEEP = 1000;

export class WorkerLogs {
  readonly #rings = new Map<string, LogEntry[]>();
  readonly #followers = new Map<string, Set<(e: LogEntry) => void>>();

  append(workerId: string, entries: LogEntry[]): void {
    let ring = this.#rings.get(workerId);
    if (!ring) this.#rings.set(workerId, (ring = []));
    ring.push(...entries);
    if (ring.length > KEEP) ring.splice(0, ring.length - KEEP);
    for (const f of this.#followers.get(workerId) ?? []) for (const e of entries) f(e);
  }

  recent(workerId: string, limit = 100): LogEntry[] {
    return (this.#rings.get(workerId) ?? []).slice(-limit);
  }

  follow(workerId: string, fn: (e: LogEntry) => void): () => void {
    let set = this.#followers.get(workerId);
    if (!set) this.#followers.set(workerId, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }
}
