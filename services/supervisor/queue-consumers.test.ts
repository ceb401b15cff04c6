/**
 * The consumer dispatcher alone, with a stand-in store and sandbox: what a batch's outcome does to
 * each message (explicit calls over batch-wide ones, acks kept when the handler throws, the
 * dead-letter queue after the last retry), an answer naming messages not in the batch, and a
 * sandbox that never answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcStub } from 'capnweb';
import { createLogger } from '../../lib/log.ts';
import type { QueueMessageWire, QueueOutcome } from '../../schemas/queues.ts';
import type { WorkerRunner } from '../../schemas/services.ts';
import type { WorkerBundle } from '../../schemas/worker.ts';
import { QueueConsumers } from './queue-consumers.ts';
import type { StoredSend } from './queue-store.ts';
import { SqlPool } from './sql-pool.ts';
import type { CodeStore } from './store.ts';
import { TenantResources } from './tenant-resources.ts';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

async function waitUntil(what: string, fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function setup(handle: (messages: QueueMessageWire[], queue: string) => Promise<QueueOutcome>, wallMs = 30_000) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-consumers-'));
  const pool = new SqlPool({ processes: 2 });
  const resources = new TenantResources(dir, pool, { quotaBytes: 1e8, perTenant: 10 });
  const bundle = {
    limits: { cpuMs: 1000, wallMs, memoryMb: 128 },
    queueConsumers: [
      { queue: 'jobs', maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 1, deadLetterQueue: 'dlq', retryDelay: 0 },
      { queue: 'dlq', maxBatchSize: 10, maxBatchTimeout: 0, maxRetries: 0, retryDelay: 0 },
    ],
  } as unknown as WorkerBundle;
  const worker = { id: 'acme/w', tenant: 'acme', name: 'w', cordon: 'default', version: 'v1', codeKey: 'key', routes: [] };
  const store = { workers: () => [worker], worker: () => worker, bundleForKey: () => ({ bundle, cordon: 'default' }) } as unknown as CodeStore;
  const seen: { queue: string; bodies: string[]; attempts: number[] }[] = [];
  const runner = {
    queue: async (_key: string, queue: string, messages: QueueMessageWire[]) => {
      seen.push({ queue, bodies: messages.map((m) => text(m.body)), attempts: messages.map((m) => m.attempts) });
      return handle(messages, queue);
    },
  } as unknown as RpcStub<WorkerRunner>;
  // Every call the dispatcher makes on a queue's file, by method.
  const calls: string[] = [];
  const counted = {
    open: (kind: 'queue', tenant: string, name: string) => {
      const db = resources.open(kind, tenant, name);
      return {
        call: (method: string, args: unknown[], deadline: number) => {
          calls.push(method);
          return db.call(method, args, deadline);
        },
      };
    },
  } as unknown as TenantResources;
  const consumers = new QueueConsumers(
    store,
    counted,
    () => runner,
    createLogger('test', {}, () => {}),
  );
  const send = async (queue: string, bodies: string[], delayMs = 0) => {
    const now = Date.now();
    const rows: StoredSend[] = bodies.map((b, i) => [`${queue}-${b}`, now, 'text', new TextEncoder().encode(b), now - 10 + i + delayMs]);
    await resources.open('queue', 'acme', queue).call('send', [rows], Date.now() + 10_000);
  };
  const count = async (queue: string) => (await resources.open('queue', 'acme', queue).call('count', [], Date.now() + 10_000)) as number;
  return {
    consumers,
    calls,
    seen,
    send,
    count,
    async close() {
      consumers.stop();
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const none: QueueOutcome = { acks: [], retries: [], batch: null, batchDelay: null };

test('a handler that throws has what it acked kept and the rest retried; after max_retries + 1 they go to the dead-letter queue', async () => {
  const t = setup(async (messages, queue) => {
    if (queue === 'dlq') return none;
    const ok = messages.filter((m) => text(m.body) === 'good').map((m) => m.id);
    return { ...none, acks: ok, error: 'boom' };
  });
  try {
    await t.send('jobs', ['good', 'bad']);
    t.consumers.start();
    await waitUntil('the dead letter delivered', async () => t.seen.some((s) => s.queue === 'dlq'));
    const jobs = t.seen.filter((s) => s.queue === 'jobs');
    assert.deepEqual(jobs[0], { queue: 'jobs', bodies: ['good', 'bad'], attempts: [1, 1] });
    assert.deepEqual(jobs[1], { queue: 'jobs', bodies: ['bad'], attempts: [2] }, 'the acked message is not delivered again');
    assert.equal(jobs.length, 2, 'max_retries 1: two deliveries in all');
    assert.deepEqual(
      t.seen.find((s) => s.queue === 'dlq'),
      { queue: 'dlq', bodies: ['bad'], attempts: [1] },
    );
    await waitUntil('both queues empty', async () => (await t.count('jobs')) === 0 && (await t.count('dlq')) === 0);
  } finally {
    await t.close();
  }
});

test("explicit calls win over retryAll; an answer naming messages not in the batch changes nothing of another's", async () => {
  let first = true;
  const t = setup(async (messages) => {
    if (!first) return none;
    first = false;
    return { acks: [messages[0]!.id, 'jobs-not-in-batch'], retries: [['someone-else', 0]], batch: 'retry', batchDelay: 0 };
  });
  try {
    await t.send('jobs', ['a', 'b']);
    t.consumers.start();
    await waitUntil('b delivered again', async () => t.seen.length >= 2);
    assert.deepEqual(t.seen[1], { queue: 'jobs', bodies: ['b'], attempts: [2] }, 'a was acked explicitly; b was retried by retryAll');
    await waitUntil('the queue empty', async () => (await t.count('jobs')) === 0);
  } finally {
    await t.close();
  }
});

test('a sandbox that never answers holds the queue only until its lease: the batch counts as failed', async () => {
  let calls = 0;
  const t = setup(async () => {
    calls++;
    if (calls === 1) return new Promise<QueueOutcome>(() => {});
    return none;
  }, 100);
  try {
    await t.send('jobs', ['stuck']);
    t.consumers.start();
    await waitUntil('a second delivery', async () => t.seen.length >= 2);
    assert.deepEqual(t.seen[1]!.attempts, [2]);
    await waitUntil('the queue empty', async () => (await t.count('jobs')) === 0);
  } finally {
    await t.close();
  }
});

test('an idle queue costs no SQL call; a delayed message wakes its queue when it comes due; a send wakes it at once', async () => {
  const t = setup(async () => none);
  try {
    t.consumers.start();
    await t.send('jobs', ['first']);
    t.consumers.notify('acme', 'jobs');
    await waitUntil('the first delivery', async () => t.seen.length === 1);
    await waitUntil('the queue idle', async () => (await t.count('jobs')) === 0);
    await new Promise((r) => setTimeout(r, 300));
    const idle = t.calls.length;
    await new Promise((r) => setTimeout(r, 1500)); // three ticks
    assert.equal(t.calls.length, idle, `no call on an idle queue (made: ${t.calls.slice(idle).join(', ')})`);
    // A send wakes its queue (the producer capability does so); a message it cannot take yet sets when it looks next.
    await t.send('jobs', ['later'], 1000);
    t.consumers.notify('acme', 'jobs');
    await waitUntil('the delayed delivery', async () => t.seen.length === 2);
    assert.deepEqual(t.seen[1]!.bodies, ['later']);
  } finally {
    await t.close();
  }
});
