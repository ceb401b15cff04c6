/**
 * What workers create here (Dynamic Workers they load), counted per code key and sent to the
 * supervisor in batches — at most one call per worker and kind a second, however fast a worker loads.
 * Counts that cannot be sent (the supervisor away) are dropped, with a debug line.
 */
import type { Logger } from '../../lib/log.ts';
import type { CreationKind } from '../../schemas/services.ts';
import { supervisorCalls } from './call-gate.ts';
import type { SupervisorLink } from './port.ts';

const FLUSH_MS = 1000;
/** Code keys with counts pending at most; beyond it the oldest is sent at once. */
const MAX_PENDING = 1000;

export class CreationReports {
  readonly #pending = new Map<string, number>();
  readonly #supervisor: SupervisorLink;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(supervisor: SupervisorLink, log: Logger) {
    this.#supervisor = supervisor;
    this.#log = log;
  }

  add(codeKey: string, kind: CreationKind): void {
    const key = `${kind} ${codeKey}`;
    this.#pending.set(key, (this.#pending.get(key) ?? 0) + 1);
    if (this.#pending.size > MAX_PENDING) this.#send(this.#pending.keys().next().value!);
    this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const key of [...this.#pending.keys()]) this.#send(key);
  }

  #send(key: string): void {
    const count = this.#pending.get(key)!;
    this.#pending.delete(key);
    const [kind, codeKey] = key.split(' ') as [CreationKind, string];
    void this.#supervisor
      .ready(1000)
      .then((s) => supervisorCalls.run(() => s.remote.created(codeKey, kind, count)))
      .catch((e: Error) => this.#log.debug('dropped creation counts', { error: e.message }));
  }
}
