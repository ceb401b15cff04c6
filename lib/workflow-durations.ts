/**
 * Durations as Cloudflare Workflows spells them ("10 seconds", "1 hour", or milliseconds) and the
 * retry delay after a failed attempt. Numbers are milliseconds (docs/workflows.md, "Durations").
 */
const UNITS: Record<string, number> = {
  millisecond: 1,
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
  week: 604_800_000,
  month: 2_592_000_000,
  year: 31_536_000_000,
};
const SPELLED = /^\s*(\d+(?:\.\d+)?)\s*(millisecond|second|minute|hour|day|week|month|year)s?\s*$/i;

export const MAX_SLEEP_MS = 365 * 86_400_000;

/** Milliseconds, or an Error saying what is wrong with the spelling. */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new TypeError(`${what} must be a non-negative number of milliseconds`);
    return value;
  }
  const m = typeof value === 'string' ? SPELLED.exec(value) : null;
  if (!m) throw new TypeError(`${what} must be milliseconds or "<n> <unit>" (second, minute, hour, day, week, month, year), got ${JSON.stringify(value)}`);
  return Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
}

/** The wait before attempt `attempt + 1` (attempts count from 1). */
export function retryDelay(retries: { delay: number; backoff: 'constant' | 'linear' | 'exponential' }, attempt: number): number {
  if (retries.backoff === 'constant') return retries.delay;
  if (retries.backoff === 'linear') return retries.delay * attempt;
  return Math.min(retries.delay * 2 ** (attempt - 1), MAX_SLEEP_MS);
}
