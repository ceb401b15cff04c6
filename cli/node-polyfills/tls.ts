/**
 * `node:tls` as workerd has it under nodejs_compat: `tls.connect` is a node:net socket opened with
 * cloudflare:sockets' `secureTransport: 'on'`, so egress does the TLS and checks the certificate against
 * the host asked for (as workerd does, whatever `servername` says); a socket that connects is therefore
 * authorized. StartTLS — `tls.connect({ socket })`, `new TLSSocket(socket)` over a node:net socket —
 * is cloudflare:sockets' `startTls()` on that socket's connection, checked against `servername` (or the
 * host). `getPeerCertificate()` answers what egress saw of the certificate (workerd's throws "not
 * implemented"). Servers cannot exist in a worker: createServer throws workerd's message. The constants
 * and the rest are unenv's, as workerd exports the same names.
 */
import { type ConnectOptions, Socket } from './net.ts';
import { PEER_CERTIFICATE_KEY, type PeerCertificate } from '../../schemas/capabilities.ts';
import * as unenvTls from 'unenv/node/tls';

export const {
  CLIENT_RENEG_LIMIT,
  CLIENT_RENEG_WINDOW,
  DEFAULT_CIPHERS,
  DEFAULT_ECDH_CURVE,
  DEFAULT_MAX_VERSION,
  DEFAULT_MIN_VERSION,
  SecureContext,
  checkServerIdentity,
  convertALPNProtocols,
  createSecureContext,
  createSecurePair,
  getCiphers,
  rootCertificates,
} = unenvTls;

const PEER_CERTIFICATE = Symbol.for(PEER_CERTIFICATE_KEY);

interface TlsOptions extends ConnectOptions {
  servername?: string;
  socket?: unknown;
}

export class TLSSocket extends Socket {
  readonly encrypted = true;
  authorized = false;
  authorizationError: Error | null = null;
  alpnProtocol: string | false = false;
  #peer: PeerCertificate | undefined;

  /** Node's (socket[, options]): over `socket`'s connection (StartTLS), or a socket of its own to connect. */
  constructor(socket?: unknown, options: TlsOptions & { allowHalfOpen?: boolean } = {}) {
    super(options);
    this.once('secureConnect', () => (this.authorized = true));
    if (socket === undefined || socket === null) return;
    if (!(socket instanceof Socket))
      throw Object.assign(new TypeError('TLS over an existing socket needs a node:net socket (egress does the TLS on its connection)'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    this.remoteAddress = socket.remoteAddress;
    this.remotePort = socket.remotePort;
    this.remoteFamily = socket.remoteFamily;
    this._attach(socket._startTls(options.servername ?? options.host), { secure: true, connect: false });
  }

  override connect(...args: Parameters<Socket['connect']>): this {
    const [first, ...rest] = args;
    const options = first !== null && typeof first === 'object' ? first : { port: first as number | string };
    return super.connect({ ...options, secureTransport: 'on' }, ...rest);
  }

  override _opened(info: object): void {
    this.#peer = (info as { [PEER_CERTIFICATE]?: PeerCertificate })[PEER_CERTIFICATE];
  }

  /**
   * The peer's certificate as Node gives it, of the fields egress hands on (subject, issuer,
   * subjectaltname, valid_from, valid_to, fingerprint256, serialNumber); `{}` before the handshake.
   */
  getPeerCertificate(_detailed?: boolean): Partial<PeerCertificate> {
    const p = this.#peer;
    return p ? { ...p, subject: { ...p.subject }, issuer: { ...p.issuer } } : {};
  }
  getProtocol(): string | null {
    return null;
  }
}

type Listener = () => void;

/** Node's forms: (options[, cb]) and (port[, host][, options][, cb]). */
export function connect(...args: unknown[]): TLSSocket {
  const cb = typeof args[args.length - 1] === 'function' ? (args.pop() as Listener) : undefined;
  let options: TlsOptions = {};
  for (const a of args) {
    if (a !== null && typeof a === 'object') options = { ...options, ...(a as ConnectOptions) };
    else if (typeof a === 'number' || (typeof a === 'string' && options.port === undefined && /^\d+$/.test(a))) options.port = a;
    else if (typeof a === 'string') options.host = a;
  }
  if (options.socket !== undefined && options.socket !== null) {
    // StartTLS over a connected node:net socket: 'secureConnect' when the handshake is done.
    const wrapped = new TLSSocket(options.socket, options);
    if (cb) wrapped.once('secureConnect', cb);
    return wrapped;
  }
  if (options.port === undefined)
    throw Object.assign(new TypeError('The "options" or "port" or "path" argument must be specified'), { code: 'ERR_MISSING_ARGS' });
  const socket = new TLSSocket(undefined, options);
  return cb ? socket.connect(options, cb) : socket.connect(options);
}

/** A worker cannot listen: workerd's Server and createServer throw. */
export class Server {
  constructor() {
    throw new Error('Not implemented');
  }
}
export function createServer(): never {
  throw new Error('Not implemented');
}

export default {
  CLIENT_RENEG_LIMIT,
  CLIENT_RENEG_WINDOW,
  DEFAULT_CIPHERS,
  DEFAULT_ECDH_CURVE,
  DEFAULT_MAX_VERSION,
  DEFAULT_MIN_VERSION,
  SecureContext,
  Server,
  TLSSocket,
  checkServerIdentity,
  connect,
  convertALPNProtocols,
  createSecureContext,
  createSecurePair,
  createServer,
  getCiphers,
  rootCertificates,
};
