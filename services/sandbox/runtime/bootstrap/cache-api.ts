/**
 * The Cache API in the isolate: `caches.default` and `caches.open(name)`, each a partition of the
 * worker's tenant's cache in egress (RFC 9111 rules, via http-cache-semantics there). As in Workers:
 * only GET requests, no 206 or `Vary: *` responses, and a response that sets a cookie is not kept;
 * a hit carries `cf-cache-status: HIT`. Named caches never share entries with the default one.
 */
import { Headers, Request, Response } from './fetch-api.ts';

type CallAsync = (handle: string, method: string, args: unknown[]) => Promise<unknown>;
type Hit = { status: number; statusText: string; headers: [string, string][]; body: Uint8Array } | null;

const HANDLE = '$cache';
const MINT = Symbol('mint');

function requestOf(input: unknown): Request {
  return input instanceof Request ? input : new Request(input as string);
}

function keepsCookie(res: Response): boolean {
  return /private\s*=\s*"?set-cookie/i.test(res.headers.get('cache-control') ?? '');
}

export function makeCaches(call: CallAsync): object {
  class Cache {
    readonly #name: string;
    constructor(mint: symbol, name: string) {
      if (mint !== MINT) throw new TypeError('Illegal constructor');
      this.#name = name;
    }
    async match(input: unknown, options?: { ignoreMethod?: boolean }): Promise<Response | undefined> {
      const req = requestOf(input);
      if (req.method !== 'GET' && !options?.ignoreMethod) return undefined;
      const hit = (await call(HANDLE, 'match', [this.#name, req.url, Headers.raw(req.headers)])) as Hit;
      if (!hit) return undefined;
      const res = new Response(hit.status === 204 || hit.status === 304 ? null : hit.body, {
        status: hit.status,
        statusText: hit.statusText,
        headers: hit.headers,
      });
      res.headers.set('cf-cache-status', 'HIT');
      return res;
    }
    async put(input: unknown, response: unknown): Promise<undefined> {
      const req = requestOf(input);
      if (req.method !== 'GET') throw new TypeError('Cache.put: only GET requests can be cached');
      if (!(response instanceof Response)) throw new TypeError('Cache.put needs a Response');
      if (response.status === 206) throw new TypeError('Cache.put: a 206 Partial Content response cannot be cached');
      if ((response.headers.get('vary') ?? '').includes('*')) throw new TypeError("Cache.put: a response with 'Vary: *' cannot be cached");
      if (response.bodyUsed) throw new TypeError('Cache.put: the response body was already used');
      const body = new Uint8Array(await response.arrayBuffer());
      if (response.headers.has('set-cookie') && !keepsCookie(response)) return undefined; // as Workers: never kept
      await call(HANDLE, 'put', [
        this.#name,
        req.url,
        Headers.raw(req.headers),
        { status: response.status, statusText: response.statusText, headers: Headers.raw(response.headers), body },
      ]);
      return undefined;
    }
    async delete(input: unknown, options?: { ignoreMethod?: boolean }): Promise<boolean> {
      const req = requestOf(input);
      if (req.method !== 'GET' && !options?.ignoreMethod) return false;
      return (await call(HANDLE, 'delete', [this.#name, req.url])) as boolean;
    }
  }
  const defaultCache = new Cache(MINT, 'default');
  return Object.freeze({
    default: defaultCache,
    async open(name: unknown): Promise<Cache> {
      if (typeof name !== 'string' || name.length === 0 || name.length > 200) throw new TypeError('caches.open(name): a name of 1 to 200 characters');
      return new Cache(MINT, `named:${name}`);
    },
  });
}
