/**
 * Sending a worker's request out: to the pinned address only, with the worker's identity stamped
 * on it, following redirects here (each hop checked again, at most 20) unless the worker asked for
 * `manual`, with an idle time-out. A small body of declared length comes back whole; any other
 * streams back as the origin sends it, pulled by the worker's reads (a cancelled read closes the
 * connection to the origin), at most `maxResponseBytes` in all. Headers that would let the tenant
 * steer the proxy or claim another identity never leave.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Resolver } from 'node:dns/promises';
import { CordonError } from '../../lib/errors.ts';
import type { FetchRequest, FetchResponse } from '../../schemas/capabilities.ts';
import { EgressDenied, parseTarget, pin, type Pinned, type WorkerPolicy } from './policy.ts';
import type { HttpCache } from './cache.ts';

export type OutboundRequest = FetchRequest;
export type OutboundResponse = FetchResponse;

const MAX_REDIRECTS = 20;
const DROP =
  /^(?:host|connection|keep-alive|proxy-.*|te|trailer|transfer-encoding|upgrade|forwarded|x-forwarded-.*|x-real-ip|x-upstream-.*|cordon-worker|content-length)$/i;
const REDIRECT = new Set([301, 302, 303, 307, 308]);
/** A response body declared this long or shorter comes back whole (and may be cached as it is); others stream. */
export const WHOLE_BELOW = 1024 * 1024;

/** The destination failed us (timed out, went away, answered too much): 502, its message for the worker. */
const unreachable = (message: string) => new CordonError(message, { status: 502 });

function send(
  p: Pinned,
  method: string,
  headers: [string, string][],
  body: Uint8Array | null,
  identity: string,
  timeoutMs: number,
): Promise<{ res: IncomingMessage; bytes: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const https = p.url.protocol === 'https:';
    const out: [string, string][] = headers.filter(([k]) => !DROP.test(k));
    out.push(['host', p.url.host], ['cordon-worker', identity]);
    if (body) out.push(['content-length', String(body.byteLength)]);
    const req = (https ? httpsRequest : httpRequest)({
      host: p.address,
      family: p.family,
      port: p.port,
      method,
      path: p.url.pathname + p.url.search,
      headers: out.flat() as unknown as Record<string, string>,
      // TLS is checked against the name the worker asked for, while the socket goes to the pinned address.
      servername: https && !/^[\d.]+$|:/.test(p.url.hostname) ? p.url.hostname : undefined,
      timeout: timeoutMs,
      agent: false,
    });
    req.on('timeout', () => req.destroy(unreachable(`the request to ${p.url.host} timed out after ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof CordonError ? e : unreachable(`network error reaching ${p.url.host}: ${e.message}`)));
    req.on('response', (res) => {
      const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
      const empty = method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304;
      if (!empty && (declared === undefined || !(declared <= WHOLE_BELOW))) return resolve({ res, bytes: undefined });
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > WHOLE_BELOW) {
          res.destroy();
          reject(unreachable(`the response from ${p.url.host} is longer than its content-length`));
        } else chunks.push(c);
      });
      res.on('end', () => resolve({ res, bytes: Buffer.concat(chunks, size) }));
      res.on('error', (e) => reject(unreachable(`network error reading from ${p.url.host}: ${e.message}`)));
    });
    req.end(body ?? undefined);
  });
}

/**
 * A response body as the origin sends it: a chunk is read only when the worker pulls one (so the
 * origin's TCP window is the backpressure), at most `max` bytes in all; cancelled, the connection to
 * the origin closes. `keep` gets the whole body at its end, if it was at most `keep.max` bytes (the cache).
 */
function streamed(res: IncomingMessage, host: string, max: number, keep?: { max: number; done(body: Uint8Array): void }): ReadableStream<Uint8Array> {
  const chunks = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let kept: Buffer[] | undefined = keep ? [] : undefined;
  let size = 0;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (e) {
          return controller.error(e instanceof CordonError ? e : unreachable(`network error reading from ${host}: ${(e as Error).message}`));
        }
        if (next.done) {
          if (kept) keep!.done(new Uint8Array(Buffer.concat(kept, size)));
          return controller.close();
        }
        size += next.value.length;
        if (size > max) {
          res.destroy();
          return controller.error(unreachable(`the response from ${host} is larger than ${max} bytes`));
        }
        if (kept) kept = size <= keep!.max ? (kept.push(next.value), kept) : undefined;
        controller.enqueue(new Uint8Array(next.value.buffer, next.value.byteOffset, next.value.byteLength));
      },
      cancel() {
        res.destroy();
      },
    },
    { highWaterMark: 0 },
  );
}

/** What sending needs besides the request: where names resolve, the cache, how long the origin may stay silent and how much it may send. */
export interface OutboundDeps {
  resolver: Resolver;
  cache?: HttpCache;
  timeoutMs: number;
  /** One streamed response body may be this long at most. */
  maxResponseBytes: number;
}

export async function outbound(
  request: OutboundRequest,
  policy: WorkerPolicy,
  identity: string,
  { resolver, cache, timeoutMs, maxResponseBytes }: OutboundDeps,
): Promise<OutboundResponse> {
  let url = request.url;
  let method = request.method;
  let body = request.body;
  let headers = request.headers;
  const tenant = identity.split('/')[0]!;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const pinned = await pin(parseTarget(url, policy), policy, resolver);
    // GETs go through the tenant's partition of the cache: a fresh hit never leaves egress.
    const cached = method === 'GET' && cache ? cache.lookup(tenant, url, headers) : undefined;
    if (cached && 'fresh' in cached) return { ...cached.fresh, url, redirected: hop > 0 };
    const sentHeaders = cached
      ? [...headers.filter(([k]) => !/^if-(none-match|modified-since)$/i.test(k)), ...cached.revalidate.filter(([k]) => /^if-/i.test(k))]
      : headers;
    const { res, bytes } = await send(pinned, method, sentHeaders, body, identity, timeoutMs);
    const status = res.statusCode ?? 502;
    const resHeaders: [string, string][] = [];
    for (let i = 0; i < res.rawHeaders.length; i += 2) resHeaders.push([res.rawHeaders[i]!.toLowerCase(), res.rawHeaders[i + 1]!]);
    // A body not read (a redirect followed, a revalidated entry served) closes its connection.
    const discard = () => void (bytes === undefined && res.destroy());
    if (cached && cache) {
      const refreshed = cache.revalidated(url, headers, cached.entry, status, resHeaders);
      if (refreshed) {
        discard();
        return { ...refreshed, url, redirected: hop > 0 };
      }
    }
    const location = res.headers.location;
    if (REDIRECT.has(status) && location && request.redirect !== 'manual') {
      discard();
      if (request.redirect === 'error') throw unreachable(`redirect to ${location} refused (redirect: 'error')`);
      url = new URL(location, url).href;
      if (status === 303 || ((status === 301 || status === 302) && method === 'POST')) {
        method = 'GET';
        body = null;
        headers = headers.filter(([k]) => !/^content-/i.test(k));
      }
      continue;
    }
    const head = { status: status < 200 ? 502 : status, statusText: res.statusMessage ?? '', headers: resHeaders, url, redirected: hop > 0 };
    const cacheable = method === 'GET' && status === 200 ? cache : undefined;
    if (bytes !== undefined) {
      const response = { ...head, body: new Uint8Array(bytes) };
      cacheable?.store(tenant, url, headers, response);
      return response;
    }
    // A streamed body is gathered for the cache only when its head says it may be kept, and only so far.
    const keep = cacheable?.storable(url, headers, status, resHeaders)
      ? { max: cacheable.maxEntryBodyBytes(url), done: (body: Uint8Array) => void cacheable.store(tenant, url, headers, { ...head, body }) }
      : undefined;
    return { ...head, body: null, stream: streamed(res, pinned.url.host, maxResponseBytes, keep) };
  }
  throw new EgressDenied(`more than ${MAX_REDIRECTS} redirects`);
}
