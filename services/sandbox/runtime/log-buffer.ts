/**
 * A worker's log on its way to the supervisor: lines gathered and delivered in one batch per turn of
 * the event loop, bounded in count and in bytes per second; what goes over is counted, and the count
 * is logged in its place.
 */
import type { LogEntry } from '../../../schemas/services.ts';

const MAX_LOG_BUFFER = 1000;
/**
 * What one worker may log per second (UTF-8 bytes of its messages): its log shares the cordon's session
 * to the supervisor with every other worker's storage calls. Lines over it are counted, and the count
 * is logged in their place.
 */
export const LOG_BYTES_PER_SECOND = 1024 * 1024;
const MiB = 1024 * 1024;
const LEVELS: readonly string[] = ['debug', 'info', 'log', 'warn', 'error'];

export class LogBuffer {
  #logs: LogEntry[] = [];
  #dropped = 0;
  #windowStart = 0;
  #windowBytes = 0;
  #flushScheduled = false;
  /** Where the lines go: the hooks of the request that came last. */
  sink: ((entries: LogEntry[]) => void) | undefined;

  log(level: string, message: string): void {
    const text = String(message);
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#windowBytes = 0;
    }
    this.#windowBytes += Buffer.byteLength(text, 'utf8');
    if (this.#logs.length >= MAX_LOG_BUFFER || this.#windowBytes > LOG_BYTES_PER_SECOND) {
      this.#dropped++;
      this.#scheduleFlush();
      return;
    }
    const lvl = (LEVELS.includes(level) ? level : 'log') as LogEntry['level'];
    this.#logs.push({ level: lvl, message: text, time: now });
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.flush(true);
    });
  }

  /** Deliver what the worker logged so far; in the midst of a burst, its dropped lines are counted in one line when the second is over. */
  flush(midBurst = false): void {
    if (this.#dropped && !(midBurst && Date.now() - this.#windowStart < 1000)) {
      this.#logs.push({
        level: 'warn',
        message: `${this.#dropped} log lines dropped: a worker may log ${MAX_LOG_BUFFER} lines at once and ${LOG_BYTES_PER_SECOND / MiB} MiB per second`,
        time: Date.now(),
      });
      this.#dropped = 0;
    }
    const entries = this.#logs.splice(0);
    if (entries.length && this.sink) {
      try {
        this.sink(entries);
      } catch {
        // a failing log sink must not break the request
      }
    }
  }
}
