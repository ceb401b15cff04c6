/**
 * The egress HTTP cache: RFC 9111 semantics from `http-cache-semantics` (freshness, Vary,
 * revalidation), entries partitioned by tenant so one tenant can never be served, or poison, what
 * another fetched. Two tiers: memory (least recently used entries go first) and, when given a file,
 * a SQLite database on disk that survives restarts, bounded per tenant (least recently used first).
 * Both outgoing fetches and the isolate's Cache API (`caches.default`, `caches.open`) use it; the
 * Cache API's partitions are `<tenant>\0api:<cache name>`, so they never meet fetch's or each other.
 */
import CachePolicy from 'http-cache-semantics';
import Database from 'better-sqlite3';

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

export interface CacheOptions {
  maxBytes?: number;
  /** The disk tier's database file; none: memory only. */
  file?: string;
  /** What one tenant may keep on disk, in bytes. */
  tenantDiskBytes?: number;
}

export class HttpCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxBytes: number;
  readonly #disk: Database.Database | undefined;
  readonly #tenantDiskBytes: number;
  #bytes = 0;
  hits = 0;
  misses = 0;

  constructor(opts: CacheOptions = {}) {
    this.#maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.#tenantDiskBytes = opts.tenantDiskBytes ?? 256 * 1024 * 1024;
    if (opts.file) {
      this.#disk = new Database(opts.file);
      this.#disk.pragma('journal_mode = WAL');
      this.#disk.exec(`CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, tenant TEXT NOT NULL, policy TEXT NOT NULL,
        status INTEGER NOT NULL, status_text TEXT NOT NULL, body BLOB NOT NULL, bytes INTEGER NOT NULL, used_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS entries_lru ON entries (tenant, used_at);`);
    }
  }

  /** From memory, else from disk (and back into memory). */
  #get(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key);
      this.#entries.set(key, entry); // most recently used last
      return entry;
    }
    const row = this.#disk?.prepare('SELECT policy, status, status_text AS statusText, body, bytes FROM entries WHERE key = ?').get(key) as
      | { policy: string; status: number; statusText: string; body: Buffer; bytes: number }
      | undefined;
    if (!row) return undefined;
    this.#disk!.prepare('UPDATE entries SET used_at = ? WHERE key = ?').run(Date.now(), key);
    const loaded = {
      policy: CachePolicy.fromObject(JSON.parse(row.policy)),
      status: row.status,
      statusText: row.statusText,
      body: new Uint8Array(row.body),
      bytes: row.bytes,
    };
    this.#remember(key, loaded);
    return loaded;
  }

  #remember(key: string, entry: Entry): void {
    const old = this.#entries.get(key);
    if (old) {
      this.#entries.delete(key);
      this.#bytes -= old.bytes;
    }
    this.#entries.set(key, entry);
    this.#bytes += entry.bytes;
    for (const [k, e] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= e.bytes;
    }
  }

  #persist(key: string, tenant: string, entry: Entry): void {
    if (!this.#disk) return;
    this.#disk
      .prepare('INSERT OR REPLACE INTO entries (key, tenant, policy, status, status_text, body, bytes, used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(key, tenant, JSON.stringify(entry.policy.toObject()), entry.status, entry.statusText, entry.body, entry.bytes, Date.now());
    // Over the tenant's share of the disk: its least recently used entries go.
    let total = this.#disk.prepare('SELECT COALESCE(SUM(bytes), 0) FROM entries WHERE tenant = ?').pluck().get(tenant) as number;
    const oldest = this.#disk.prepare('SELECT key, bytes FROM entries WHERE tenant = ? ORDER BY used_at, rowid LIMIT 64');
    while (total > this.#tenantDiskBytes) {
      const rows = oldest.all(tenant) as { key: string; bytes: number }[];
      if (!rows.length) break;
      for (const r of rows) {
        if (total <= this.#tenantDiskBytes) break;
        this.#forget(r.key);
        total -= r.bytes;
      }
    }
  }

  #forget(key: string): boolean {
    const old = this.#entries.get(key);
    if (old) {
      this.#entries.delete(key);
      this.#bytes -= old.bytes;
    }
    const onDisk = this.#disk ? this.#disk.prepare('DELETE FROM entries WHERE key = ?').run(key).changes > 0 : false;
    return Boolean(old) || onDisk;
  }

  #key(tenant: string, url: string): string {
    return `${tenant}\u0000${url}`;
  }

  /** A fresh stored response for this tenant's GET, or what to revalidate with when one is stale. */
  lookup(tenant: string, url: string, headers: HeaderList): { fresh: CachedResponse } | { revalidate: HeaderList; entry: Entry } | undefined {
    const entry = this.#get(this.#key(tenant, url));
    if (!entry) return undefined;
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

  #policy(url: string, headers: HeaderList, status: number, responseHeaders: HeaderList): CachePolicy | undefined {
    const policy = new CachePolicy(
      { url, method: 'GET', headers: headerObject(headers) },
      { status, headers: headerObject(responseHeaders) },
      { shared: true },
    );
    // Keep what is fresh, and what is stale but can be revalidated cheaply (it has a validator).
    if (!policy.storable() || (policy.timeToLive() <= 0 && !responseHeaders.some(([k]) => k === 'etag' || k === 'last-modified'))) return undefined;
    return policy;
  }

  /** Whether a response with this head would be kept (its body permitting): a streamed body is gathered only then. */
  storable(url: string, headers: HeaderList, status: number, responseHeaders: HeaderList): boolean {
    return this.#policy(url, headers, status, responseHeaders) !== undefined;
  }

  /** The longest body an entry for `url` may have: one response may not take over the cache. */
  maxEntryBodyBytes(url: string): number {
    return this.#maxBytes / 8 - url.length - 512;
  }

  /** Whether the response was kept (storable by RFC 9111 as a shared cache, and not too big). */
  store(tenant: string, url: string, headers: HeaderList, res: { status: number; statusText: string; headers: HeaderList; body: Uint8Array }): boolean {
    this.misses++;
    const key = this.#key(tenant, url);
    this.#forget(key);
    const policy = this.#policy(url, headers, res.status, res.headers);
    if (!policy || res.body.byteLength > this.maxEntryBodyBytes(url)) return false;
    const bytes = res.body.byteLength + url.length + 512;
    const entry = { policy, status: res.status, statusText: res.statusText, body: res.body, bytes };
    this.#remember(key, entry);
    this.#persist(key, tenant.split('\u0000')[0]!, entry);
    return true;
  }

  /** A fresh stored response, or nothing (the Cache API does not revalidate). */
  match(tenant: string, url: string, headers: HeaderList): CachedResponse | undefined {
    const found = this.lookup(tenant, url, headers);
    return found && 'fresh' in found ? found.fresh : undefined;
  }

  delete(tenant: string, url: string): boolean {
    return this.#forget(this.#key(tenant, url));
  }

  close(): void {
    this.#disk?.close();
  }

  get size(): { entries: number; bytes: number } {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }
}
