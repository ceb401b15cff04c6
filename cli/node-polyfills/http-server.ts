/**
 * `node:http` servers as workerd has them (from the 2025-09-01 compatibility date, or with the
 * enable_nodejs_http_server_modules flag): nothing listens on a socket. `listen(port)` enters the server in
 * this isolate's table of ports, and `httpServerHandler` (cloudflare-node.ts) hands the worker's requests
 * to the server on a port. A request becomes an IncomingMessage (a Readable over the request body), the
 * ServerResponse a Response whose body streams what the handler writes, from the moment its headers are
 * sent (first write, or end) — so a handler that never ends its response holds the request until the
 * worker's wall limit, as any worker waiting forever does.
 */
import type { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { IncomingMessage } from './http-incoming.ts';
import { OutgoingMessage, sendHeaders, type HeaderValue } from './http-outgoing.ts';
import { nodeError } from './node-error.ts';

/** Bundle-time answer (a define, cli/nodejs-compat.ts): whether the worker's date or flags give it servers. */
declare const __CORDON_HTTP_SERVER__: boolean;

type Handler = (request: Request) => Promise<Response>;
type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** The servers listening in this isolate, by port (workerd's portMapper). */
const ports = new Map<number, Handler>();

/** The handler of the server listening on `port`, if any. */
export const listeningOn = (port: number): Handler | undefined => ports.get(port);

function notImplemented(what: string): never {
  throw nodeError(
    Error,
    `The ${what} method is not implemented: node:http servers need the 2025-09-01 compatibility date or the enable_nodejs_http_server_modules flag`,
    'ERR_METHOD_NOT_IMPLEMENTED',
  );
}

/** How many bytes of the response body may wait for the client before the handler's writes wait too. */
const HIGH_WATER_MARK = 64 * 1024;

/** The answer a handler writes, turned into a Response once its headers are sent. */
export class ServerResponse extends OutgoingMessage {
  statusCode = 200;
  // workerd's default reason phrase, whatever the status (Node's would be STATUS_CODES[statusCode]).
  statusMessage = 'unknown';
  sendDate = false;
  finished = false;
  readonly req: IncomingMessage;
  #controller: ReadableStreamDefaultController<Uint8Array> | undefined;
  /** A write waiting for the client to read (backpressure), called once the stream wants more. */
  #waiting: (() => void) | undefined;
  readonly #response: Promise<Response>;
  #resolve!: (response: Response) => void;
  #reject!: (error: unknown) => void;

  constructor(req: IncomingMessage) {
    if (!__CORDON_HTTP_SERVER__) notImplemented('ServerResponse');
    super({ decodeStrings: true });
    this.req = req;
    this.#response = new Promise<Response>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  /** The Response, once the handler has sent its headers. */
  static response(res: ServerResponse): Promise<Response> {
    return res.#response;
  }

  /** writeHead(status[, reason][, headers]); the headers go with the first write or end, as Node sends them. */
  writeHead(statusCode: number, reason?: string | Record<string, HeaderValue> | HeaderValue[], headers?: Record<string, HeaderValue> | HeaderValue[]): this {
    if (this.headersSent) throw nodeError(Error, 'Cannot write headers after they are sent to the client', 'ERR_HTTP_HEADERS_SENT');
    if (typeof reason !== 'string') [headers, reason] = [reason, undefined];
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999)
      throw nodeError(RangeError, `Invalid status code: ${statusCode}`, 'ERR_HTTP_INVALID_STATUS_CODE');
    this.statusCode = statusCode;
    if (reason !== undefined) this.statusMessage = reason;
    if (Array.isArray(headers)) for (let i = 0; i + 1 < headers.length; i += 2) this.appendHeader(String(headers[i]), headers[i + 1] as HeaderValue);
    else for (const [name, value] of Object.entries(headers ?? {})) if (value !== undefined) this.setHeader(name, value);
    return this;
  }

  flushHeaders(): void {
    this.#send();
  }
  writeContinue(): void {
    throw nodeError(Error, 'The writeContinue method is not implemented', 'ERR_METHOD_NOT_IMPLEMENTED');
  }
  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    return this;
  }

  /** No body for HEAD, 1xx, 204 and 304 (the Fetch API refuses one; Node drops what is written). */
  get #hasBody(): boolean {
    return this.req.method !== 'HEAD' && this.statusCode !== 204 && this.statusCode !== 304 && this.statusCode >= 200;
  }

  #send(): void {
    const headers = sendHeaders(this);
    if (!headers) return;
    const body = this.#hasBody
      ? new ReadableStream<Uint8Array>(
          {
            start: (controller) => {
              this.#controller = controller;
            },
            pull: () => {
              const go = this.#waiting;
              this.#waiting = undefined;
              go?.();
            },
            // The client went away: the handler's stream is destroyed (its 'close' tells it).
            cancel: () => {
              this.destroy();
            },
          },
          { highWaterMark: HIGH_WATER_MARK, size: (chunk) => chunk.byteLength },
        )
      : null;
    try {
      this.#resolve(new Response(body, { status: this.statusCode, statusText: this.statusMessage, headers }));
    } catch (e) {
      this.#reject(e);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send();
    const controller = this.#controller;
    if (!controller || chunk.byteLength === 0) return callback();
    controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    if ((controller.desiredSize ?? 1) > 0) callback();
    else this.#waiting = () => callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#send();
    this.finished = true;
    this.#controller?.close();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const e = error ?? nodeError(Error, 'The response was destroyed before it ended', 'ERR_STREAM_DESTROYED');
    if (!this.headersSent) this.#reject(e);
    else if (!this.finished) {
      try {
        this.#controller?.error(e);
      } catch {
        // Already closed or cancelled by the client: nothing is waiting for it.
      }
    }
    callback(error);
  }
}

/** A port as Node takes it (a number or numeric string, 0 for any free one). */
function validPort(port: unknown): number {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535)
    throw nodeError(RangeError, `options.port should be >= 0 and < 65536. Received ${String(port)}.`, 'ERR_SOCKET_BAD_PORT');
  return n;
}

export class Server extends EventEmitter {
  timeout = 0;
  keepAliveTimeout = 5000;
  requestTimeout = 0;
  headersTimeout = 0;
  maxHeadersCount: number | null = null;
  #port: number | null = null;

  constructor(options?: object | RequestListener, listener?: RequestListener) {
    if (!__CORDON_HTTP_SERVER__) notImplemented('Server');
    super();
    if (typeof options === 'function') listener = options as RequestListener;
    if (listener) this.on('request', listener);
  }

  get listening(): boolean {
    return this.#port !== null;
  }

  /** listen([port][, host][, backlog][, callback]) or listen({ port }[, callback]): the port is entered here; nothing opens. */
  listen(...args: unknown[]): this {
    const callback = typeof args.at(-1) === 'function' ? (args.pop() as () => void) : undefined;
    const first = args[0];
    const asked = first !== null && typeof first === 'object' ? (first as { port?: unknown }).port : first;
    const port = asked === undefined || asked === null ? 0 : validPort(asked);
    if (this.#port !== null || ports.has(port))
      throw nodeError(Error, 'Listen method has been called more than once without closing.', 'ERR_SERVER_ALREADY_LISTEN');
    this.#port = port === 0 ? freePort() : port;
    ports.set(this.#port, (request) => this.#onRequest(request));
    if (callback) this.once('listening', callback);
    queueMicrotask(() => this.emit('listening'));
    return this;
  }

  close(callback?: (error?: Error) => void): this {
    if (this.#port !== null) ports.delete(this.#port);
    this.#port = null;
    if (callback) this.once('close', callback);
    queueMicrotask(() => this.emit('close'));
    return this;
  }

  address(): { port: number; family: string; address: string } | null {
    return this.#port === null ? null : { port: this.#port, family: 'IPv4', address: '127.0.0.1' };
  }

  setTimeout(ms?: number | (() => void), callback?: () => void): this {
    if (typeof ms === 'function') callback = ms;
    else if (typeof ms === 'number') this.timeout = ms;
    if (callback) this.once('timeout', callback);
    return this;
  }
  closeAllConnections(): void {}
  closeIdleConnections(): void {}
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  async #onRequest(request: Request): Promise<Response> {
    const req = new IncomingMessage(request);
    // No socket exists: workerd's stand-in, readable until the body ends (on-finished, so body-parser, reads a body only then), with
    // the loopback address whoever the client is (the client's own is in cf-connecting-ip).
    const socket = Object.assign(new EventEmitter(), {
      readable: true,
      encrypted: false,
      remoteAddress: '127.0.0.1',
      remotePort: 49152 + Math.floor(Math.random() * 16384),
      localPort: this.#port,
    });
    req.socket = socket;
    req.once('end', () => {
      socket.readable = false;
    });
    const res = new ServerResponse(req);
    try {
      this.emit('request', req, res);
    } catch (e) {
      res.destroy(e as Error);
      throw e;
    }
    return await ServerResponse.response(res);
  }
}

/** A port no server here listens on, for listen(0): bounded, as workerd's search is. */
function freePort(): number {
  for (let i = 0; i < 10; i++) {
    const port = 1 + Math.floor(Math.random() * 65535);
    if (!ports.has(port)) return port;
  }
  throw new Error('Failed to find a suitable port after 10 attempts');
}

export function createServer(options?: object | RequestListener, listener?: RequestListener): Server {
  return new Server(options, listener);
}
