/**
 * `node:tls` as workerd has it under nodejs_compat: `tls.connect` is a node:net socket opened with
 * cloudflare:sockets' `secureTransport: 'on'`, so egress does the TLS and checks the certificate against
 * the host asked for (as workerd does, whatever `servername` says); a socket that connects is therefore
 * authorized. Servers cannot exist in a worker: createServer throws workerd's message. The constants and
 * the rest are unenv's, as workerd exports the same names.
 */
import { type ConnectOptions, Socket } from './net.ts';
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

export class TLSSocket extends Socket {
  readonly encrypted = true;
  authorized = false;
  authorizationError: Error | null = null;
  alpnProtocol: string | false = false;

  constructor(options: { allowHalfOpen?: boolean } = {}) {
    super(options);
    this.once('secureConnect', () => (this.authorized = true));
  }

  override connect(...args: Parameters<Socket['connect']>): this {
    const [first, ...rest] = args;
    const options = first !== null && typeof first === 'object' ? first : { port: first as number | string };
    return super.connect({ ...options, secureTransport: 'on' }, ...rest);
  }

  getPeerCertificate(): Record<string, never> {
    return {};
  }
  getProtocol(): string | null {
    return null;
  }
}

type Listener = () => void;

/** Node's forms: (options[, cb]) and (port[, host][, options][, cb]). */
export function connect(...args: unknown[]): TLSSocket {
  const cb = typeof args[args.length - 1] === 'function' ? (args.pop() as Listener) : undefined;
  let options: ConnectOptions & { servername?: string } = {};
  for (const a of args) {
    if (a !== null && typeof a === 'object') options = { ...options, ...(a as ConnectOptions) };
    else if (typeof a === 'number' || (typeof a === 'string' && options.port === undefined && /^\d+$/.test(a))) options.port = a;
    else if (typeof a === 'string') options.host = a;
  }
  if (options.port === undefined)
    throw Object.assign(new TypeError('The "options" or "port" or "path" argument must be specified'), { code: 'ERR_MISSING_ARGS' });
  const socket = new TLSSocket(options);
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
