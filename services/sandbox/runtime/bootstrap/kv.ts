/**
 * A `kv_namespaces` binding as Workers has it (KVNamespace): get (text, json, arrayBuffer, stream;
 * bulk with an array of keys), getWithMetadata, put (string, ArrayBuffer, view or stream), delete,
 * list. Limits and expirations are checked by the supervisor, with workerd's messages. A value larger
 * than one part (4 MiB) crosses to the supervisor and back a part per call (putPart, getPart): a
 * message between sandbox and supervisor never carries more, and a `stream` read holds one part at a time.
 */
import { KV_LIMITS, type KvDownload } from '../../../../schemas/kv.ts';
import { TextDecoder, TextEncoder } from './encoding.ts';
import { streams } from './streams.ts';
import { viewOf } from './wire-codec.ts';
import type { CallAsync } from './workflow-step.ts';

const JSONparse = JSON.parse;
const JSONstringify = JSON.stringify;
const isArray = Array.isArray;
const StringCtor = String;
const NumberCtor = Number;
const MapCtor = Map;
const U8 = Uint8Array;
const freeze = Object.freeze;
const MAX_VALUE = KV_LIMITS.valueBytes;
const PART = KV_LIMITS.partBytes;

// Cloudflare's words (a stream's length is known to be at least what was read when it goes past).
const tooLarge = (n: number, atLeast = '') => `KV PUT failed: 413 Value length of ${atLeast}${n} exceeds limit of ${MAX_VALUE}.`;

type Entry = [Uint8Array | KvDownload | null, string | null, number | null];
type ValueType = 'text' | 'json' | 'arrayBuffer' | 'stream';

function typeOf(options: unknown, bulk: boolean): { type: ValueType; cacheTtl?: number } {
  const o = typeof options === 'string' ? { type: options } : ((options ?? {}) as { type?: unknown; cacheTtl?: unknown });
  const type = (o.type ?? 'text') as ValueType;
  if (bulk && type !== 'text' && type !== 'json') throw new TypeError(`"${StringCtor(type)}" is not a valid type. Use "json" or "text"`);
  if (type !== 'text' && type !== 'json' && type !== 'arrayBuffer' && type !== 'stream')
    throw new TypeError('Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".');
  return { type, ...(o.cacheTtl === undefined ? {} : { cacheTtl: NumberCtor(o.cacheTtl) }) };
}

/** Reads a download part by part; each part is handed to `take` (in order) and dropped. */
async function download(call: CallAsync, handle: string, d: KvDownload, take: (part: Uint8Array) => void): Promise<void> {
  let at = 0;
  while (at < d.size) {
    const part = (await call(handle, 'getPart', [d.part, at])) as Uint8Array;
    if (!part.byteLength || at + part.byteLength > d.size) throw new Error('KV GET failed: the value changed size as it was read');
    take(part);
    at += part.byteLength;
  }
}

/** A value read as a download: a stream of its parts as they come, or its bytes whole (one buffer of its size). */
async function downloaded(call: CallAsync, handle: string, d: KvDownload, type: ValueType): Promise<unknown> {
  if (type === 'stream') {
    let at = 0;
    return new (streams().ReadableStream)({
      type: 'bytes',
      async pull(c: ReadableByteStreamController) {
        const part = (await call(handle, 'getPart', [d.part, at])) as Uint8Array;
        if (!part.byteLength || at + part.byteLength > d.size) throw new Error('KV GET failed: the value changed size as it was read');
        at += part.byteLength;
        c.enqueue(new U8(part));
        if (at === d.size) c.close();
      },
    });
  }
  const bytes = new U8(d.size);
  let at = 0;
  await download(call, handle, d, (part) => {
    bytes.set(part, at);
    at += part.byteLength;
  });
  return decode(bytes, type);
}

function decode(bytes: Uint8Array, type: ValueType): unknown {
  if (type === 'arrayBuffer') return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  if (type === 'stream')
    return new (streams().ReadableStream)({
      type: 'bytes',
      start(c: ReadableByteStreamController) {
        if (bytes.byteLength) c.enqueue(new U8(bytes));
        c.close();
      },
    });
  const text = new TextDecoder().decode(bytes);
  return type === 'json' ? JSONparse(text) : text;
}

/** A value to put, as bytes: strings as UTF-8, buffers and views copied, a stream read to its end (bounded). */
async function bytesOf(value: unknown): Promise<Uint8Array> {
  if (typeof value === 'string') return new TextEncoder().encode(value);
  const view = viewOf(value);
  if (view) return new U8(view);
  if (value && typeof (value as { getReader?: unknown }).getReader === 'function') {
    const reader = (value as ReadableStream<unknown>).getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      const b = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : ArrayBuffer.isView(chunk) ? viewOf(chunk)! : null;
      if (!b) throw new TypeError('KV put() streams must carry bytes');
      total += b.byteLength;
      if (total > MAX_VALUE) {
        void reader.cancel();
        throw new RangeError(tooLarge(total, 'at least '));
      }
      chunks.push(new U8(b));
    }
    const out = new U8(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
  throw new TypeError('KV put() accepts a string, an ArrayBuffer, an ArrayBufferView or a ReadableStream');
}

export function kvBinding(call: CallAsync, handle: string): object {
  async function read(key: unknown, options: unknown, withMetadata: boolean): Promise<unknown> {
    const bulk = isArray(key);
    const { type, cacheTtl } = typeOf(options, bulk);
    const keys = bulk ? (key as unknown[]).map(StringCtor) : [StringCtor(key)];
    const entries = (await call(handle, 'get', cacheTtl === undefined ? [keys] : [keys, cacheTtl])) as Entry[];
    const shape = async ([v, meta]: Entry) => {
      const value = v === null ? null : v instanceof U8 ? decode(v, type) : await downloaded(call, handle, v as KvDownload, type);
      return withMetadata ? { value, metadata: meta === null ? null : JSONparse(meta), cacheStatus: null } : value;
    };
    const values: unknown[] = [];
    for (const e of entries) values.push(await shape(e));
    if (bulk) return new MapCtor(keys.map((k, i) => [k, values[i]]));
    return values[0];
  }
  return freeze({
    get: (key: unknown, options?: unknown) => read(key, options, false),
    getWithMetadata: (key: unknown, options?: unknown) => read(key, options, true),
    async put(key: unknown, value: unknown, options: { expiration?: unknown; expirationTtl?: unknown; metadata?: unknown } = {}): Promise<void> {
      const o: Record<string, unknown> = {};
      if (options?.expiration !== undefined) o.expiration = NumberCtor(options.expiration);
      if (options?.expirationTtl !== undefined) o.expirationTtl = NumberCtor(options.expirationTtl);
      if (options?.metadata !== undefined && options.metadata !== null) o.metadata = JSONstringify(options.metadata);
      const bytes = await bytesOf(value);
      // Checked here too (the supervisor checks again): a value too large is refused before it is encoded for the host.
      if (bytes.byteLength > MAX_VALUE) throw new RangeError(tooLarge(bytes.byteLength));
      const k = StringCtor(key);
      if (bytes.byteLength <= PART) return void (await call(handle, 'put', [k, bytes, o]));
      let upload: string | null = null;
      for (let at = 0; at < bytes.byteLength; at += PART)
        upload = (await call(handle, 'putPart', [upload, bytes.byteLength, bytes.subarray(at, at + PART)])) as string;
      await call(handle, 'put', [k, upload, o]);
    },
    async delete(key: unknown): Promise<void> {
      await call(handle, 'delete', [StringCtor(key)]);
    },
    async list(options: { prefix?: unknown; limit?: unknown; cursor?: unknown } = {}): Promise<unknown> {
      const o: Record<string, unknown> = {};
      if (options?.prefix !== undefined && options.prefix !== null) o.prefix = StringCtor(options.prefix);
      if (options?.limit !== undefined) o.limit = NumberCtor(options.limit);
      if (options?.cursor !== undefined && options.cursor !== null) o.cursor = StringCtor(options.cursor);
      const page = (await call(handle, 'list', [o])) as { keys: [string, number | null, string | null][]; cursor: string | null };
      const keys = page.keys.map(([name, expiration, metadata]) => ({
        name,
        ...(expiration === null ? {} : { expiration }),
        ...(metadata === null ? {} : { metadata: JSONparse(metadata) }),
      }));
      return page.cursor === null ? { keys, list_complete: true, cacheStatus: null } : { keys, list_complete: false, cursor: page.cursor, cacheStatus: null };
    },
  });
}
