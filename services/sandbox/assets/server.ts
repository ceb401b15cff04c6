/**
 * A worker version's static assets as this sandbox serves them (docs/static-assets.md): the routing
 * rules (routing.ts) over the version's manifest, answered in the host — a plain asset hit never enters
 * the isolate, nor needs one — and env.ASSETS.fetch() for the worker. Bytes come a part at a time from
 * the supervisor through the version's `$assets` capability (which serves only hashes of this version's
 * manifest) and are kept in one cache per sandbox process, bounded in bytes, keyed by worker as well as
 * hash so one tenant's hits never tell another what it holds.
 */
import mime from 'mime-types';
import { ASSET_LIMITS, ASSETS_HANDLE, partCount, type AssetFile, type AssetManifest } from '../../../schemas/assets.ts';
import type { WireRequest, WireResponse } from '../../../schemas/http.ts';
import { answer, assetsFirst, workerFirst, type AssetAnswer } from './routing.ts';
import { AssetRules } from './rules.ts';

/** Decrypted parts kept per sandbox process (least recently used dropped first). */
const CACHE_BYTES = 64 * 1024 * 1024;
/** Wrangler's Cache-Control for assets: the browser keeps them, and revalidates with the ETag each time. */
const CACHE_CONTROL = 'public, max-age=0, must-revalidate';

class PartCache {
  readonly #parts = new Map<string, Uint8Array>();
  #bytes = 0;
  get(key: string): Uint8Array | undefined {
    const part = this.#parts.get(key);
    if (part) {
      this.#parts.delete(key);
      this.#parts.set(key, part);
    }
    return part;
  }
  set(key: string, part: Uint8Array): void {
    if (part.byteLength > CACHE_BYTES / 4 || this.#parts.has(key)) return;
    this.#parts.set(key, part);
    this.#bytes += part.byteLength;
    for (const [k, p] of this.#parts) {
      if (this.#bytes <= CACHE_BYTES) break;
      this.#parts.delete(k);
      this.#bytes -= p.byteLength;
    }
  }
}
const cache = new PartCache();

/** Reads one part of an asset of this version (the sandbox's call through the version's capabilities). */
export type PartReader = (handle: string, method: string, args: unknown[]) => Promise<unknown>;

/** What env.ASSETS.fetch() answers the isolate: the first part of the body, and how many there are. */
export interface BindingAnswer {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** The asset's hash when its body has more parts than the first (read with `part`). */
  hash: string | null;
  parts: number;
}

/**
 * An asset's Content-Type by its extension, as Cloudflare's asset worker gives it: `text/*` in UTF-8,
 * JavaScript as `text/javascript` (RFC 9239; the mime-db of mime-types still says application/), and
 * none for an extension nobody knows.
 */
export function contentType(path: string): string | undefined {
  const type = /\.m?js$/i.test(path) ? 'text/javascript' : mime.lookup(path);
  if (!type) return undefined;
  return type.startsWith('text/') && !type.includes('charset') ? `${type}; charset=utf-8` : type;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  304: 'Not Modified',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  404: 'Not Found',
  405: 'Method Not Allowed',
};

export class VersionAssets {
  readonly #workerId: string;
  readonly #routing: AssetManifest['routing'];
  readonly #files: Map<string, AssetFile>;
  readonly #hashes: Map<string, AssetFile>;
  readonly #runsFirst: (path: string) => boolean;
  readonly #rules: AssetRules;
  readonly #read: PartReader;

  constructor(workerId: string, manifest: AssetManifest, read: PartReader) {
    this.#workerId = workerId;
    this.#routing = manifest.routing;
    this.#files = new Map(manifest.files.map((f) => [f.path, f]));
    this.#hashes = new Map(manifest.files.map((f) => [f.hash, f]));
    this.#runsFirst = workerFirst(manifest.routing);
    this.#rules = new AssetRules(manifest.redirects, manifest.headers);
    this.#read = read;
  }

  readonly #lookup = (path: string) => this.#files.get(path)?.hash;

  /** Before the worker runs: the assets' answer to the request, or undefined when it is the worker's. */
  async beforeWorker(request: WireRequest): Promise<Omit<WireResponse, 'webSocket'> | undefined> {
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    if (!assetsFirst(request.method, url, headers, this.#routing, this.#lookup, this.#runsFirst, this.#rules)) return undefined;
    const r = await this.#respond(url, request.method, headers);
    if (r.hash === null || r.parts === 1) return { status: r.status, statusText: r.statusText, headers: r.headers, body: r.body };
    return { status: r.status, statusText: r.statusText, headers: r.headers, body: null, stream: this.#stream(r.hash, r.body!, r.parts) };
  }

  /** env.ASSETS.fetch(request) from the worker: the same rules, with the not-found handling always applied. */
  async bindingFetch(args: unknown[]): Promise<BindingAnswer> {
    const [method, url, headers] = args;
    if (typeof method !== 'string' || typeof url !== 'string' || !Array.isArray(headers)) throw new TypeError('ASSETS.fetch takes a request');
    const h = new Headers(headers as [string, string][]);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`ASSETS.fetch: invalid URL ${JSON.stringify(url.slice(0, 200))}`);
    }
    return this.#respond(parsed, method.toUpperCase(), h);
  }

  /** Part `index` of the asset `hash` (env.ASSETS' body past its first part); only this version's assets. */
  async part(args: unknown[]): Promise<Uint8Array> {
    const [hash, index] = args;
    const file = typeof hash === 'string' ? this.#hashes.get(hash) : undefined;
    if (!file || !Number.isInteger(index) || (index as number) < 0 || (index as number) >= partCount(file.size))
      throw new RangeError('no such part of an asset of this worker');
    return this.#part(file.hash, index as number);
  }

  async #part(hash: string, index: number): Promise<Uint8Array> {
    const key = `${this.#workerId}\0${hash}\0${index}`;
    const known = cache.get(key);
    if (known) return known;
    const part = await this.#read(ASSETS_HANDLE, 'part', [hash, index]);
    if (!(part instanceof Uint8Array) || part.byteLength > ASSET_LIMITS.partBytes) throw new Error('the supervisor sent a malformed asset part');
    cache.set(key, part);
    return part;
  }

  /** The assets' answer to `method url`, with the `_headers` rules applied. */
  async #respond(url: URL, method: string, headers: Headers): Promise<BindingAnswer> {
    const r = await this.#answer(answer(method, url, this.#routing, this.#lookup, this.#rules), method, headers);
    return { ...r, headers: this.#rules.applyHeaders(url, r.headers) };
  }

  async #answer(a: AssetAnswer, method: string, headers: Headers): Promise<BindingAnswer> {
    const plain = (status: number, extra: [string, string][] = []): BindingAnswer => ({
      status,
      statusText: STATUS_TEXT[status]!,
      headers: extra,
      body: null,
      hash: null,
      parts: 1,
    });
    if (a.kind === 'not-found') return plain(404);
    if (a.kind === 'method-not-allowed') return plain(405);
    if (a.kind === 'redirect') return plain(a.status, [['location', a.location]]);
    const file = this.#files.get(a.path)!;
    const type = contentType(a.path);
    const out: [string, string][] = [['etag', `"${file.hash}"`], ...(type ? [['content-type', type] as [string, string]] : [])];
    if (!headers.has('authorization') && !headers.has('range')) out.push(['cache-control', CACHE_CONTROL]);
    const ifNoneMatch = headers.get('if-none-match');
    if (ifNoneMatch === `"${file.hash}"` || ifNoneMatch === `W/"${file.hash}"`) return plain(304, out);
    const parts = partCount(file.size);
    if (method === 'HEAD') return plain(a.status, out);
    const first = await this.#part(file.hash, 0);
    return { status: a.status, statusText: STATUS_TEXT[a.status]!, headers: out, body: first, hash: parts > 1 ? file.hash : null, parts };
  }

  /** A body of several parts, read one part at a time as the client takes them. */
  #stream(hash: string, first: Uint8Array, parts: number): ReadableStream<Uint8Array> {
    let next = 0;
    return new ReadableStream<Uint8Array>({
      pull: async (c) => {
        c.enqueue(next === 0 ? first : await this.#part(hash, next));
        if (++next === parts) c.close();
      },
    });
  }
}
