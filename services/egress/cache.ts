/**
 * The egress HTTP cache: RFC 9111 semantics from `http-cache-semantics` (freshness, Vary,
 * revalidation), entries partitioned by tenant so one tenant can never be served, or poison, what
 * another fetched, and bounded in memory (least recently used entries go first).
 */
import CachePolicy from 'http-cache-semantics';

interface Entry {
  policy: CachePolicy;
  status: number;
  statusText: string;
  body: Uint8Array;
  bytes: number;
}

export interface CachedResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array;
}

type HeaderList = [string, string][];

export function headerObject(list: HeaderList): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of list) o[k] = o[k] === undefined ? v : `${o[k]}, ${v}`;
  return o;
}

function headerList(o: CachePolicy.Headers): HeaderList {
  const out: HeaderList = [];
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, String(one)]);
  }
  return out;
}

export class HttpCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxBytes: number;
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(maxBytes = 64 * 1024 * 1024) {
    this.#maxBytes = maxBytes;
  }

  #key(tenant: string, url: string): string {
    return `${tenant}\u0000${url}`;
  }

  /** A fresh stored response for this tenant's GET, or what to revalidate with when one is stale. */
  lookup(tenant: string, url: string, headers: HeaderList): { fresh: CachedResponse } | { revalidate: HeaderList; entry: Entry } | undefined {
    const key = this.#key(tenant, url);
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, entry); // most recently used last
    const req = { url, method: 'GET', headers: headerObject(headers) };
    if (entry.policy.satisfiesWithoutRevalidation(req)) {
      this.hits++;
      return { fresh: { status: entry.status, statusText: entry.statusText, headers: headerList(entry.policy.responseHeaders()), body: entry.body } };
    }
    return { revalidate: headerList(entry.policy.revalidationHeaders(req)), entry };
  }

  /** After a revalidation: a 304 refreshes the stored entry and it is served. */
  revalidated(url: string, headers: HeaderList, entry: Entry, status: number, responseHeaders: HeaderList): CachedResponse | undefined {
    const req = { url, method: 'GET', headers: headerObject(headers) };
    const { policy, modified } = entry.policy.revalidatedPolicy(req, { status, headers: headerObject(responseHeaders) });
    if (modified) return undefined;
    entry.policy = policy;
    this.hits++;
    return { status: entry.status, statusText: entry.statusText, headers: headerList(policy.responseHeaders()), body: entry.body };
  }

  store(tenant: string, url: string, headers: HeaderList, res: { status: number; statusText: string; headers: HeaderList; body: Uint8Array }): void {
    this.misses++;
    const policy = new CachePolicy({ url, method: 'GET', headers: headerObject(headers) }, { status: res.status, headers: headerObject(res.headers) }, { shared: true });
    const key = this.#key(tenant, url);
    const old = this.#entries.get(key);
    if (old) {
      this.#entries.delete(key);
      this.#bytes -= old.bytes;
    }
    // Keep what is fresh, and what is stale but can be revalidated cheaply (it has a validator).
    if (!policy.storable() || (policy.timeToLive() <= 0 && !res.headers.some(([k]) => k === 'etag' || k === 'last-modified'))) return;
    const bytes = res.body.byteLength + url.length + 512;
    if (bytes > this.#maxBytes / 8) return; // one response may not take over the cache
    this.#entries.set(key, { policy, status: res.status, statusText: res.statusText, body: res.body, bytes });
    this.#bytes += bytes;
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= e.bytes;
    }
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }
}
