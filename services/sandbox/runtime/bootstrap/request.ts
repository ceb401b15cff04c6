/** Request (Fetch standard, the part a Workers handler uses). */
import type { URL } from 'whatwg-url';
import { Headers, type HeadersInit } from './headers.ts';
import { Body, toSource, type BodyInit } from './body.ts';
import { isCanonicalHref } from './canonical-href.ts';
import { url as urlUnit } from './url.ts';

export interface RequestInit {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit;
  redirect?: string;
}

/**
 * `new URL(input).href`, the same string and the same error, without the URL object and its
 * URLSearchParams made only to read that (the string as URL's constructor converts it: a USVString).
 * A string that is already its own href (nearly every request's) is not parsed at all.
 */
function href(input: string): string {
  if (isCanonicalHref(input)) return input;
  const url = input.toWellFormed();
  const { parseURL, serializeURL } = urlUnit();
  const record = parseURL(url);
  if (record === null) throw new TypeError(`Invalid URL: ${url}`);
  return serializeURL(record);
}

export class Request extends Body {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
  readonly redirect: string;
  constructor(input: string | URL | Request, init: RequestInit = {}) {
    const base = input instanceof Request ? input : undefined;
    const headers = new Headers(init.headers ?? base?.headers);
    const method = String(init.method ?? base?.method ?? 'GET').toUpperCase();
    const source = init.body !== undefined ? toSource(init.body, headers) : base ? Body.fork(base) : null;
    if (source && (method === 'GET' || method === 'HEAD')) throw new TypeError('Request with GET/HEAD method cannot have body.');
    super(source);
    this.url = href(base ? base.url : String(input));
    this.method = method;
    this.headers = headers;
    this.redirect = init.redirect ?? base?.redirect ?? 'follow';
  }
  clone(): Request {
    if (this.bodyUsed) throw new TypeError('Cannot clone a Request whose body was used');
    return new Request(this);
  }
}
