/**
 * How a service joins the mesh: listen on an endpoint and dial others by name, over Unix sockets
 * (default) or NATS (`CORDON_NATS_URL`), plus a client that keeps one session to a peer alive
 * across that peer's restarts.
 */
import type { RpcCompatible } from 'capnweb';
import { accept, connect, DEFAULT_QUOTAS, type AcceptOptions, type Channel, type Keyring, type MeshSession, type Quotas, type Role } from './rpc/index.ts';
import { connectUnix, listenUnix } from './rpc/unix.ts';
import { socketPath, type MeshConfig } from './config.ts';
import type { Logger } from './log.ts';
import type { RpcTarget } from 'capnweb';

export interface Listener {
  close(): Promise<void>;
}

/**
 * Moves channels between services; one implementation per transport. `instance` names one process
 * among the replicas of an endpoint: a listener can then be dialled by it, and `replicas` lists the
 * names that answer now. A transport without replicas (Unix sockets: one process per endpoint)
 * leaves `replicas` out.
 */
export interface Transport {
  listen(endpoint: string, maxMessage: number, onChannel: (channel: Channel) => void, instance?: string): Promise<Listener>;
  dial(endpoint: string, maxMessage: number, instance?: string): Promise<Channel>;
  replicas?(endpoint: string, waitMs: number): Promise<string[]>;
  close(): Promise<void>;
}

export function unixTransport(dataDir: string): Transport {
  return {
    listen: (endpoint, max, onChannel) => listenUnix(socketPath(dataDir, endpoint), max, onChannel),
    dial: (endpoint, max) => connectUnix(socketPath(dataDir, endpoint), max),
    close: async () => {},
  };
}

/** `relayed`: NATS is reached through a sandbox's relay (lib/relay.ts). */
export async function openTransport(config: MeshConfig, log?: Logger, relayed = false): Promise<Transport> {
  if (!config.natsUrl) return unixTransport(config.dataDir);
  const { natsTransport } = await import('./mesh-nats.ts');
  return natsTransport(config.natsUrl, { waitSeconds: config.natsWaitSeconds, tls: config.natsTls, relayed, log });
}

export interface MeshNode {
  keyring: Keyring;
  /** This process's instance name, sent in the handshake; a sandbox's is its cordon, which its keys prove. */
  name: string;
  /** This process among the replicas of its endpoint (random per process unless CORDON_INSTANCE names it); not proven by any key. */
  instance: string;
  transport: Transport;
  log: Logger;
}

export function serve(node: MeshNode, endpoint: string, opts: Omit<AcceptOptions, 'keyring' | 'name'>): Promise<Listener> {
  const max = opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage;
  const full: AcceptOptions = {
    ...opts,
    keyring: node.keyring,
    name: node.name,
    onError: opts.onError ?? ((e) => node.log.warn('refused a connection', { endpoint, error: e.message })),
  };
  return node.transport.listen(endpoint, max, (channel) => void accept(channel, full), node.instance);
}

export interface ClientOptions<Remote extends RpcCompatible<Remote>> {
  local?: RpcTarget;
  /** The server's instance name where the key depends on it: the cordon of a sandbox. */
  expectName?: string;
  /** One replica of the endpoint (Transport.replicas), rather than whichever answers. */
  instance?: string;
  quotas?: Partial<Quotas>;
  /** Called for every new session (first connect and each reconnect), e.g. to re-subscribe. */
  onSession?(session: MeshSession<Remote>): void | Promise<void>;
}

/** Keeps a session to `endpoint` open, reconnecting with back-off whenever it drops. */
export class MeshClient<Remote extends RpcCompatible<Remote>> {
  #session: MeshSession<Remote> | undefined;
  #waiters: ((s: MeshSession<Remote>) => void)[] = [];
  #stopped = false;
  #delay = 50;
  readonly #node: MeshNode;
  readonly #endpoint: string;
  readonly #expect: Role;
  readonly #opts: ClientOptions<Remote>;

  constructor(node: MeshNode, endpoint: string, expect: Role, opts: ClientOptions<Remote> = {}) {
    this.#node = node;
    this.#endpoint = endpoint;
    this.#expect = expect;
    this.#opts = opts;
    void this.#loop();
  }

  /** The live session, or undefined while disconnected. */
  get current(): MeshSession<Remote> | undefined {
    return this.#session && !this.#session.isClosed ? this.#session : undefined;
  }

  /** The live session; waits up to `timeoutMs` for one. */
  ready(timeoutMs = 10_000): Promise<MeshSession<Remote>> {
    const s = this.current;
    if (s) return Promise.resolve(s);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.#endpoint} is not reachable (waited ${timeoutMs} ms)`)), timeoutMs);
      this.#waiters.push((session) => {
        clearTimeout(timer);
        resolve(session);
      });
    });
  }

  close(): void {
    this.#stopped = true;
    this.#session?.close();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      let session: MeshSession<Remote>;
      try {
        const channel = await this.#node.transport.dial(this.#endpoint, this.#opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage, this.#opts.instance);
        session = await connect<Remote>(channel, {
          keyring: this.#node.keyring,
          name: this.#node.name,
          expect: this.#expect,
          expectName: this.#opts.expectName,
          local: this.#opts.local,
          quotas: this.#opts.quotas,
        });
      } catch (e) {
        this.#node.log.debug('connect failed, retrying', {
          endpoint: this.#endpoint,
          instance: this.#opts.instance,
          error: (e as Error).message,
          delayMs: this.#delay,
        });
        await new Promise((r) => setTimeout(r, this.#delay));
        this.#delay = Math.min(this.#delay * 2, 2000);
        continue;
      }
      if (this.#stopped) {
        session.close();
        return;
      }
      this.#delay = 50;
      this.#session = session;
      this.#node.log.info('connected', { endpoint: this.#endpoint, instance: this.#opts.instance, peer: session.peer });
      try {
        await this.#opts.onSession?.(session);
      } catch (e) {
        this.#node.log.warn('session set-up failed', { endpoint: this.#endpoint, error: (e as Error).message });
        session.close(e as Error);
      }
      for (const w of this.#waiters.splice(0)) w(session);
      const reason = await session.closed;
      if (!this.#stopped) this.#node.log.warn('disconnected', { endpoint: this.#endpoint, instance: this.#opts.instance, reason: reason.message });
    }
  }
}
