/**
 * When sleeping and waiting instances wake: a binary min-heap of (time, item) under one Node timer.
 * Entries are never removed early; a stale one (the instance moved on) is ignored when it fires, so
 * scheduling is O(log n) and 50,000 sleepers cost one small record each. Hand-written: a heap is a
 * few lines, and none of the npm ones is better kept than that.
 */
export class WakeTimers<T = string> {
  readonly #heap: { at: number; item: T }[] = [];
  readonly #fire: (item: T) => void;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;

  constructor(fire: (item: T) => void, now: () => number = Date.now) {
    this.#fire = fire;
    this.#now = now;
  }

  get size(): number {
    return this.#heap.length;
  }

  at(time: number, item: T): void {
    const h = this.#heap;
    h.push({ at: time, item });
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= h[i]!.at) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
    this.#arm();
  }

  #pop(): { at: number; item: T } | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }

  #arm(): void {
    const next = this.#heap[0]?.at ?? Infinity;
    if (next >= this.#armedFor && this.#timer) return;
    clearTimeout(this.#timer);
    this.#armedFor = next;
    if (next === Infinity) return;
    // Node timers take at most ~24.8 days; a longer sleep re-arms when that fires.
    this.#timer = setTimeout(() => this.#due(), Math.min(Math.max(0, next - this.#now()), 2 ** 31 - 1)).unref();
  }

  #due(): void {
    this.#timer = undefined;
    this.#armedFor = Infinity;
    const now = this.#now();
    while (this.#heap.length && this.#heap[0]!.at <= now) this.#fire(this.#pop()!.item);
    this.#arm();
  }

  /** Fire whatever is due by the clock now (a test's clock may jump ahead of Node's timers). */
  poke(): void {
    this.#due();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
