/**
 * node:http's IncomingMessage (Node's `_http_incoming`), apart from the client and the server that both make
 * one (http.ts, http-server.ts), so that neither imports the other.
 */
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { STATUS_CODES as UNENV_STATUS_CODES } from 'unenv/node/http';

const STATUS_CODES = UNENV_STATUS_CODES as Record<number, string | undefined>;

/**
 * An answer (the client's), or a request (a server's: http-server.ts): status or method and URL, headers as
 * workerd gives them (lower case, repeated ones joined), and the body as a stream.
 */
export class IncomingMessage extends Readable {
  statusCode = 0;
  statusMessage = '';
  headers: Record<string, string> = {};
  rawHeaders: string[] = [];
  trailers: Record<string, string> = {};
  rawTrailers: string[] = [];
  httpVersion = '1.1';
  httpVersionMajor = 1;
  httpVersionMinor = 1;
  complete = false;
  url = '';
  method: string | null = null;
  /** A server's request: the stand-in socket it came on (http-server.ts); a client's answer has none. */
  socket: object | null = null;
  #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  constructor(message?: Response | Request) {
    super();
    if (!message) return;
    if (message instanceof Request) {
      const url = new URL(message.url);
      this.method = message.method;
      this.url = `${url.pathname}${url.search}`;
    } else {
      this.statusCode = message.status;
      this.statusMessage = message.statusText || STATUS_CODES[message.status] || '';
    }
    // Repeated headers joined with ", ", set-cookie included: workerd's answer (Node's own keeps set-cookie an array).
    for (const [name, raw] of message.headers) {
      // A request's joined Host is its first, as workerd gives a server (Node keeps the first).
      const value = name === 'host' && message instanceof Request ? raw.split(', ', 1)[0]! : raw;
      const before = this.headers[name];
      this.headers[name] = before === undefined ? value : `${before}, ${value}`;
      this.rawHeaders.push(name, value);
    }
    this.#reader = message.body?.getReader();
  }

  get connection(): object | null {
    return this.socket;
  }

  override _read(): void {
    if (!this.#reader) {
      this.complete = true;
      this.push(null);
      return;
    }
    this.#reader.read().then(
      ({ done, value }) => {
        if (done) {
          this.complete = true;
          this.push(null);
        } else this.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      },
      (e: unknown) => this.destroy(e as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.complete) this.#reader?.cancel().catch(() => {});
    callback(error);
  }

  setTimeout(_ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    return this;
  }
}
