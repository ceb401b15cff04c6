/** Response (Fetch standard), with Workers' 101 + webSocket for a WebSocket upgrade. */
import type { URL } from 'whatwg-url';
import { url as urlUnit } from './url.ts';
import { Headers, type HeadersInit } from './headers.ts';
import { Body, toSource, type BodyInit } from './body.ts';

/**
 * Fetch: a status text is a reason phrase (tab, space, visible ASCII, obs-text); else a TypeError at the
 * call. Its code units compared, not a regular expression (compiled in each new isolate: headers.ts).
 */
export function isReasonPhrase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\t' && (c < ' ' || c > '\u00ff' || c === '\u007f')) return false;
  }
  return true;
}

export interface ResponseInit {
  status?: number;
  statusText?: string;
  headers?: HeadersInit;
  /** Workers: the client end of a WebSocketPair, with status 101. */
  webSocket?: unknown;
}

export class Response extends Body {
  readonly status: number;
  readonly statusText: string;
  readonly headers: Headers;
  readonly webSocket: unknown;
  constructor(body: BodyInit = null, init: ResponseInit = {}) {
    const headers = new Headers(init.headers);
    const status = init.status ?? 200;
    const upgrade = status === 101 && init.webSocket !== undefined && init.webSocket !== null;
    if (!Number.isInteger(status) || ((status < 200 || status > 599) && !upgrade))
      throw new RangeError(`Response status ${status} is outside 200-599 (101 only with a webSocket)`);
    const statusText = init.statusText === undefined ? '' : String(init.statusText);
    if (!isReasonPhrase(statusText))
      throw new TypeError(`Invalid statusText ${JSON.stringify(statusText.slice(0, 100))}: only tab, space, visible ASCII and Latin-1 characters are allowed`);
    const source = toSource(body, headers);
    if (source && (status === 204 || status === 205 || status === 304)) throw new TypeError(`Response with status ${status} cannot have a body`);
    super(source);
    this.status = status;
    this.statusText = statusText;
    this.headers = headers;
    this.webSocket = upgrade ? init.webSocket : null;
  }
  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }
  get redirected(): boolean {
    return false;
  }
  get type(): string {
    return errors.has(this) ? 'error' : 'default';
  }
  /** A constructed response has no URL list (a fetched one gets its URL as its own property, fetch.ts). */
  get url(): string {
    return '';
  }
  clone(): Response {
    if (this.bodyUsed) throw new TypeError('Cannot clone a Response whose body was used');
    const copy = new Response(null, { status: this.status, statusText: this.statusText, headers: this.headers });
    Body.adopt(copy, Body.fork(this));
    return copy;
  }
  static json(data: unknown, init: ResponseInit = {}): Response {
    const headers = new Headers(init.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(data), { ...init, headers });
  }
  static redirect(url: string | URL, status = 302): Response {
    if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Invalid redirect status ${status}`);
    return new Response(null, { status, headers: { location: new (urlUnit().URL)(String(url)).href } });
  }
  /** Fetch's network error: type "error", status 0, no body, headers that cannot change. */
  static error(): Response {
    const r = new Response(null);
    Object.defineProperties(r, { status: { value: 0 }, headers: { value: new ImmutableHeaders() } });
    errors.add(r);
    return r;
  }
}

const errors = new WeakSet<Response>();

/** Headers whose guard is "immutable" (Fetch): every change is a TypeError. */
class ImmutableHeaders extends Headers {
  #sealed = true;
  append(name: string, value: string): void {
    if (this.#sealed) throw new TypeError('Headers are immutable');
    super.append(name, value);
  }
  set(name: string, value: string): void {
    if (this.#sealed) throw new TypeError('Headers are immutable');
    super.set(name, value);
  }
  delete(name: string): void {
    if (this.#sealed) throw new TypeError('Headers are immutable');
    super.delete(name);
  }
}
