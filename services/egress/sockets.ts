/**
 * `connect()` (cloudflare:sockets) for one worker: a TCP connection, TLS from the start or after
 * `startTls()`, to a destination checked exactly as fetch()'s are (policy.ts: lists, special-use
 * names, every resolved address, pinned — no second lookup), plus what Workers refuses of sockets:
 * port 25, and this platform's own listeners (Workers refuses Cloudflare's own addresses). Bytes
 * from the destination stream back as the worker reads them; the worker's writes are calls, each
 * answered once the kernel has taken the bytes (backpressure both ways). A worker has at most
 * `maxSockets` open at once; a socket silent both ways for `idleMs` closes.
 */
import { BlockList, connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { networkInterfaces } from 'node:os';
import type { Resolver } from 'node:dns/promises';
import { RpcTarget } from 'capnweb';
import { CordonError } from '../../lib/errors.ts';
import { PEER_FIELD_MAX, type OpenedSocket, type PeerCertificate, type SocketApi, type SocketOptions } from '../../schemas/capabilities.ts';
import { EgressDenied, pin, socketTarget, type WorkerPolicy } from './policy.ts';

/** workerd's message for a connection that could not be made (a refused port, no route, a failed TLS handshake). */
const CANNOT_CONNECT = 'proxy request failed, cannot connect to the specified address';

/** What sockets need from egress: where names resolve, how long a connect or a silence may last, the limits, and who is told. */
export interface SocketDeps {
  resolver: Resolver;
  timeoutMs: number;
  /** Sockets one worker may have open at once. */
  maxSockets: number;
  /** Ports this platform serves on (ingress, admin): refused on any address of this host. */
  ownPorts: number[];
  /** A socket closed: how much it carried (egress logs it with the worker's identity). */
  closed(workerId: string, destination: string, bytesIn: number, bytesOut: number): void;
}

/** Sockets open per worker, across all its capabilities (each sandbox session and redeploy gets new ones). */
export class SocketCounts {
  readonly #open = new Map<string, number>();
  /** Takes one for `workerId`, or says no at `max`. */
  take(workerId: string, max: number): boolean {
    const n = this.#open.get(workerId) ?? 0;
    if (n >= max) return false;
    this.#open.set(workerId, n + 1);
    return true;
  }
  release(workerId: string): void {
    const n = (this.#open.get(workerId) ?? 1) - 1;
    if (n <= 0) this.#open.delete(workerId);
    else this.#open.set(workerId, n);
  }
}

/** Loopback in every spelling: a listener on 0.0.0.0 answers on all of 127.0.0.0/8. */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether `address` is this host (loopback, unspecified, or an interface's): on a platform port, it reaches the platform itself. */
function isOwnAddress(address: string): boolean {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  if (LOOPBACK.check(address, family) || address === '0.0.0.0' || address === '::') return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address));
}

/**
 * The socket's bytes as a stream read only when pulled (a socket nobody reads stops reading: TCP's
 * window is the backpressure). `detach` ends it without touching the socket (StartTLS takes it over).
 */
function incoming(sock: Socket, count: (n: number) => void): { stream: ReadableStream<Uint8Array>; detach(): void } {
  let detached = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onError = (e: Error) => {
    failure = e;
    poke();
  };
  sock.on('readable', poke).on('end', poke).on('close', poke).on('error', onError);
  const detach = () => {
    detached = true;
    sock.off('readable', poke).off('end', poke).off('close', poke).off('error', onError);
    poke();
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          if (detached) return controller.close();
          const chunk = sock.read() as Buffer | null;
          if (chunk) {
            count(chunk.length);
            return controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          }
          if (failure) return controller.error(new CordonError(`the connection failed: ${failure.message}`, { status: 502 }));
          if (sock.readableEnded || sock.destroyed) return controller.close();
          await new Promise<void>((resolve) => (wake = resolve));
        }
      },
      cancel() {
        sock.destroy();
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, detach };
}

/** Until `sock` is connected (TLS: handshake done), or a failure with workerd's message; at most `ms`. */
function established(sock: Socket, event: 'connect' | 'secureConnect', ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new CordonError(`${CANNOT_CONNECT} (no connection after ${ms} ms)`, { status: 502 }));
    }, ms);
    sock.once(event, () => {
      clearTimeout(timer);
      sock.off('error', failed);
      resolve();
    });
    const failed = (e: Error) => {
      clearTimeout(timer);
      reject(new CordonError(`${CANNOT_CONNECT} (${e.message})`, { status: 502 }));
    };
    sock.once('error', failed);
  });
}

/** What the worker may know of the peer's certificate: copied as bounded strings, never an object of Node's. */
export function peerCertificate(sock: TLSSocket): PeerCertificate {
  const c = sock.getPeerCertificate() as Partial<PeerCertificate> | null;
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, PEER_FIELD_MAX) : '');
  const names = (v: unknown) => {
    const out: Record<string, string> = {};
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v).slice(0, 32)) out[k.slice(0, 64)] = Array.isArray(x) ? text(x.join('\n')) : text(x);
    return out;
  };
  return {
    subject: names(c?.subject),
    issuer: names(c?.issuer),
    subjectaltname: text(c?.subjectaltname),
    valid_from: text(c?.valid_from),
    valid_to: text(c?.valid_to),
    fingerprint256: text(c?.fingerprint256),
    serialNumber: text(c?.serialNumber),
  };
}

const address = (host: string | undefined, port: number | undefined) => (host?.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** One open socket, as the worker's sandbox holds it. Upgraded by startTls(), it is done: the new one carries on. */
class SocketCap extends RpcTarget implements SocketApi {
  #sock: Socket;
  readonly #state: SocketState;
  #detach: () => void;
  #done = false;

  constructor(sock: Socket, state: SocketState, detach: () => void) {
    super();
    this.#sock = sock;
    this.#state = state;
    this.#detach = detach;
  }

  #live(): Socket {
    if (this.#done) throw new Error('this socket was upgraded by startTls() or closed: use the socket startTls() returned');
    return this.#sock;
  }

  async write(data: unknown): Promise<void> {
    if (!(data instanceof Uint8Array) || data.byteLength > MAX_WRITE) throw new TypeError(`a write is bytes, at most ${MAX_WRITE} of them`);
    const sock = this.#live();
    this.#state.bytesOut += data.byteLength;
    await new Promise<void>((resolve, reject) => sock.write(data, (e) => (e ? reject(new Error(`the connection failed: ${e.message}`)) : resolve())));
  }

  /** The worker closed its writable side (half-close). */
  async end(): Promise<void> {
    this.#live().end();
  }

  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#sock.destroy();
  }

  /** The sandbox let go of this socket (or lost its session): it closes, unless startTls() handed it on. */
  [Symbol.dispose](): void {
    if (!this.#done) this.#sock.destroy();
    this.#done = true;
  }

  async startTls(expectedServerHostname: unknown): Promise<OpenedSocket> {
    const sock = this.#live();
    if (this.#state.options.secureTransport !== 'starttls')
      throw new TypeError("The `secureTransport` socket option must be set to 'starttls' for startTls to be used.");
    if (this.#state.upgraded) throw new TypeError('startTls() can be called once per socket');
    const servername = typeof expectedServerHostname === 'string' && expectedServerHostname ? expectedServerHostname : this.#state.servername;
    this.#done = true;
    this.#state.upgraded = true;
    this.#detach();
    sock.setTimeout(0);
    const secure = this.#state.watch(tlsConnect({ socket: sock, host: this.#state.host, servername }));
    await established(secure, 'secureConnect', this.#state.timeoutMs);
    return this.#state.opened(secure);
  }
}

interface SocketState {
  /** The host the worker named, unbracketed: what a certificate is checked against. */
  host: string;
  options: SocketOptions;
  upgraded: boolean;
  /** Time-out, error and end handling, and the count released on close: for the socket and for its TLS successor. */
  watch<S extends Socket>(sock: S): S;
  servername: string | undefined;
  timeoutMs: number;
  bytesIn: number;
  bytesOut: number;
  opened(sock: Socket | TLSSocket): OpenedSocket;
}

/** One write is at most this long (the worker's WritableStream cuts longer chunks). */
export const MAX_WRITE = 1024 * 1024;

/** Opens a socket for `workerId` under `policy`, or refuses (EgressDenied: audited) or fails (the destination's fault). */
export async function openSocket(
  target: { hostname: string; port: number },
  options: SocketOptions,
  policy: WorkerPolicy,
  workerId: string,
  counts: SocketCounts,
  deps: SocketDeps,
): Promise<OpenedSocket> {
  const { hostname, port } = target;
  // Workers refuses port 25 (SMTP): mail goes through a provider's API or submission ports 587/465.
  if (port === 25) throw new EgressDenied('connect() to port 25 is not allowed (use a mail provider or the submission ports 587 and 465)');
  const { url, policy: socketPolicy } = socketTarget(hostname, port, policy);
  const pinned = await pin(url, socketPolicy, deps.resolver);
  if (deps.ownPorts.includes(port) && isOwnAddress(pinned.address))
    throw new EgressDenied(`${url.hostname}:${port} is this platform's own listener; a worker reaches other workers through its bindings or fetch()`);
  if (!counts.take(workerId, deps.maxSockets)) throw new EgressDenied(`too many open sockets: a worker may have ${deps.maxSockets} at once`);
  const destination = `${url.hostname}:${port}`;
  const servername = /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname;
  let released = false;
  const state: SocketState = {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    options,
    upgraded: false,
    servername,
    watch: (sock) => {
      sock.on('close', () => {
        if (released) return;
        released = true;
        counts.release(workerId);
        deps.closed(workerId, destination, state.bytesIn, state.bytesOut);
      });
      sock.on('error', () => {}); // reported to whoever reads or writes; never a crash
      // Workers' default: when the other side ends, so does ours (allowHalfOpen: false).
      sock.on('end', () => void (options.allowHalfOpen || sock.end()));
      sock.setTimeout(deps.timeoutMs, () => sock.destroy());
      return sock;
    },
    timeoutMs: deps.timeoutMs,
    bytesIn: 0,
    bytesOut: 0,
    opened: (sock) => {
      const { stream, detach } = incoming(sock, (n) => void (state.bytesIn += n));
      return {
        stream,
        socket: new SocketCap(sock, state, detach),
        remoteAddress: address(sock.remoteAddress, sock.remotePort),
        ...(sock instanceof TLSSocket ? { peerCertificate: peerCertificate(sock) } : {}),
      };
    },
  };
  const connectOptions = { host: pinned.address, port, family: pinned.family, allowHalfOpen: true };
  const sock = state.watch(options.secureTransport === 'on' ? tlsConnect({ ...connectOptions, servername }) : netConnect(connectOptions));
  try {
    await established(sock, options.secureTransport === 'on' ? 'secureConnect' : 'connect', deps.timeoutMs);
  } catch (e) {
    sock.destroy();
    throw e;
  }
  return state.opened(sock);
}
