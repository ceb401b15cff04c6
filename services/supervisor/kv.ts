/**
 * A worker's KV namespace binding (`kv_namespaces`), over its tenant's namespace file (kv-store.ts).
 * Keys, values, metadata and expirations are checked here against Cloudflare's limits, with the
 * messages workerd gives (`KV PUT failed: 413 …`); the time an expiration is measured from is the
 * supervisor's, never the sandbox's.
 */
import { z } from 'zod';
import { CordonError } from '../../lib/errors.ts';
import { bytes, check } from '../../lib/rpc/validate.ts';
import { KV_LIMITS, type KvApi, type KvEntry, type KvListedKey } from '../../schemas/kv.ts';
import { PooledDbCap, type Audit, type PooledCall } from './guarded.ts';
import type { PooledDatabase } from './sql-pool.ts';
import { kvTransit } from './kv-transit.ts';

/** A KV call the tenant got wrong (a limit, a bad option): its message is workerd's; not a refusal to audit. */
export class KvError extends CordonError {
  constructor(op: string, status: number, message: string) {
    super(`KV ${op} failed: ${status} ${message}`, { status });
    this.name = 'KvError';
  }
}

const Key = z.string().max(4 * KV_LIMITS.keyBytes);
const Keys = z.array(Key).max(KV_LIMITS.bulkKeys * 10);
const OptionalNumber = z.number().optional();
const PutOptions = z
  .object({
    expiration: OptionalNumber,
    expirationTtl: OptionalNumber,
    metadata: z
      .string()
      .max(64 * 1024)
      .optional(),
  })
  .strict();
const Size = z.number().int().min(0);
const Part = bytes(KV_LIMITS.partBytes);
const Transfer = z.string().max(64);
const ListOptions = z.object({ prefix: Key.optional(), limit: OptionalNumber, cursor: z.string().max(4096).optional() }).strict();

function checkKey(op: string, key: string): void {
  // workerd's own words for these two (it refuses them before asking KV, so without the `KV … failed` prefix).
  if (key === '') throw new CordonError('Key name cannot be empty.', { status: 400 });
  if (key === '.' || key === '..') throw new CordonError(`"${key}" is not allowed as a key name.`, { status: 400 });
  const n = Buffer.byteLength(key);
  if (n > KV_LIMITS.keyBytes) throw new KvError(op, 414, `UTF-8 encoded length of ${n} exceeds key length limit of ${KV_LIMITS.keyBytes}.`);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A cursor is opaque to the tenant, as KV's are: the last key of the page, base64url. */
const encodeCursor = (key: string) => Buffer.from(key).toString('base64url');
const decodeCursor = (cursor: string) => Buffer.from(cursor, 'base64url').toString();

const tooLarge = (n: number) => new KvError('PUT', 413, `Value length of ${n} exceeds limit of ${KV_LIMITS.valueBytes}.`);

export class KvCap extends PooledDbCap implements KvApi {
  /** Whose transfers are this binding's (kv-transit.ts): not the instance, which callers may reach wrapped. */
  readonly #owner = {};
  readonly #tenant: string;

  constructor(db: PooledDatabase, audit: Audit, maxMs: number, workerId: string) {
    super(db, audit, maxMs, workerId);
    this.#tenant = workerId.slice(0, workerId.indexOf('/'));
  }

  get(keys: unknown, cacheTtl?: unknown): Promise<KvEntry[]> {
    return this.run('kv.get', async (call) => {
      const ks = check(Keys, keys, 'keys');
      const ttl = check(OptionalNumber, cacheTtl ?? undefined, 'cacheTtl');
      if (ks.length < 1) throw new KvError('GET', 400, 'You must request a minimum of 1 key');
      if (ks.length > KV_LIMITS.bulkKeys) throw new KvError('GET', 400, `You can request a maximum of ${KV_LIMITS.bulkKeys} keys`);
      for (const k of ks) checkKey('GET', k);
      if (ttl !== undefined && !(ttl >= KV_LIMITS.minCacheTtl))
        throw new KvError('GET', 400, `Invalid cache_ttl of ${ttl}. Cache TTL must be at least ${KV_LIMITS.minCacheTtl}.`);
      const entries = (await call('get', [ks, nowSeconds(), KV_LIMITS.bulkBytes])) as KvEntry[];
      // Values go back inline up to a part in all; each past that (a large one, or a bulk get's later ones) as a
      // download, read part by part (getPart): no answer carries more than a part of values.
      const opened: string[] = [];
      let inline = 0;
      try {
        return entries.map(([v, meta, exp]): KvEntry => {
          if (!(v instanceof Uint8Array)) return [v, meta, exp];
          if (inline + v.byteLength <= KV_LIMITS.partBytes) {
            inline += v.byteLength;
            return [v, meta, exp];
          }
          const part = kvTransit.open(this.#owner, this.#tenant, 'GET', v.byteLength, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
          opened.push(part);
          return [{ part, size: v.byteLength }, meta, exp];
        });
      } catch (e) {
        for (const name of opened) kvTransit.close(name);
        throw e;
      }
    });
  }

  putPart(upload: unknown, size: unknown, part: unknown): Promise<string> {
    return this.run('kv.putPart', () => {
      const p = check(Part, part, 'part');
      const u = check(Transfer.nullable(), upload, 'upload');
      if (u !== null) {
        kvTransit.append(this.#owner, u, p);
        return u;
      }
      const n = check(Size, size, 'size');
      if (n > KV_LIMITS.valueBytes) throw tooLarge(n);
      const name = kvTransit.open(this.#owner, this.#tenant, 'PUT', n);
      kvTransit.append(this.#owner, name, p);
      return name;
    });
  }

  getPart(download: unknown, offset: unknown): Promise<Uint8Array> {
    return this.run('kv.getPart', () => kvTransit.read(this.#owner, check(Transfer, download, 'download'), check(Size, offset, 'offset')));
  }

  put(key: unknown, value: unknown, options: unknown): Promise<void> {
    return this.run('kv.put', async (call) => {
      // A value of more than a part comes as an upload's name (putPart); its bytes stay counted until written.
      if (typeof value !== 'string') return this.#put(call, key, check(Part, value, 'value'), options);
      const upload = check(Transfer, value, 'value');
      try {
        await this.#put(call, key, kvTransit.complete(this.#owner, upload), options);
      } finally {
        kvTransit.close(upload);
      }
    });
  }

  async #put(call: PooledCall, key: unknown, v: Uint8Array, options: unknown): Promise<void> {
    {
      const k = check(Key, key, 'key');
      checkKey('PUT', k);
      if (v.byteLength > KV_LIMITS.valueBytes) throw tooLarge(v.byteLength);
      const o = check(PutOptions, options ?? {}, 'put options');
      const now = nowSeconds();
      let expiration: number | null = null;
      if (o.expirationTtl !== undefined) {
        const ttl = Math.trunc(o.expirationTtl);
        if (!(ttl > 0)) throw new KvError('PUT', 400, `Invalid expiration_ttl of ${o.expirationTtl}. Please specify integer greater than 0.`);
        if (ttl < KV_LIMITS.minExpirationTtl)
          throw new KvError('PUT', 400, `Invalid expiration_ttl of ${o.expirationTtl}. Expiration TTL must be at least ${KV_LIMITS.minExpirationTtl}.`);
        expiration = now + ttl;
      } else if (o.expiration !== undefined) {
        const at = Math.trunc(o.expiration);
        if (!(at > now))
          throw new KvError(
            'PUT',
            400,
            `Invalid expiration of ${o.expiration}. Please specify integer greater than the current number of seconds since the UNIX epoch.`,
          );
        if (at < now + KV_LIMITS.minExpirationTtl)
          throw new KvError(
            'PUT',
            400,
            `Invalid expiration of ${o.expiration}. Expiration times must be at least ${KV_LIMITS.minExpirationTtl} seconds in the future.`,
          );
        expiration = at;
      }
      let metadata: string | null = null;
      if (o.metadata !== undefined) {
        const n = Buffer.byteLength(o.metadata);
        if (n > KV_LIMITS.metadataBytes) throw new KvError('PUT', 413, `Metadata length of ${n} exceeds limit of ${KV_LIMITS.metadataBytes}.`);
        try {
          JSON.parse(o.metadata);
        } catch {
          throw new KvError('PUT', 400, 'metadata must be JSON');
        }
        metadata = o.metadata;
      }
      await call('put', [k, v, expiration, metadata, now]);
    }
  }

  delete(key: unknown): Promise<void> {
    return this.run('kv.delete', async (call) => {
      const k = check(Key, key, 'key');
      checkKey('DELETE', k);
      await call('delete', [k]);
    });
  }

  list(options: unknown): Promise<{ keys: KvListedKey[]; cursor: string | null }> {
    return this.run('kv.list', async (call) => {
      const o = check(ListOptions, options ?? {}, 'list options');
      // workerd sends no limit for 0, so KV's default applies; a list is a GET to KV, and its errors say so.
      const limit = o.limit === undefined || o.limit === 0 ? KV_LIMITS.listKeys : Math.trunc(o.limit);
      if (!(limit >= 1)) throw new KvError('GET', 400, `Invalid key_count_limit of ${o.limit}. Please specify an integer greater than 0.`);
      if (limit > KV_LIMITS.listKeys)
        throw new KvError('GET', 400, `Invalid key_count_limit of ${o.limit}. Please specify an integer less than ${KV_LIMITS.listKeys}.`);
      const prefix = o.prefix ?? '';
      const n = Buffer.byteLength(prefix);
      if (n > KV_LIMITS.keyBytes) throw new KvError('GET', 414, `UTF-8 encoded length of ${n} exceeds key length limit of ${KV_LIMITS.keyBytes}.`);
      const cursor = o.cursor ? decodeCursor(o.cursor) : null;
      const page = (await call('list', [prefix, limit, cursor, nowSeconds()])) as { keys: KvListedKey[]; cursor: string | null };
      return { keys: page.keys, cursor: page.cursor === null ? null : encodeCursor(page.cursor) };
    });
  }
}
