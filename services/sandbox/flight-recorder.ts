/**
 * Which workers this sandbox process is running right now, kept in a file that outlives the process:
 * some allocations make V8 abort the whole process instead of throwing (isolated-vm #186, #527), so a
 * tenant may be able to kill its sandbox. The next process of the cordon reads what its predecessor
 * left, and the supervisor attributes the crash. A clean stop empties the file.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export class FlightRecorder {
  readonly #fd: number;
  readonly #inFlight = new Map<string, number>();
  #written = 0;
  /** Workers that were running when the previous process of this cordon died. */
  readonly previous: string[];

  constructor(file: string) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    let left: string[] = [];
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8') || '[]') as unknown;
      if (Array.isArray(parsed)) left = parsed.filter((x): x is string => typeof x === 'string').slice(0, 1000);
    } catch {
      // absent or unreadable: nothing to attribute
    }
    this.previous = left;
    this.#fd = openSync(file, 'w', 0o600);
  }

  /** Mark a worker as running until the returned function is called. */
  enter(workerId: string): () => void {
    const n = this.#inFlight.get(workerId) ?? 0;
    this.#inFlight.set(workerId, n + 1);
    // The file names workers, not requests: only a change in the set is written (a write is a syscall on every request otherwise).
    if (n === 0) this.#flush();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.#inFlight.get(workerId) ?? 1) - 1;
      if (left > 0) return void this.#inFlight.set(workerId, left);
      this.#inFlight.delete(workerId);
      this.#flush();
    };
  }

  /** One write at offset 0, padded with spaces over what was there before (JSON allows them): no truncate. */
  #flush(): void {
    const json = Buffer.from(JSON.stringify([...this.#inFlight.keys()]));
    const data = json.length >= this.#written ? json : Buffer.concat([json, Buffer.alloc(this.#written - json.length, 0x20)]);
    writeSync(this.#fd, data, 0, data.length, 0);
    this.#written = data.length;
  }

  /** A clean stop: nothing was running when we went away. */
  close(): void {
    this.#inFlight.clear();
    this.#flush();
    closeSync(this.#fd);
  }
}
