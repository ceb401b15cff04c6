/**
 * Workers KV, as the supervisor serves it to a worker's `kv_namespaces` binding: the contract between
 * the sandbox and the supervisor (kv.ts there), and Cloudflare's limits. A namespace belongs to the
 * tenant of the worker that binds it; its `id` names it within that tenant only.
 */

/**
 * A value as read: its bytes, its metadata as JSON text, its expiration (seconds since the epoch); nulls
 * when absent. A value larger than one part (`KV_LIMITS.partBytes`) comes as a download to read with
 * `getPart`, a part per call, so that no message carries more than a part.
 */
export type KvEntry = [Uint8Array | KvDownload | null, string | null, number | null];
export interface KvDownload {
  /** The transfer to name in `getPart`. */
  part: string;
  size: number;
}
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
  /** `value` is the bytes, or an upload (`putPart`) holding all of them. */
  put(key: string, value: Uint8Array | string, options: KvPutOptions): Promise<void>;
  /**
   * A part of a value larger than one part, to be put with `put(key, upload)`: the first part starts the
   * upload (`upload` null, `size` the whole value's) and returns its name; the others append, in order.
   */
  putPart(upload: string | null, size: number, part: Uint8Array): Promise<string>;
  /** The part of download `download` at `offset` (a whole part, or what is left); the last one ends it. */
  getPart(download: string, offset: number): Promise<Uint8Array>;
  delete(key: string): Promise<void>;
  list(options: KvListOptions): Promise<{ keys: KvListedKey[]; cursor: string | null }>;
}
export const KV_METHODS = ['get', 'put', 'delete', 'list', 'putPart', 'getPart'] as const satisfies readonly (keyof KvApi)[];

/** Cloudflare's KV limits, and how large values cross the mesh (in parts: a message is at most 16 MiB). */
export const KV_LIMITS = {
  keyBytes: 512,
  /** Cloudflare's value limit. */
  valueBytes: 25 * 1024 * 1024,
  /** What one capability call carries of a larger value (see docs/kv-d1-queues.md). */
  partBytes: 4 * 1024 * 1024,
  metadataBytes: 1024,
  minExpirationTtl: 60,
  minCacheTtl: 30,
  listKeys: 1000,
  bulkKeys: 100,
  /** A bulk get's values together (Cloudflare's). */
  bulkBytes: 25 * 1024 * 1024,
  /** Bytes of large values in transit (uploads and downloads in parts) at once, per tenant and in all. */
  tenantTransitBytes: 64 * 1024 * 1024,
  transitBytes: 256 * 1024 * 1024,
  /** An upload or download not continued for this long is dropped. */
  transitIdleMs: 60_000,
};
