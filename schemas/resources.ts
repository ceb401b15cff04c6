/**
 * A tenant's own resources that workers bind by name: KV namespaces, D1 databases and queues. The
 * name as declared, and the fields a binding of type `kv`, `d1` or `queue` carries (schemas/worker.ts).
 */
import { z } from 'zod';

/** A queue, D1 database or KV namespace name as declared: letters, digits, `-` and `_`, as Cloudflare's ids and names are. */
export const ResourceName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'names and ids are 1-64 letters, digits, - and _');

/** The longest delay of a queue message (s). */
export const MAX_DELAY_SECONDS = 86_400;

/** The fields of a Binding of type `kv`, `d1` or `queue` (present only on those). */
export const ResourceBindingFields = {
  /** The tenant's KV namespace id, D1 database id (or name) or queue name the binding opens. */
  resource: ResourceName.optional(),
  /** A queue producer's default delay (s), wrangler's `delivery_delay`. */
  deliveryDelay: z.number().int().min(0).max(MAX_DELAY_SECONDS).optional(),
};

export const RESOURCE_BINDING_TYPES = ['kv', 'd1', 'queue'] as const;
