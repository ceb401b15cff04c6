/**
 * Node's OutgoingMessage: the header list that ServerResponse (http-server.ts) and ClientRequest
 * (http.ts) share — case-insensitive by name, each name kept as first given, fixed once sent.
 */
import { Writable } from 'node:stream';
import { nodeError } from './node-error.ts';

export type HeaderValue = string | number | readonly string[];

/**
 * Marks `message`'s headers sent and gives them as fetch Headers, less the names in `skip` (lower case);
 * undefined if they were sent already. A function of this module, not a method: a worker sees Node's
 * members on these objects and no others.
 */
export let sendHeaders: (message: OutgoingMessage, skip?: ReadonlySet<string>) => Headers | undefined;

export class OutgoingMessage extends Writable {
  readonly #headers = new Map<string, [string, HeaderValue]>();
  #sent = false;

  static {
    sendHeaders = (message, skip) => {
      if (message.#sent) return undefined;
      message.#sent = true;
      const headers = new Headers();
      for (const [name, value] of message.#headers.values()) {
        if (skip?.has(name.toLowerCase())) continue;
        for (const v of Array.isArray(value) ? value : [value]) headers.append(name, String(v));
      }
      return headers;
    };
  }

  get headersSent(): boolean {
    return this.#sent;
  }

  setHeader(name: string, value: HeaderValue): this {
    if (this.#sent) throw nodeError(Error, 'Cannot set headers after they are sent to the client', 'ERR_HTTP_HEADERS_SENT');
    this.#headers.set(name.toLowerCase(), [name, value]);
    return this;
  }
  appendHeader(name: string, value: HeaderValue): this {
    const before = this.getHeader(name);
    const list = (v: HeaderValue | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [String(v)]);
    return this.setHeader(name, [...list(before), ...list(value)]);
  }
  getHeader(name: string): HeaderValue | undefined {
    return this.#headers.get(name.toLowerCase())?.[1];
  }
  hasHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase());
  }
  removeHeader(name: string): void {
    if (this.#sent) throw nodeError(Error, 'Cannot remove headers after they are sent to the client', 'ERR_HTTP_HEADERS_SENT');
    this.#headers.delete(name.toLowerCase());
  }
  getHeaders(): Record<string, HeaderValue> {
    return Object.fromEntries([...this.#headers].map(([k, [, v]]) => [k, v]));
  }
  getHeaderNames(): string[] {
    return [...this.#headers.keys()];
  }
  getRawHeaderNames(): string[] {
    return [...this.#headers.values()].map(([n]) => n);
  }
}
