/**
 * The `node:http` client as workerd has it (from the 2025-08-15 compatibility date, or with the
 * enable_nodejs_http_modules flag): `request` and `get` build a request on the worker's own `fetch()`,
 * so egress's destination rules, limits, subrequest count and audit apply unchanged (this module opens
 * nothing itself). A ClientRequest is a Writable whose body is sent when it ends; the answer is an
 * IncomingMessage, a Readable over the response body, read as the worker reads it. Redirects are not
 * followed (Node's behaviour). Servers are http-server.ts; the constants and Agent are unenv's (an Agent
 * pools nothing here: fetch() has no sockets to keep).
 */
import { Buffer } from 'node:buffer';
import { Agent, METHODS as UNENV_METHODS, maxHeaderSize, STATUS_CODES as UNENV_STATUS_CODES } from 'unenv/node/http';
import { IncomingMessage } from './http-incoming.ts';
import { OutgoingMessage, sendHeaders, type HeaderValue } from './http-outgoing.ts';
import { createServer, Server, ServerResponse } from './http-server.ts';
import { nodeError } from './node-error.ts';

const METHODS = UNENV_METHODS as string[];
const STATUS_CODES = UNENV_STATUS_CODES as Record<number, string | undefined>;

type Callback = (res: IncomingMessage) => void;

export interface RequestOptions {
  protocol?: string | null;
  host?: string | null;
  hostname?: string | null;
  port?: number | string | null;
  defaultPort?: number | string;
  path?: string | null;
  method?: string;
  headers?: Record<string, HeaderValue | undefined>;
  auth?: string | null;
  timeout?: number;
  signal?: AbortSignal;
  agent?: unknown;
}

/** Headers fetch() sets itself, or refuses from a caller. */
const FETCH_OWNS = new Set(['host', 'content-length', 'connection', 'transfer-encoding', 'keep-alive', 'expect']);

/** `new URL(...)`, a string, or options, merged as Node merges `request(url, options, callback)`. */
function target(defaultProtocol: string, input: unknown, options: RequestOptions): { url: URL; method: string } {
  let o: RequestOptions = options;
  if (typeof input === 'string' || input instanceof URL) {
    const u = new URL(String(input));
    o = {
      protocol: u.protocol,
      hostname: u.hostname,
      port: u.port,
      path: `${u.pathname}${u.search}`,
      auth: u.username ? `${u.username}:${u.password}` : null,
      ...options,
    };
  }
  const protocol = o.protocol ?? defaultProtocol;
  if (protocol !== 'http:' && protocol !== 'https:')
    throw nodeError(TypeError, `Protocol "${protocol}" not supported. Expected "${defaultProtocol}"`, 'ERR_INVALID_PROTOCOL');
  const host = o.hostname ?? o.host?.replace(/:\d+$/, '') ?? 'localhost';
  const port = o.port ?? o.defaultPort ?? '';
  const path = o.path ?? '/';
  if (/[\u0000-\u0020]/.test(path)) throw nodeError(TypeError, 'Request path contains unescaped characters', 'ERR_UNESCAPED_CHARACTERS');
  const url = new URL(`${protocol}//${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}${port === '' ? '' : `:${port}`}${path}`);
  const method = (o.method ?? 'GET').toUpperCase();
  if (!METHODS.includes(method)) throw nodeError(TypeError, `Invalid method "${method}"`, 'ERR_INVALID_HTTP_TOKEN');
  return { url, method };
}

/** An outgoing request: headers until it is sent, a body written to it, sent when it ends (or at once by `get`). */
export class ClientRequest extends OutgoingMessage {
  readonly method: string;
  readonly path: string;
  readonly host: string;
  readonly protocol: string;
  aborted = false;
  reusedSocket = false;
  maxHeadersCount: number | null = null;
  readonly #url: URL;
  readonly #chunks: Buffer[] = [];
  readonly #abort = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(defaultProtocol: string, input: unknown, options?: RequestOptions | Callback, callback?: Callback) {
    super();
    if (typeof options === 'function') [callback, options] = [options, undefined];
    // request(options[, callback]) or request(url[, options][, callback]).
    const byOptions = typeof input === 'object' && input !== null && !(input instanceof URL);
    const o: RequestOptions = byOptions ? { ...(input as RequestOptions), ...options } : (options ?? {});
    const { url, method } = target(defaultProtocol, byOptions ? undefined : input, o);
    this.#url = url;
    this.method = method;
    this.path = `${url.pathname}${url.search}`;
    this.host = url.hostname;
    this.protocol = url.protocol;
    for (const [name, value] of Object.entries(o.headers ?? {})) if (value !== undefined) this.setHeader(name, value);
    const auth = o.auth ?? (url.username ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}` : undefined);
    if (auth && !this.hasHeader('authorization')) this.setHeader('authorization', `Basic ${Buffer.from(auth).toString('base64')}`);
    if (o.signal) o.signal.addEventListener('abort', () => this.destroy(nodeError(Error, 'The operation was aborted', 'ABORT_ERR')), { once: true });
    if (o.timeout !== undefined) this.setTimeout(o.timeout);
    if (callback) this.once('response', callback);
  }

  flushHeaders(): void {}
  setNoDelay(): void {}
  setSocketKeepAlive(): void {}

  setTimeout(ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    clearTimeout(this.#timer);
    if (ms > 0) this.#timer = setTimeout(() => this.emit('timeout'), ms);
    return this;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
    this.destroy();
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    const headers = sendHeaders(this, FETCH_OWNS) ?? new Headers();
    const body = this.#chunks.length && this.method !== 'GET' && this.method !== 'HEAD' ? Buffer.concat(this.#chunks) : undefined;
    fetch(this.#url, { method: this.method, headers, body, redirect: 'manual', signal: this.#abort.signal }).then(
      (response) => {
        clearTimeout(this.#timer);
        callback();
        const res = new IncomingMessage(response);
        res.url = this.#url.href;
        // With nobody listening, the answer is read and dropped, as Node does, so the request ends.
        if (!this.emit('response', res)) res.resume();
      },
      (e: unknown) => {
        clearTimeout(this.#timer);
        callback(e instanceof Error ? e : new Error(String(e)));
      },
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    this.#abort.abort();
    callback(error);
  }
}

export function request(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  return new ClientRequest('http:', input, options, callback);
}

export function get(input: unknown, options?: RequestOptions | Callback, callback?: Callback): ClientRequest {
  const req = request(input, options, callback);
  req.end();
  return req;
}

export const globalAgent = new Agent();
export { Agent, createServer, IncomingMessage, METHODS, maxHeaderSize, OutgoingMessage, Server, ServerResponse, STATUS_CODES };

export function validateHeaderName(name: string): void {
  if (typeof name !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name))
    throw nodeError(TypeError, `Header name must be a valid HTTP token ["${name}"]`, 'ERR_INVALID_HTTP_TOKEN');
}
export function validateHeaderValue(name: string, value: unknown): void {
  if (value === undefined) throw nodeError(TypeError, `Invalid value "${value}" for header "${name}"`, 'ERR_HTTP_INVALID_HEADER_VALUE');
  if (/[^\t\u0020-\u007e\u0080-\u00ff]/.test(String(value))) throw nodeError(TypeError, `Invalid character in header content ["${name}"]`, 'ERR_INVALID_CHAR');
}

export default {
  Agent,
  ClientRequest,
  IncomingMessage,
  METHODS,
  OutgoingMessage,
  STATUS_CODES,
  Server,
  ServerResponse,
  createServer,
  get,
  globalAgent,
  maxHeaderSize,
  request,
  validateHeaderName,
  validateHeaderValue,
};
