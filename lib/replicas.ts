/**
 * Sessions to every live replica of one endpoint (the sandbox processes of a cordon), and the choice
 * of one per call: the replica with the fewest calls in flight, ties in turn. The replicas are listed
 * by the transport (`Transport.replicas`: over NATS, whoever answers `cordon.who.<endpoint>`) every
 * REFRESH_MS, so a new replica takes load within about a second, and one that stopped answering gets
 * no new calls. A listed name is only a hint: a session to it opens only if the process behind it
 * proves the endpoint's key (a sandbox replica of another cordon cannot). A transport without replicas
 * (Unix sockets) has one session, to the endpoint itself.
 */
import type { RpcCompatible } from 'capnweb';
import { MeshClient, type ClientOptions, type MeshNode } from './mesh.ts';
import type { MeshSession, Role } from './rpc/index.ts';

const REFRESH_MS = 1000;
/** How long replicas have to answer the roll call. */
const ROLL_CALL_MS = 150;
/** Replicas not listed this many roll calls in a row are dropped (one lost answer is not a death). */
const MISSED_TO_DROP = 3;
/** No replica to avoid: one empty set for every call that has none. */
const NONE: ReadonlySet<string> = new Set();

interface Replica<Remote extends RpcCompatible<Remote>> {
  client: MeshClient<Remote>;
  inFlight: number;
  missed: number;
}

/** A live session to one replica, and a way to say the call on it is over. */
export interface Picked<Remote extends RpcCompatible<Remote>> {
  session: MeshSession<Remote>;
  /** The replica's instance name ('' where the transport has no replicas). */
  instance: string;
  done(): void;
}

export class ReplicaClients<Remote extends RpcCompatible<Remote>> {
  readonly #node: MeshNode;
  readonly #endpoint: string;
  readonly #expect: Role;
  readonly #opts: ClientOptions<Remote>;
  readonly #replicas = new Map<string, Replica<Remote>>();
  readonly #timer: NodeJS.Timeout | undefined;
  #turn = 0;
  #refreshing: Promise<void> | undefined;
  #closed = false;

  constructor(node: MeshNode, endpoint: string, expect: Role, opts: ClientOptions<Remote> = {}) {
    this.#node = node;
    this.#endpoint = endpoint;
    this.#expect = expect;
    this.#opts = opts;
    if (!node.transport.replicas) {
      this.#replicas.set('', { client: new MeshClient<Remote>(node, endpoint, expect, opts), inFlight: 0, missed: 0 });
      return;
    }
    void this.refresh();
    this.#timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.#timer.unref();
  }

  /** The instance names with a live session now. */
  get live(): string[] {
    return [...this.#replicas].filter(([, r]) => r.client.current).map(([name]) => name);
  }

  /** Lists the replicas now: new ones get a session, long-silent ones are dropped. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#rollCall().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #rollCall(): Promise<void> {
    const names = new Set(await this.#node.transport.replicas!(this.#endpoint, ROLL_CALL_MS));
    if (this.#closed) return;
    for (const name of names) {
      const known = this.#replicas.get(name);
      if (known) known.missed = 0;
      else
        this.#replicas.set(name, {
          client: new MeshClient<Remote>(this.#node, this.#endpoint, this.#expect, { ...this.#opts, instance: name }),
          inFlight: 0,
          missed: 0,
        });
    }
    for (const [name, r] of this.#replicas) {
      if (names.has(name) || ++r.missed < MISSED_TO_DROP) continue;
      r.client.close();
      this.#replicas.delete(name);
      this.#node.log.info('replica gone', { endpoint: this.#endpoint, instance: name });
    }
  }

  /**
   * A live replica's session, not one of `avoid` (those a call already failed on) unless no other is
   * live; waits up to `timeoutMs` for one. Call `done()` when the call is over.
   */
  async pick(timeoutMs: number, avoid: ReadonlySet<string> = NONE): Promise<Picked<Remote>> {
    const deadline = Date.now() + timeoutMs;
    for (let round = 0; ; round++) {
      const picked = this.pickNow(avoid);
      if (picked) return picked;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no replica of ${this.#endpoint} is reachable (waited ${timeoutMs} ms)`);
      // None live: ask again now (a replica may just have started), then give sessions a moment to open.
      if (this.#node.transport.replicas && round % 4 === 0) await this.refresh();
      await new Promise((r) => setTimeout(r, Math.min(50, left)));
    }
  }

  /**
   * What `pick` gives when a replica is live now (the path of nearly every call: no promise, no
   * waiting), else undefined.
   */
  pickNow(avoid: ReadonlySet<string> = NONE): Picked<Remote> | undefined {
    const chosen = this.#choose(avoid) ?? (avoid.size ? this.#choose(NONE) : undefined);
    if (chosen === undefined) return undefined; // ('' is a name: the one session where the transport has no replicas)
    const r = this.#replicas.get(chosen)!;
    r.inFlight++;
    let over = false;
    const done = () => {
      if (!over) r.inFlight--;
      over = true;
    };
    return { session: r.client.current!, instance: chosen, done };
  }

  /** The live replica not in `avoid` with the fewest calls in flight, ties in turn; counted in place, no lists made. */
  #choose(avoid: ReadonlySet<string>): string | undefined {
    let least = Infinity;
    let ties = 0;
    for (const [name, r] of this.#replicas) {
      if (avoid.has(name) || !r.client.current) continue;
      if (r.inFlight < least) {
        least = r.inFlight;
        ties = 1;
      } else if (r.inFlight === least) ties++;
    }
    if (!ties) return undefined;
    let n = this.#turn++ % ties;
    for (const [name, r] of this.#replicas) {
      if (avoid.has(name) || !r.client.current || r.inFlight !== least) continue;
      if (n-- === 0) return name;
    }
    return undefined;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const r of this.#replicas.values()) r.client.close();
    this.#replicas.clear();
  }
}
