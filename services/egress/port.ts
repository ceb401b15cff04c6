/**
 * What egress offers the supervisor: fetchers, each bound at creation to one worker's identity and
 * policy. The tenant never names its own identity; the supervisor does, from the code key it checked.
 */
import { RpcTarget } from 'capnweb';
import { z } from 'zod';
import { CordonError } from '../../lib/errors.ts';
import { SpanKind } from '@opentelemetry/api';
import { inSpan, traceAttributes } from '../../lib/telemetry.ts';
import { check, bytes } from '../../lib/rpc/validate.ts';
import { Headers as HeaderList, MAX_BODY, MAX_URL } from '../../schemas/http.ts';
import type { EgressForSupervisor } from '../../schemas/services.ts';
import type { CacheApi, FetcherApi, FetchRequest, FetchResponse, OpenedSocket } from '../../schemas/capabilities.ts';
import { openSocket, type SocketCounts, type SocketDeps } from './sockets.ts';
import { EgressDenied, EMPTY_POLICY, type WorkerPolicy } from './policy.ts';
import { cidrList } from '../../lib/ip-classify.ts';
import { EgressLists, WorkerId } from '../../schemas/worker.ts';
import { outbound, type OutboundDeps } from './fetcher.ts';
import type { CachedResponse, HttpCache } from './cache.ts';
import type { Logger } from '../../lib/log.ts';

const Request = z.object({
  method: z.string().regex(/^[A-Z]{1,16}$/),
  url: z.string().max(MAX_URL),
  headers: HeaderList,
  body: bytes(MAX_BODY).nullable(),
  redirect: z.enum(['follow', 'manual', 'error']),
});
const Origin = z.string().regex(/^(?:https?|tcp):\/\/[^/\s]+:\d{1,5}$/);
const SocketTarget = z.strictObject({ hostname: z.string().min(1).max(300), port: z.number().int() });
const SocketOptionsSchema = z.strictObject({ secureTransport: z.enum(['off', 'on', 'starttls']), allowHalfOpen: z.boolean() });

export type RefusalSink = (workerId: string, reason: string) => void;

/** What egress's capabilities are built from (main.ts wires them from the settings). */
export interface EgressDeps extends OutboundDeps {
  cache: HttpCache;
  refused: RefusalSink;
  log: Logger;
  limits: RateLimits;
  sockets: Omit<SocketDeps, 'resolver' | 'timeoutMs' | 'closed'>;
  socketCounts: SocketCounts;
}

/**
 * Requests per second a worker may send before egress starts refusing (`egressRate` in lib/config.ts), with
 * bursts of twice that: a token bucket per worker, however many fetch capabilities it has been given
 * (each sandbox session and each redeploy gets a new one).
 */
export class RateLimits {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  readonly #rate: number;
  constructor(perSecond: number) {
    this.#rate = perSecond;
  }
  get perSecond(): number {
    return this.#rate;
  }
  /** Whether the worker may send one more request now. */
  take(workerId: string): boolean {
    const now = Date.now();
    const b = this.#buckets.get(workerId) ?? { tokens: 2 * this.#rate, at: now };
    b.tokens = Math.min(2 * this.#rate, b.tokens + ((now - b.at) / 1000) * this.#rate);
    b.at = now;
    this.#buckets.set(workerId, b);
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }
}

class FetcherCap extends RpcTarget implements FetcherApi {
  readonly #workerId: string;
  readonly #policy: WorkerPolicy;
  readonly #deps: EgressDeps;

  constructor(workerId: string, policy: WorkerPolicy, deps: EgressDeps) {
    super();
    this.#workerId = workerId;
    this.#policy = policy;
    this.#deps = deps;
  }

  fetch(requestArg: unknown): Promise<FetchResponse> {
    return inSpan('egress fetch', SpanKind.SERVER, traceAttributes({ workerId: this.#workerId }), async (span) => {
      const response = await this.#fetch(requestArg);
      span.setAttributes(traceAttributes({ status: response.status }));
      return response;
    });
  }

  async #fetch(requestArg: unknown): Promise<FetchResponse> {
    const request = check(Request, requestArg, 'fetch request') as FetchRequest;
    return this.#guard(request.url, () => outbound(request, this.#policy, this.#workerId, this.#deps));
  }

  /** A TCP (or TLS) socket for the worker: the same rate limit, policy and audit as fetch(), and the socket rules (sockets.ts). */
  connect(targetArg: unknown, optionsArg: unknown): Promise<OpenedSocket> {
    return inSpan('egress connect', SpanKind.SERVER, traceAttributes({ workerId: this.#workerId }), async () => {
      const target = check(SocketTarget, targetArg, 'connect address');
      const options = check(SocketOptionsSchema, optionsArg, 'connect options');
      const { resolver, timeoutMs, log, sockets, socketCounts } = this.#deps;
      const deps: SocketDeps = {
        ...sockets,
        resolver,
        timeoutMs,
        closed: (worker, destination, bytesIn, bytesOut) => log.info('socket closed', { worker, destination, bytesIn, bytesOut }),
      };
      const opened = await this.#guard(`tcp://${target.hostname.slice(0, 260)}:${target.port}`, () =>
        openSocket(target, options, this.#policy, this.#workerId, socketCounts, deps),
      );
      log.info('socket opened', { worker: this.#workerId, destination: `${target.hostname}:${target.port}`, tls: options.secureTransport });
      return opened;
    });
  }

  /** Rate limit, then `send`; a refusal is logged and audited; the worker gets the message only. */
  async #guard<T>(destination: string, send: () => Promise<T>): Promise<T> {
    try {
      const { limits } = this.#deps;
      if (!limits.take(this.#workerId)) throw new EgressDenied(`rate limit of ${limits.perSecond} requests per second exceeded`);
      return await send();
    } catch (e) {
      if (e instanceof CordonError && e.refusal) {
        this.#deps.log.warn('egress refused', { worker: this.#workerId, url: destination.slice(0, 300), reason: e.message });
        this.#deps.refused(this.#workerId, e.message);
      }
      throw new Error(e instanceof CordonError ? e.message : `network error: ${(e as Error).message}`);
    }
  }
}

const CacheName = z.string().min(1).max(256);
const CacheUrl = z
  .string()
  .max(MAX_URL)
  .regex(/^https?:\/\//, 'an absolute http(s) URL');
const CachePut = z.object({ status: z.number().int().min(200).max(599), statusText: z.string().max(256), headers: HeaderList, body: bytes(MAX_BODY) });

/**
 * The Cache API of one worker: its tenant's partitions (one per cache name) of the egress cache. The
 * tenant is bound here by the supervisor; the isolate only names caches and URLs.
 */
class CacheCap extends RpcTarget implements CacheApi {
  readonly #tenant: string;
  readonly #cache: HttpCache;
  constructor(tenant: string, cache: HttpCache) {
    super();
    this.#tenant = tenant;
    this.#cache = cache;
  }
  #partition(name: unknown): string {
    return `${this.#tenant}\u0000api:${check(CacheName, name, 'cache name')}`;
  }
  async match(name: unknown, url: unknown, headers: unknown): Promise<CachedResponse | null> {
    return this.#cache.match(this.#partition(name), check(CacheUrl, url, 'url'), check(HeaderList, headers, 'headers')) ?? null;
  }
  async put(name: unknown, url: unknown, headers: unknown, response: unknown): Promise<boolean> {
    const partition = this.#partition(name);
    const res = check(CachePut, response, 'response');
    return this.#cache.store(partition, check(CacheUrl, url, 'url'), check(HeaderList, headers, 'headers'), res);
  }
  async delete(name: unknown, url: unknown): Promise<boolean> {
    return this.#cache.delete(this.#partition(name), check(CacheUrl, url, 'url'));
  }
}

export class EgressPort extends RpcTarget implements EgressForSupervisor {
  readonly #deps: EgressDeps;
  constructor(deps: EgressDeps) {
    super();
    this.#deps = deps;
  }

  async cacheFor(workerId: unknown): Promise<CacheApi> {
    const id = check(WorkerId, workerId, 'worker id');
    return new CacheCap(id.split('/')[0]!, this.#deps.cache);
  }

  async fetcherFor(workerId: unknown, policy: unknown): Promise<FetcherApi> {
    const id = check(WorkerId, workerId, 'worker id');
    const p = check(z.object({ origins: z.array(Origin).max(32) }).and(EgressLists), policy, 'policy');
    return new FetcherCap(
      id,
      { ...EMPTY_POLICY, origins: p.origins, allowHosts: p.allowHosts, denyHosts: p.denyHosts, denyCidrs: cidrList(p.denyCidrs) },
      this.#deps,
    );
  }
}
