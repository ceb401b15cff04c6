/**
 * Runs consumers: for each queue a worker of its tenant consumes (`queues.consumers`), the supervisor
 * takes batches from the queue's file and has a sandbox of the consumer's cordon run its
 * `queue(batch, env, ctx)`, then applies what the handler decided.
 *
 * - A batch is due when `max_batch_size` messages are ready or the oldest ready one has waited
 *   `max_batch_timeout` seconds. A queue is looked at when a send wakes it, and otherwise only when
 *   it said it would have work (a delayed or retried message coming due, a batch timeout): an idle
 *   queue costs no SQL call (a tick twice a second finds whose time has come).
 * - A message is claimed under a lease while its batch runs; if the supervisor dies meanwhile the
 *   lease is ended at the next start (nothing else could answer for it), and if the sandbox dies the
 *   batch counts as failed: either way it is delivered again (at-least-once).
 * - A retried message is visible again after its delay; one whose deliveries reach `max_retries` + 1
 *   goes to `dead_letter_queue` (same id, timestamp and body) when there is one, else is dropped (logged).
 * - One consumer per queue: when several workers of a tenant declare one, the first by worker id
 *   consumes (Cloudflare refuses the second at deploy); the others are logged.
 */
import type { RpcStub } from 'capnweb';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, traceAttributes } from '../../lib/telemetry.ts';
import { check } from '../../lib/rpc/validate.ts';
import type { Logger } from '../../lib/log.ts';
import { QueueOutcome, type QueueConsumerDecl, type QueueMessageWire } from '../../schemas/queues.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import type { Backlog, ClaimedMessage, StoredSend } from './queue-store.ts';
import type { CodeStore } from './store.ts';
import type { TenantResources } from './tenant-resources.ts';

const TICK_MS = 500;
/** Time a claimed batch may take past the consumer's wall limit before it counts as lost. */
const LEASE_GRACE_MS = 10_000;
/** Batches one queue runs back to back before letting the others have a turn. */
const BURST = 10;
/**
 * Bodies in one batch at most: a batch crosses to the consumer's sandbox as one message of the mesh
 * (16 MiB, with bytes as base64), on a session the sandbox's other workers share.
 */
const BATCH_BYTES = 6 * 1024 * 1024;
/** What a call into a queue's file may take. */
const STORE_MS = 30_000;

interface Consumer {
  workerId: string;
  tenant: string;
  decl: QueueConsumerDecl;
  wallMs: number;
}

export class QueueConsumers {
  readonly #store: CodeStore;
  readonly #resources: TenantResources;
  readonly #runner: (cordon: string) => RpcStub<WorkerRunner> | undefined;
  readonly #log: Logger;
  /** Per worker: the version its declarations were read from, and them. */
  readonly #declared = new Map<string, { version: string; consumers: Consumer[] }>();
  /** Per `tenant/queue`: its consumer. */
  #consumers = new Map<string, Consumer>();
  readonly #busy = new Set<string>();
  readonly #again = new Set<string>();
  /** Queues whose leases this process has ended once (see above). */
  readonly #released = new Set<string>();
  /** Per queue: when to look at it again (absent: at the next tick). */
  readonly #wakeAt = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(store: CodeStore, resources: TenantResources, runner: (cordon: string) => RpcStub<WorkerRunner> | undefined, log: Logger) {
    this.#store = store;
    this.#resources = resources;
    this.#runner = runner;
    this.#log = log;
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
    this.#tick();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** A producer sent to `tenant/queue`: look now rather than at the next tick. */
  notify(tenant: string, queue: string): void {
    const key = `${tenant}/${queue}`;
    this.#wakeAt.delete(key);
    if (this.#consumers.has(key)) void this.#pump(key);
  }

  /** The consumers as now declared, by queue (for tests and operators). */
  consumers(): Record<string, string> {
    return Object.fromEntries([...this.#consumers].map(([q, c]) => [q, c.workerId]));
  }

  #tick(): void {
    try {
      this.#refresh();
    } catch (e) {
      this.#log.error('cannot read the queue consumers', { error: (e as Error).message });
    }
    const now = Date.now();
    for (const key of this.#consumers.keys()) if ((this.#wakeAt.get(key) ?? 0) <= now) void this.#pump(key);
  }

  /** Read the declarations of what is deployed now (a bundle is opened only when its version changed). */
  #refresh(): void {
    const current = new Map(this.#store.workers().map((w) => [w.id, w]));
    for (const id of this.#declared.keys()) if (current.get(id)?.version !== this.#declared.get(id)!.version) this.#declared.delete(id);
    for (const w of current.values()) {
      if (this.#declared.has(w.id)) continue;
      let consumers: Consumer[] = [];
      try {
        const b = this.#store.bundleForKey(w.codeKey)?.bundle;
        consumers = (b?.queueConsumers ?? []).map((decl) => ({ workerId: w.id, tenant: w.tenant, decl, wallMs: b!.limits.wallMs }));
      } catch (e) {
        this.#log.error('cannot read the queue consumers of a worker', { worker: w.id, error: (e as Error).message });
      }
      this.#declared.set(w.id, { version: w.version, consumers });
    }
    const next = new Map<string, Consumer>();
    for (const id of [...this.#declared.keys()].sort()) {
      for (const c of this.#declared.get(id)!.consumers) {
        const key = `${c.tenant}/${c.decl.queue}`;
        const first = next.get(key);
        if (!first) next.set(key, c);
        else if (!this.#consumers.has(key) || this.#consumers.get(key)!.workerId !== c.workerId)
          this.#log.warn('a queue has two consumers; the first by worker id consumes it', { queue: key, consumer: first.workerId, ignored: c.workerId });
      }
    }
    this.#consumers = next;
  }

  async #pump(key: string): Promise<void> {
    if (this.#busy.has(key)) {
      this.#again.add(key);
      return;
    }
    this.#busy.add(key);
    try {
      for (let i = 0; i < BURST; i++) {
        this.#again.delete(key);
        const ran = await this.#batch(key);
        if (!ran && !this.#again.has(key)) break;
      }
    } catch (e) {
      this.#log.warn('a queue batch failed', { queue: key, error: (e as Error).message });
    } finally {
      this.#busy.delete(key);
    }
  }

  /** Run one batch of `key` if one is due; whether one ran. */
  async #batch(key: string): Promise<boolean> {
    const c = this.#consumers.get(key);
    if (!c) return false;
    const db = this.#resources.open('queue', c.tenant, c.decl.queue);
    const call = (method: string, args: unknown[]) => db.call(method, args, Date.now() + STORE_MS);
    if (!this.#released.has(key)) {
      await call('release', []);
      this.#released.add(key);
    }
    const now = Date.now();
    const backlog = (await call('backlog', [now])) as Backlog;
    if (backlog.ready === 0) {
      this.#wakeAt.set(key, backlog.next ?? Number.POSITIVE_INFINITY);
      return false;
    }
    const dueAt = (backlog.oldest ?? now) + c.decl.maxBatchTimeout * 1000;
    if (backlog.ready < c.decl.maxBatchSize && now < dueAt) {
      this.#wakeAt.set(key, backlog.next === null ? dueAt : Math.min(dueAt, backlog.next));
      return false;
    }
    this.#wakeAt.delete(key);
    const worker = this.#store.worker(c.workerId);
    const runner = worker && this.#runner(worker.cordon);
    if (!worker || !runner) {
      this.#wakeAt.set(key, now + 1000); // nothing claimed: the messages wait for a sandbox
      return false;
    }
    const claimed = (await call('claim', [now, c.decl.maxBatchSize, now + c.wallMs + LEASE_GRACE_MS, BATCH_BYTES])) as ClaimedMessage[];
    if (claimed.length === 0) return false;
    const messages: QueueMessageWire[] = claimed.map((m) => ({ ...m, body: m.body }));
    let outcome: QueueOutcome;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A sandbox that never answers (hung, or compromised) holds this queue no longer than its lease: the batch failed.
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from the consumer within ${c.wallMs + LEASE_GRACE_MS / 2} ms`)), c.wallMs + LEASE_GRACE_MS / 2);
      });
      // A span per batch, the consumer's sandbox's part under it; it names the worker and the count, never a body.
      const answer = inSpan('queue batch', SpanKind.CLIENT, { ...traceAttributes({ workerId: c.workerId }), 'cordon.queue.messages': messages.length }, () =>
        Promise.race([runner.queue(worker.codeKey, c.decl.queue, messages), late]),
      );
      outcome = check(QueueOutcome, await answer, 'queue outcome') as QueueOutcome;
    } catch (e) {
      outcome = { error: (e as Error).message, acks: [], retries: [], batch: null, batchDelay: null };
    } finally {
      clearTimeout(timer);
    }
    if (outcome.error) this.#log.warn('a queue consumer failed; its batch is retried', { queue: key, worker: c.workerId, error: outcome.error.slice(0, 500) });
    await this.#settle(c, call, claimed, outcome);
    return true;
  }

  async #settle(c: Consumer, call: (method: string, args: unknown[]) => Promise<unknown>, claimed: ClaimedMessage[], o: QueueOutcome): Promise<void> {
    const acked = new Set(o.acks);
    const retried = new Map(o.retries);
    const done: string[] = [];
    const retry: [string, number][] = [];
    const dead: ClaimedMessage[] = [];
    const now = Date.now();
    for (const m of claimed) {
      let again: boolean;
      let delay: number | null = null;
      if (acked.has(m.id)) again = false;
      else if (retried.has(m.id)) {
        again = true;
        delay = retried.get(m.id)!;
      } else if (o.error !== undefined || o.batch === 'retry') {
        again = true;
        delay = o.error !== undefined ? null : o.batchDelay;
      } else again = false;
      if (!again) done.push(m.id);
      else if (m.attempts > c.decl.maxRetries) dead.push(m);
      else retry.push([m.id, now + (delay ?? c.decl.retryDelay) * 1000]);
    }
    if (dead.length) {
      const dlq = c.decl.deadLetterQueue;
      if (dlq) {
        const rows: StoredSend[] = dead.map((m) => [m.id, m.timestamp, m.contentType, m.body, now]);
        // Into the dead-letter queue before out of this one: a crash between the two leaves a copy in each, never none.
        await this.#resources.open('queue', c.tenant, dlq).call('send', [rows], Date.now() + STORE_MS);
        this.notify(c.tenant, dlq);
      }
      this.#log.warn(dlq ? 'queue messages moved to the dead-letter queue' : 'queue messages dropped after their last retry', {
        queue: `${c.tenant}/${c.decl.queue}`,
        ...(dlq ? { deadLetterQueue: dlq } : {}),
        messages: dead.map((m) => m.id),
        attempts: c.decl.maxRetries + 1,
      });
      for (const m of dead) done.push(m.id);
    }
    await call('settle', [done, retry]);
  }
}
