/**
 * The KV, D1 and Queues sections of a wrangler config, read as wrangler reads them
 * (`kv_namespaces[] { binding, id }`, `d1_databases[] { binding, database_name, database_id }`,
 * `queues.producers[] { binding, queue, delivery_delay }`, `queues.consumers[] { queue,
 * max_batch_size, max_batch_timeout, max_retries, dead_letter_queue, retry_delay }`) and turned into
 * Cordon's bindings and consumer declarations. Each names a resource of the deploying tenant.
 * Fields only Cloudflare's platform or wrangler's dev server use (preview ids) are accepted and ignored;
 * those with an effect Cordon does not give leave a note (`max_concurrency`, `migrations_dir`); a pull
 * consumer (`type: "http_pull"`) is refused, since it would otherwise be run as a push consumer.
 */
import { z } from 'zod';
import type { QueueConsumerDecl } from '../schemas/queues.ts';

export const KvNamespaces = z.array(z.object({ binding: z.string(), id: z.string().optional(), preview_id: z.string().optional() }).passthrough()).default([]);
export const D1Databases = z
  .array(
    z
      .object({ binding: z.string(), database_name: z.string().optional(), database_id: z.string().optional(), migrations_dir: z.string().optional() })
      .passthrough(),
  )
  .default([]);
export const Queues = z
  .object({
    producers: z.array(z.object({ binding: z.string(), queue: z.string(), delivery_delay: z.number().optional() }).passthrough()).default([]),
    consumers: z
      .array(
        z
          .object({
            queue: z.string(),
            max_batch_size: z.number().optional(),
            max_batch_timeout: z.number().optional(),
            max_retries: z.number().optional(),
            dead_letter_queue: z.string().optional(),
            retry_delay: z.number().optional(),
            type: z.string().optional(),
            max_concurrency: z.number().optional(),
          })
          .passthrough(),
      )
      .default([]),
  })
  .default({ producers: [], consumers: [] });

export interface ResourceBinding {
  type: 'kv' | 'd1' | 'queue';
  name: string;
  resource: string;
  deliveryDelay?: number;
}

/** A declared resource needs a name to be found by: what is missing, said against the section. */
function named(section: string, binding: string, value: string | undefined, field: string): string {
  if (!value) throw new Error(`${section}: binding ${binding} needs ${field}`);
  return value;
}

export function resourceBindings(
  kv: z.infer<typeof KvNamespaces>,
  d1: z.infer<typeof D1Databases>,
  queues: z.infer<typeof Queues>,
): { bindings: ResourceBinding[]; queueConsumers: Partial<QueueConsumerDecl>[]; notes: string[] } {
  const notes: string[] = [];
  for (const c of queues.consumers) {
    if (c.type !== undefined && c.type !== 'worker')
      throw new Error(`queues.consumers: queue ${c.queue} has type ${JSON.stringify(c.type)}; Cordon runs push consumers (a worker's queue() handler) only`);
    if (c.max_concurrency !== undefined) notes.push(`queues.consumers: max_concurrency of ${c.queue} ignored: a queue runs one batch at a time`);
  }
  for (const d of d1) {
    if (d.migrations_dir !== undefined)
      notes.push(`d1_databases: migrations in ${d.migrations_dir} are not applied by deploy; apply them with cordon d1 execute <tenant>/<database> --command`);
  }
  const bindings: ResourceBinding[] = [
    ...kv.map((k) => ({ type: 'kv' as const, name: k.binding, resource: named('kv_namespaces', k.binding, k.id, 'an id') })),
    // wrangler's local mode keys a database by its id, falling back to its name.
    ...d1.map((d) => ({
      type: 'd1' as const,
      name: d.binding,
      resource: named('d1_databases', d.binding, d.database_id ?? d.database_name, 'a database_id or database_name'),
    })),
    ...queues.producers.map((p) => ({
      type: 'queue' as const,
      name: p.binding,
      resource: p.queue,
      ...(p.delivery_delay === undefined ? {} : { deliveryDelay: p.delivery_delay }),
    })),
  ];
  const queueConsumers = queues.consumers.map((c) => ({
    queue: c.queue,
    ...(c.max_batch_size === undefined ? {} : { maxBatchSize: c.max_batch_size }),
    ...(c.max_batch_timeout === undefined ? {} : { maxBatchTimeout: c.max_batch_timeout }),
    ...(c.max_retries === undefined ? {} : { maxRetries: c.max_retries }),
    ...(c.dead_letter_queue === undefined ? {} : { deadLetterQueue: c.dead_letter_queue }),
    ...(c.retry_delay === undefined ? {} : { retryDelay: c.retry_delay }),
  }));
  return { bindings, queueConsumers, notes };
}
