/**
 * A worker's queue producer binding (`queues.producers`): `send`/`sendBatch` into a queue of its
 * tenant. A message is stored durably (queue-store.ts) before the call answers, and the consumer
 * dispatcher (queue-consumers.ts) is told there is work.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { CordonError } from '../../lib/errors.ts';
import { bytes, check } from '../../lib/rpc/validate.ts';
import { QUEUE_CONTENT_TYPES, QUEUE_LIMITS, type QueueApi } from '../../schemas/queues.ts';
import { type Audit, PooledDbCap } from './guarded.ts';
import type { PooledDatabase } from './sql-pool.ts';
import type { StoredSend } from './queue-store.ts';

/** A send the tenant got wrong (too large, too many, a bad delay): not a refusal to audit. */
export class QueueError extends CordonError {
  constructor(message: string, status = 400) {
    super(`Queue send failed: ${message}`, { status });
    this.name = 'QueueError';
  }
}

const Message = z
  .object({
    body: bytes(QUEUE_LIMITS.batchBytes * 4),
    contentType: z.enum(QUEUE_CONTENT_TYPES),
    delaySeconds: z.number().optional(),
  })
  .strict();
const Messages = z.array(Message).max(QUEUE_LIMITS.batchMessages * 10);

/** A message id as Queues gives one: 32 hex digits. */
export const messageId = () => randomBytes(16).toString('hex');

export function checkDelay(delay: number): number {
  if (!Number.isInteger(delay) || delay < 0 || delay > QUEUE_LIMITS.maxDelaySeconds)
    throw new QueueError(`delaySeconds must be a whole number of seconds from 0 to ${QUEUE_LIMITS.maxDelaySeconds}; got ${delay}`);
  return delay;
}

export class QueueCap extends PooledDbCap implements QueueApi {
  readonly #deliveryDelay: number;
  readonly #sent: () => void;
  constructor(db: PooledDatabase, audit: Audit, maxMs: number, deliveryDelay: number, sent: () => void, workerId: string) {
    super(db, audit, maxMs, workerId);
    this.#deliveryDelay = deliveryDelay;
    this.#sent = sent;
  }

  send(messages: unknown): Promise<void> {
    return this.run('queue.send', async (call) => {
      const ms = check(Messages, messages, 'messages');
      if (ms.length === 0) throw new QueueError('sendBatch() needs at least one message');
      if (ms.length > QUEUE_LIMITS.batchMessages)
        throw new QueueError(`batch message count of ${ms.length} exceeds limit of ${QUEUE_LIMITS.batchMessages}`, 413);
      let total = 0;
      for (const m of ms) {
        if (m.body.byteLength > QUEUE_LIMITS.messageBytes)
          throw new QueueError(`message length of ${m.body.byteLength} bytes exceeds limit of ${QUEUE_LIMITS.messageBytes}`, 413);
        total += m.body.byteLength;
      }
      if (total > QUEUE_LIMITS.batchBytes) throw new QueueError(`batch size of ${total} bytes exceeds limit of ${QUEUE_LIMITS.batchBytes}`, 413);
      const now = Date.now();
      const rows: StoredSend[] = ms.map((m) => [messageId(), now, m.contentType, m.body, now + checkDelay(m.delaySeconds ?? this.#deliveryDelay) * 1000]);
      await call('send', [rows]);
      this.#sent();
    });
  }
}
