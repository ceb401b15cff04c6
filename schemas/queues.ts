/**
 * Cloudflare Queues, as the supervisor serves them: a producer binding (`queues.producers`) sends
 * into a queue of the worker's tenant; a consumer (`queues.consumers`) has its `queue(batch, env, ctx)`
 * run by the supervisor with batches of that queue. A queue's name names it within its tenant only.
 */
import { z } from 'zod';
import { MAX_DELAY_SECONDS, ResourceName } from './resources.ts';

export const QUEUE_CONTENT_TYPES = ['text', 'json', 'bytes', 'v8'] as const;
export type QueueContentType = (typeof QUEUE_CONTENT_TYPES)[number];

/** Cloudflare's limits for Queues. */
export const QUEUE_LIMITS = {
  messageBytes: 128_000,
  batchMessages: 100,
  batchBytes: 256_000,
  maxDelaySeconds: MAX_DELAY_SECONDS,
  maxRetries: 100,
  maxBatchTimeoutSeconds: 60,
};

/** A consumer as declared (wrangler's `queues.consumers[]`, camel-cased), with Cloudflare's defaults. */
export const QueueConsumerDecl = z
  .object({
    queue: ResourceName,
    maxBatchSize: z.number().int().min(1).max(QUEUE_LIMITS.batchMessages).default(10),
    maxBatchTimeout: z.number().min(0).max(QUEUE_LIMITS.maxBatchTimeoutSeconds).default(5),
    maxRetries: z.number().int().min(0).max(QUEUE_LIMITS.maxRetries).default(3),
    deadLetterQueue: ResourceName.optional(),
    retryDelay: z.number().int().min(0).max(QUEUE_LIMITS.maxDelaySeconds).default(0),
  })
  .strict()
  .refine((c) => c.deadLetterQueue !== c.queue, 'a queue cannot be its own dead-letter queue');
export type QueueConsumerDecl = z.infer<typeof QueueConsumerDecl>;

/** One message to send. */
export interface QueueSend {
  body: Uint8Array;
  contentType: QueueContentType;
  delaySeconds?: number;
}

export interface QueueApi {
  /** Messages stored durably, all or none, before this answers. */
  send(messages: QueueSend[]): Promise<void>;
}
export const QUEUE_METHODS = ['send'] as const satisfies readonly (keyof QueueApi)[];

/** A message as a consumer's sandbox receives it. */
export interface QueueMessageWire {
  id: string;
  timestamp: number;
  attempts: number;
  contentType: QueueContentType;
  body: Uint8Array;
}

/**
 * What a consumer's queue() decided. Explicit calls on a message win over batch-wide ones; the first
 * call on a message (or on the batch) wins; a handler that threw retries everything not acked.
 */
export interface QueueOutcome {
  /** The handler's error, when it threw. */
  error?: string;
  acks: string[];
  /** Message ids with their retry delay (s), or null for the consumer's retry_delay. */
  retries: [string, number | null][];
  /** ackAll()/retryAll(), whichever came first. */
  batch: 'ack' | 'retry' | null;
  batchDelay: number | null;
}

export const QueueOutcome = z.object({
  error: z.string().max(10_000).optional(),
  acks: z.array(z.string().max(64)).max(QUEUE_LIMITS.batchMessages),
  retries: z.array(z.tuple([z.string().max(64), z.number().int().min(0).max(QUEUE_LIMITS.maxDelaySeconds).nullable()])).max(QUEUE_LIMITS.batchMessages),
  batch: z.enum(['ack', 'retry']).nullable(),
  batchDelay: z.number().int().min(0).max(QUEUE_LIMITS.maxDelaySeconds).nullable(),
});
