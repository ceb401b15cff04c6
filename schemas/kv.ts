/**
 * Workers KV, as the supervisor serves it to a worker's `kv_namespaces` binding: the contract between
 * the sandbox and the supervisor (kv.ts there), and Cloudflare's limits. A namespace belongs to the
 * tenant of the worker that binds it; its `id` names it within that tenant only.
 */

/** A value as read: its bytes, its metadata as JSON text, its expiration (seconds since the epoch); nulls when absent. */
export type KvEntry = [Uint8Array | null, string | null, number | null];
/** A key as listed: name, expiration (s), metadata JSON. */
export type KvListedKey = [string, number | null, string | null];

export interface KvPutOptions {
  expiration?: number;
  expirationTtl?: number;
  /** JSON text. */
  metadata?: string;
}

export interface KvListOptions {
  prefix?: string;
  limit?: number;
  cursor?: string;
}

export interface KvApi {
  /** One entry per key (a bulk get has up to 100). `cacheTtl` is checked as KV checks it, and has no other effect here. */
  get(keys: string[], cacheTtl?: number): Promise<KvEntry[]>;
  put(key: string, value: Uint8Array, options: KvPutOptions): Promise<void>;
  delete(key: string): Promise<void>;
  list(options: KvListOptions): Promise<{ keys: KvListedKey[]; cursor: string | null }>;
}
export const KV_METHODS = ['get', 'put', 'delete', 'list'] as const satisfies readonly (keyof KvApi)[];

/** Cloudflare's KV limits, with the one Cordon sets lower (a value crosses the mesh in one message). */
export const KV_LIMITS = {
  keyBytes: 512,
  /** Cloudflare's value limit. */
  cloudflareValueBytes: 25 * 1024 * 1024,
  /** Cordon's: what one capability call carries (see docs/kv-d1-queues.md). */
  valueBytes: 8 * 1024 * 1024,
  metadataBytes: 1024,
  minExpirationTtl: 60,
  minCacheTtl: 30,
  listKeys: 1000,
  bulkKeys: 100,
  /** A bulk get's values together (Cloudflare: 25 MiB; here bounded like one value, for the same reason). */
  bulkBytes: 8 * 1024 * 1024,
};
