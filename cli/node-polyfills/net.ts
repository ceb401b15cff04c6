/**
 * `node:net` as workerd has it under nodejs_compat: client sockets only, each a Node Duplex over the
 * runtime's own cloudflare:sockets `connect()`, so every byte goes through egress with the same policy,
 * limits and audit as connect() (this module opens nothing itself). Servers cannot exist in a worker:
 * createServer throws workerd's message. What workerd reports before and after connecting is mirrored
 * (remoteAddress is the host asked for, localAddress 0.0.0.0:0), and errors from egress (a refusal, a
 * refused connection) arrive as the socket's 'error' with connect()'s message.
 */
import { Buffer } from 'node:buffer';
import { Duplex } from 'node:stream';
import { connect as openSocket, type Socket as RawSocket } from 'cloudflare:sockets';
import { BlockList, SocketAddress } from 'unenv/node/net';

const nodeError = (Ctor: ErrorConstructor, message: string, code: string) => Object.assign(new Ctor(message), { code });

// Node's own address grammar (lib/internal/net.js), as workerd's isIP uses it.
const v4Seg = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const v4Str = `(?:${v4Seg}\\.){3}${v4Seg}`;
const IPV4 = new RegExp(`^${v4Str}$`);
const v6Seg = '(?:[0-9a-fA-F]{1,4})';
const IPV6 = new RegExp(
  '^(?:' +
    `(?:${v6Seg}:){7}(?:${v6Seg}|:)|` +
    `(?:${v6Seg}:){6}(?:${v4Str}|:${v6Seg}|:)|` +
    `(?:${v6Seg}:){5}(?::${v4Str}|(?::${v6Seg}){1,2}|:)|` +
    `(?:${v6Seg}:){4}(?:(?::${v6Seg}){0,1}:${v4Str}|(?::${v6Seg}){1,3}|:)|` +
    `(?:${v6Seg}:){3}(?:(?::${v6Seg}){0,2}:${v4Str}|(?::${v6Seg}){1,4}|:)|` +
    `(?:${v6Seg}:){2}(?:(?::${v6Seg}){0,3}:${v4Str}|(?::${v6Seg}){1,5}|:)|` +
    `(?:${v6Seg}:){1}(?:(?::${v6Seg}){0,4}:${v4Str}|(?::${v6Seg}){1,6}|:)|` +
    `(?::(?:(?::${v6Seg}){0,5}:${v4Str}|(?::${v6Seg}){1,7}|:))` +
    ')(?:%[0-9a-zA-Z-.:]{1,})?$',
);
export const isIPv4 = (input: unknown): boolean => IPV4.test(String(input));
export const isIPv6 = (input: unknown): boolean => IPV6.test(String(input));
export const isIP = (input: unknown): 0 | 4 | 6 => (isIPv4(input) ? 4 : isIPv6(input) ? 6 : 0);

export interface ConnectOptions {
  port?: number | string;
  host?: string;
  path?: string;
  allowHalfOpen?: boolean;
  /** tls.connect's: TLS from the start (cloudflare:sockets' secureTransport 'on'). */
  secureTransport?: 'off' | 'on';
}
type Listener = () => void;
type ConnectArgs = [ConnectOptions | number | string, ...unknown[]];

/** Node's argument forms: (options[, cb]), (port[, host][, cb]); a path is a Unix socket, which a worker has none of. */
export function _normalizeArgs(args: unknown[]): [ConnectOptions, Listener | null] {
  const last = args[args.length - 1];
  const cb = typeof last === 'function' ? (last as Listener) : null;
  const first = args[0];
  if (first !== null && typeof first === 'object') return [{ ...(first as ConnectOptions) }, cb];
  if (typeof first === 'string' && !/^\d+$/.test(first)) return [{ path: first }, cb];
  const options: ConnectOptions = {};
  if (first !== undefined && typeof first !== 'function') options.port = first as number;
  if (typeof args[1] === 'string') options.host = args[1];
  return [options, cb];
}

function checkPort(port: unknown): number {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535)
    throw nodeError(Error, `Port should be >= 0 and < 65536. Received ${typeof port}.`, 'ERR_SOCKET_BAD_PORT');
  return n;
}

export class Socket extends Duplex {
  connecting = false;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  remoteFamily: string | undefined;
  localAddress: string | undefined;
  localPort: number | undefined;
  bytesRead = 0;
  #raw: RawSocket | undefined;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #reading = false;
  #hadError = false;
  /** Its connection went on as TLS in a TLSSocket (_startTls): what this one still had in flight is not its own. */
  #handedOver = false;
  timeout = 0;
  #idle: ReturnType<typeof setTimeout> | undefined;

  constructor(options: { allowHalfOpen?: boolean } = {}) {
    // The underlying socket is always half-open: this Duplex ends our side as Node's allowHalfOpen says.
    super({ allowHalfOpen: options.allowHalfOpen === true, decodeStrings: true });
  }

  get readyState(): string {
    if (this.connecting) return 'opening';
    if (this.readable && this.writable) return 'open';
    if (this.readable) return 'readOnly';
    if (this.writable) return 'writeOnly';
    return 'closed';
  }

  get pending(): boolean {
    return this.#raw === undefined || this.connecting;
  }

  connect(...args: ConnectArgs): this {
    const [options, cb] = _normalizeArgs(args);
    if (options.path !== undefined) throw nodeError(TypeError, `The argument 'path' is not supported. Received '${options.path}'`, 'ERR_INVALID_ARG_VALUE');
    if (options.port === undefined) throw nodeError(TypeError, 'The "options" or "port" or "path" argument must be specified', 'ERR_MISSING_ARGS');
    if (this.#raw) throw nodeError(Error, 'Socket is already connected', 'ERR_SOCKET_CONNECTING');
    const port = checkPort(options.port);
    const host = options.host ?? 'localhost';
    const secure = options.secureTransport === 'on';
    if (cb) this.once(secure ? 'secureConnect' : 'connect', cb);
    this.remoteAddress = host;
    this.remotePort = port;
    this.remoteFamily = isIP(host) === 6 ? 'IPv6' : 'IPv4';
    // A plain connection is opened for StartTLS, so that node:tls can wrap it later (tls.connect({ socket })).
    this._attach(openSocket({ hostname: host, port }, { secureTransport: secure ? 'on' : 'starttls', allowHalfOpen: true }), { secure, connect: true });
    return this;
  }

  /**
   * Carry on over `raw` (opened, or TLS over this socket's connection): once it is open, 'secureConnect'
   * if `secure`, and 'connect' and 'ready' if this is the connection's first opening.
   */
  _attach(raw: RawSocket, events: { secure: boolean; connect: boolean }): void {
    this.connecting = true;
    this.#raw = raw;
    this.#writer = raw.writable.getWriter();
    raw.opened.then(
      (info) => {
        if (this.destroyed) return;
        this.connecting = false;
        this.localAddress = '0.0.0.0';
        this.localPort = 0;
        this._opened(info);
        if (events.secure) this.emit('secureConnect');
        if (events.connect) {
          this.emit('connect');
          this.emit('ready');
        }
        if (this.#reading) this.#pump();
      },
      (e: Error) => this.destroy(e),
    );
  }

  /** What the connection's opening said (node:tls reads the peer's certificate from it). */
  _opened(_info: object): void {}

  /**
   * StartTLS for node:tls (`tls.connect({ socket })`, `new TLSSocket(socket)`): the connection goes on as
   * TLS, egress checking the certificate against `servername` (or the host connected to); this socket
   * hands it over and neither reads nor writes again.
   */
  _startTls(servername: string | undefined): RawSocket {
    const raw = this.#raw;
    if (this.#handedOver) throw nodeError(Error, 'This socket was wrapped in TLS already: use the TLSSocket', 'ERR_TLS_INVALID_STATE');
    if (!raw || this.destroyed) throw nodeError(Error, 'This socket is not connected: connect it before wrapping it in TLS', 'ERR_SOCKET_CLOSED');
    if (raw.secureTransport !== 'starttls' || raw.upgraded)
      throw nodeError(Error, 'This socket is already TLS, or wrapped once already', 'ERR_TLS_INVALID_STATE');
    this.#raw = undefined;
    this.#reader = undefined;
    this.#writer?.releaseLock();
    this.#writer = undefined;
    this.#handedOver = true;
    return raw.startTls(servername ? { expectedServerHostname: servername } : {});
  }

  /** Reads from the socket while the stream wants more; the next read waits for the next `_read`. */
  #pump(): void {
    if (!this.#raw || this.connecting) return;
    this.#reader ??= this.#raw.readable.getReader();
    this.#reader.read().then(
      ({ done, value }) => {
        if (this.destroyed || this.#handedOver) return;
        if (done) return void this.push(null);
        this.bytesRead += value.byteLength;
        this.#touch();
        if (this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength))) this.#pump();
        else this.#reading = false;
      },
      (e: Error) => void (this.#handedOver || this.destroy(e)),
    );
  }

  override _read(): void {
    if (this.#reading && this.#reader) return;
    this.#reading = true;
    this.#pump();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.#writer)
      return cb(
        this.#handedOver
          ? nodeError(Error, 'This socket was wrapped in TLS: write to the TLSSocket', 'ERR_SOCKET_CLOSED')
          : nodeError(Error, 'This socket is not connected: call connect() first', 'ERR_SOCKET_CLOSED'),
      );
    // Before the connection is open the write waits for it; if it never opens, 'error' says why (once).
    this.#raw!.opened.then(
      () => {
        this.#touch();
        this.#writer!.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)).then(() => cb(), cb);
      },
      () => cb(),
    );
  }

  // Done once our end is handed on, as Node's is once its shutdown is queued ('finish' before the peer's 'end');
  // a failure to hand it on destroys the socket.
  override _final(cb: (e?: Error | null) => void): void {
    this.#writer?.close().catch((e: Error) => this.destroy(e));
    cb();
  }

  override _destroy(error: Error | null, cb: (e?: Error | null) => void): void {
    this.#hadError = error !== null;
    this.connecting = false;
    clearTimeout(this.#idle);
    const raw = this.#raw;
    if (!raw) return cb(error);
    raw.close().then(
      () => cb(error),
      () => cb(error),
    );
  }

  // Node's net 'close' carries whether the socket closed on an error.
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    return event === 'close' && args.length === 0 ? super.emit('close', this.#hadError) : super.emit(event, ...args);
  }

  address(): Record<string, never> {
    return {};
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  /** Node's idle timeout: 'timeout' once no bytes have moved either way for `ms` (0 turns it off); the socket stays open. */
  setTimeout(ms: number, cb?: Listener): this {
    this.timeout = ms > 0 ? ms : 0;
    if (cb) this.timeout ? this.once('timeout', cb) : this.removeListener('timeout', cb);
    this.#touch();
    return this;
  }

  #touch(): void {
    clearTimeout(this.#idle);
    this.#idle = this.timeout && !this.destroyed ? setTimeout(() => this.emit('timeout'), this.timeout) : undefined;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

export function connect(...args: ConnectArgs): Socket {
  const [options] = _normalizeArgs(args);
  if (options.port === undefined && options.path === undefined)
    throw nodeError(TypeError, 'The "options" or "port" or "path" argument must be specified', 'ERR_MISSING_ARGS');
  return new Socket(options).connect(...args);
}
export const createConnection = connect;

/** A worker cannot listen: workerd's Server and createServer throw (each its own message). */
export class Server {
  constructor() {
    throw new Error('Server is not implemented');
  }
}
export function createServer(): never {
  throw new Error('createServer() is not implemented');
}

let autoSelectFamily = false;
let autoSelectFamilyAttemptTimeout = 250;
export const getDefaultAutoSelectFamily = () => autoSelectFamily;
export const setDefaultAutoSelectFamily = (value: boolean) => void (autoSelectFamily = value === true);
export const getDefaultAutoSelectFamilyAttemptTimeout = () => autoSelectFamilyAttemptTimeout;
export const setDefaultAutoSelectFamilyAttemptTimeout = (value: number) => void (autoSelectFamilyAttemptTimeout = value);

export { BlockList, SocketAddress, Socket as Stream };

export default {
  BlockList,
  Server,
  Socket,
  SocketAddress,
  Stream: Socket,
  _normalizeArgs,
  connect,
  createConnection,
  createServer,
  getDefaultAutoSelectFamily,
  getDefaultAutoSelectFamilyAttemptTimeout,
  isIP,
  isIPv4,
  isIPv6,
  setDefaultAutoSelectFamily,
  setDefaultAutoSelectFamilyAttemptTimeout,
};
