/**
 * `import { connect } from 'cloudflare:sockets'`: TCP and TLS sockets, opened by egress through the
 * worker's fetch capability (the same policy, identity, limits and audit as fetch()). The bytes
 * received stream in as a fetch() body does (host-body.ts); each write is a capability call that
 * resolves once egress has handed the bytes on. Arguments are checked here as workerd checks them,
 * with workerd's messages; each connect() counts as a subrequest.
 */
import { streams } from './streams.ts';
import type { ReadableStream, ReadableStreamDefaultReader, WritableStream } from 'web-streams-polyfill';
import { requests } from './request-state.ts';
import { hostBody } from './host-body.ts';
import type { StreamedBodies } from './fetch.ts';
import { NO_GLOBAL_OUTBOUND } from '../abi.ts';
import { PEER_CERTIFICATE_KEY, type PeerCertificate } from '../../../../schemas/capabilities.ts';

type CallAsync = (handle: string, method: string, args: unknown[]) => Promise<unknown>;

/** What egress answers to connect() and startTls(), as the host passes it on. */
interface Connection {
  stream: number;
  socket: string;
  remoteAddress: string;
  peerCertificate?: PeerCertificate;
}

const PEER_CERTIFICATE = Symbol.for(PEER_CERTIFICATE_KEY);

interface Options {
  secureTransport: 'off' | 'on' | 'starttls';
  allowHalfOpen: boolean;
}

/** One write crosses to egress in pieces of at most this (egress's own bound). */
const MAX_WRITE = 1024 * 1024;

const TypeErrorCtor = TypeError;
const ErrorCtor = Error;
const U8 = Uint8Array;
const PromiseCtor = Promise;
const isView = ArrayBuffer.isView;

function parseAddress(address: unknown): { hostname: string; port: number } {
  let hostname: string;
  let port: unknown;
  if (typeof address === 'string') {
    const m = /^(?:\[([^\]]*)\]|([^:]*)):(.*)$/.exec(address);
    if (!m || /:/.test(m[3]!)) throw new TypeErrorCtor('Specified address is missing port.');
    hostname = m[1] ?? m[2]!;
    port = m[3] === '' ? Number.NaN : Number(m[3]);
  } else if (address !== null && typeof address === 'object') {
    const a = address as { hostname?: unknown; port?: unknown };
    hostname = String(a.hostname ?? '');
    port = a.port;
  } else throw new TypeErrorCtor('The address must be a string "host:port" or an object { hostname, port }.');
  const n = Number(port);
  if (!Number.isFinite(n)) throw new TypeErrorCtor('Specified address is missing port.');
  if (n > 65535) throw new TypeErrorCtor('Value out of range. Must be less than or equal to 65535.');
  if (n < 0) throw new TypeErrorCtor('Value out of range. Must be greater than or equal to 0.');
  if (hostname === '') throw new TypeErrorCtor('Specified address is missing hostname.');
  return { hostname, port: Math.trunc(n) };
}

function parseOptions(options: unknown): Options {
  const o = (options ?? {}) as { secureTransport?: unknown; allowHalfOpen?: unknown };
  const secureTransport = o.secureTransport === undefined ? 'off' : String(o.secureTransport);
  if (secureTransport !== 'off' && secureTransport !== 'on' && secureTransport !== 'starttls')
    throw new TypeErrorCtor(`Unsupported value in secureTransport socket option: ${secureTransport}`);
  return { secureTransport, allowHalfOpen: o.allowHalfOpen === true };
}

export interface SocketDeps {
  callCapAsync: CallAsync;
  bodies: StreamedBodies;
  /** Counts a subrequest (throws past the limit). */
  count(): void;
}

export class Socket {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** As workerd's: the address connected to (not egress's own, which the worker has no business knowing). */
  readonly opened: Promise<{ remoteAddress: string }>;
  readonly closed: Promise<void>;
  #upgraded = false;
  readonly #options: Options;
  readonly #connection: Promise<Connection>;
  readonly #deps: SocketDeps;
  #closing: Promise<void> | undefined;
  #ended: () => void = () => {};

  constructor(connection: Promise<Connection>, options: Options, deps: SocketDeps) {
    this.#connection = connection;
    this.#options = options;
    this.#deps = deps;
    let fail: (e: unknown) => void = () => {};
    this.closed = new PromiseCtor<void>((resolve, reject) => {
      this.#ended = resolve;
      fail = reject;
    });
    const failed = (e: unknown) => new ErrorCtor(e instanceof ErrorCtor ? e.message : String(e));
    this.opened = connection.then(
      (c) => ({ remoteAddress: c.remoteAddress, ...(c.peerCertificate ? { [PEER_CERTIFICATE]: c.peerCertificate } : {}) }),
      (e) => {
        const err = failed(e);
        fail(err);
        throw err;
      },
    );
    // Whoever reads these sees the failure; unread, it is no unhandled rejection.
    this.opened.catch(() => {});
    this.closed.catch(() => {});
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    this.readable = new (streams().ReadableStream)<Uint8Array>(
      {
        pull: async (controller) => {
          const c = await connection;
          reader ??= hostBody(deps.bodies.bodyRef, c.stream, deps.bodies.cancel).getReader();
          const { done, value } = await reader.read();
          if (!done) return controller.enqueue(value as Uint8Array);
          controller.close();
          // The other side is done; with allowHalfOpen false ours closed too (egress did it): the socket is closed.
          if (!this.#options.allowHalfOpen) this.#ended();
        },
        cancel: async () => {
          const c = await connection.catch(() => undefined);
          if (c) deps.bodies.cancel(c.stream);
        },
      },
      { highWaterMark: 0 },
    );
    this.writable = new (streams().WritableStream)<Uint8Array>({
      write: async (chunk: unknown) => {
        if (!isView(chunk) && !(chunk instanceof ArrayBuffer)) throw new TypeErrorCtor('A socket writes bytes: an ArrayBuffer or a view of one.');
        const bytes = isView(chunk) ? new U8(chunk.buffer, chunk.byteOffset, chunk.byteLength) : new U8(chunk as ArrayBuffer);
        const c = await connection;
        for (let at = 0; at < bytes.byteLength; at += MAX_WRITE) await deps.callCapAsync(c.socket, 'write', [bytes.slice(at, at + MAX_WRITE)]);
      },
      close: async () => {
        const c = await connection;
        await deps.callCapAsync(c.socket, 'end', []);
      },
      abort: () => void this.close(),
    });
  }

  get upgraded(): boolean {
    return this.#upgraded;
  }

  get secureTransport(): string {
    return this.#options.secureTransport;
  }

  /** Closes both directions; resolves (as `closed` does) once egress has closed the connection. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const c = await this.#connection.catch(() => undefined);
      if (c) {
        this.#deps.bodies.cancel(c.stream);
        await this.#deps.callCapAsync(c.socket, 'close', []).catch(() => {});
      }
      this.#ended();
    })();
    return this.#closing.then(() => this.closed);
  }

  /** TLS over this connection (`secureTransport: 'starttls'` only, once): a new socket; this one is done. */
  startTls(options?: { expectedServerHostname?: string }): Socket {
    if (this.#options.secureTransport !== 'starttls')
      throw new TypeErrorCtor("The `secureTransport` socket option must be set to 'starttls' for startTls to be used.");
    if (this.#upgraded) throw new TypeErrorCtor('Cannot call startTls more than once.');
    this.#upgraded = true;
    const expected = typeof options?.expectedServerHostname === 'string' ? options.expectedServerHostname : null;
    const next = this.#connection.then((c) => this.#deps.callCapAsync(c.socket, 'startTls', [expected]) as Promise<Connection>);
    this.#ended();
    return new Socket(next, { ...this.#options, secureTransport: 'on' }, this.#deps);
  }
}

/** The module's `connect`: checks as workerd does, then opens through egress (the answer arrives on `opened`). */
export function makeConnect(deps: SocketDeps): (address: unknown, options?: unknown) => Socket {
  return function connect(address: unknown, options?: unknown): Socket {
    // A Dynamic Worker loaded with globalOutbound: null has no network, as in workerd.
    if (requests.noOutbound) throw new ErrorCtor(NO_GLOBAL_OUTBOUND);
    if (requests.outbound)
      throw new ErrorCtor('connect() is not available to a Dynamic Worker whose globalOutbound is an entrypoint (only fetch() goes through it)');
    const target = parseAddress(address);
    const opts = parseOptions(options);
    deps.count();
    const connection = deps.callCapAsync('$fetch', 'connect', [target, opts]) as Promise<Connection>;
    return new Socket(connection, opts, deps);
  };
}
