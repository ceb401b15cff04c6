/**
 * One hosted Durable Object's WebSockets, as its isolate's calls reach them (`ctx.acceptWebSocket`,
 * `ws.send`, `getWebSockets`…): only the sockets methods pass, to the fenced capability the supervisor
 * handed with the object's lease. It also counts the object's plain (`server.accept()`) sockets: their
 * listeners live in the instance, so an object with one open is not evicted when idle.
 */
import { OBJECT_SOCKETS_ARITY } from '../../schemas/durable-objects.ts';
import { MAX_CALLS_IN_FLIGHT, checkCallSize } from './capabilities.ts';
import { supervisorCalls } from './call-gate.ts';
import type { CapabilityHost } from './runtime/index.ts';
import type { FacetSockets } from './runtime/worker-loader.ts';

type Stub = Record<string, (...args: unknown[]) => Promise<unknown>>;

export class ObjectSocketsForwarder implements CapabilityHost {
  readonly #make: () => unknown;
  /**
   * The capability, asked for on the object's first socket call and awaited: a pipelined call left
   * unresolved for every live object held one of the supervisor session's calls in flight each, and
   * a sandbox stopped taking objects at about a thousand.
   */
  #stub: Promise<Stub> | undefined;
  readonly #plain = new Set<string>();
  #inFlight = 0;
  /** A facet of a loaded class: told of its hibernatable sockets, so that its Worker's code is kept while it holds any. */
  readonly #watch: FacetSockets | undefined;
  constructor(make: () => unknown, watch?: FacetSockets) {
    this.#make = make;
    this.#watch = watch;
  }

  async call(_handle: string, method: string, args: unknown[]): Promise<unknown> {
    const arity = Object.hasOwn(OBJECT_SOCKETS_ARITY, method) ? OBJECT_SOCKETS_ARITY[method as keyof typeof OBJECT_SOCKETS_ARITY] : undefined;
    if (arity === undefined) throw new Error(`${method} is not a method of a Durable Object's WebSockets`);
    const sent = args.slice(0, arity);
    checkCallSize(`webSockets.${method}`, sent);
    if (this.#inFlight >= MAX_CALLS_IN_FLIGHT) throw new Error(`too many WebSocket calls in flight: an object may have ${MAX_CALLS_IN_FLIGHT} at once`);
    const watched = method === 'accept' && sent[1] === true ? this.#watch : undefined;
    watched?.accepting();
    this.#inFlight++;
    let accepted: string | undefined;
    try {
      this.#stub ??= Promise.resolve(this.#make() as Stub);
      const stub = await this.#stub;
      const out = await supervisorCalls.run(() => stub[method]!(...sent));
      if (method === 'accept') accepted = out as string;
      if (method === 'accept' && sent[1] === false) this.#plain.add(out as string);
      if (method === 'close') this.closed(sent[0] as string);
      return out;
    } finally {
      this.#inFlight--;
      watched?.accepted(accepted);
    }
  }

  /** A socket closed: the object closed it, or its browser end's close event was delivered. */
  closed(sid: string): void {
    this.#plain.delete(sid);
    this.#watch?.closed(sid);
  }

  /** The object left this process: the capability goes. */
  dispose(): void {
    void this.#stub?.then((stub) => (stub as Partial<Disposable>)[Symbol.dispose]?.()).catch(() => {});
  }

  /** Plain sockets open: the instance must stay. */
  get pinned(): boolean {
    return this.#plain.size > 0;
  }
}
