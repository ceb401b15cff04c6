/**
 * What the request path (entry.ts) shares with the APIs that belong to a request (timers, fetch and
 * other capability calls): the requests in flight, the generation of replies still delivered, and the
 * worker's handler and env. One object, so both sides see each other's writes.
 */
import type { Request } from './fetch-api.ts';

export interface Handler {
  fetch?(request: Request, env: unknown, ctx: unknown): unknown;
  scheduled?(event: unknown, env: unknown, ctx: unknown): unknown;
  queue?(batch: unknown, env: unknown, ctx: unknown): unknown;
}
/** `export default class extends WorkerEntrypoint { fetch(request) {} }`: one instance per request. */
export type HandlerClass = (new (ctx: unknown, env: unknown) => { fetch?(request: Request): unknown }) & { prototype: { fetch?: unknown } };

let active = 0;
/** Bumped when a request starts while none is in flight: node:fs empties /tmp then (cli/node-polyfills/fs.ts). */
let epoch = 0;
export const requestEpoch = (): number => epoch;

export const requests: {
  /** Requests in flight. Timers, fetch and their callbacks belong to requests: outside one there are none. */
  active: number;
  /** Bumped whenever the host ends all requests: replies to calls made before then are dropped. */
  generation: number;
  /** The worker's default export (or its service-worker listeners), once loaded. */
  handler: Handler | HandlerClass | undefined;
  env: object;
  /** A Dynamic Worker's gateway (its globalOutbound): every fetch() goes to it (env.ts, index.ts). */
  outbound?: { fetch(input: unknown, init?: unknown): Promise<unknown> };
  /** A Dynamic Worker loaded with `globalOutbound: null`: connect() throws workerd's message (env.ts). */
  noOutbound?: boolean;
} = {
  get active() {
    return active;
  },
  set active(n: number) {
    if (active === 0 && n > 0) epoch++;
    active = n;
  },
  generation: 0,
  handler: undefined,
  env: {},
};

export function inRequest(): boolean {
  return requests.active > 0;
}
