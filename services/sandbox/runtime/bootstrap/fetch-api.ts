/**
 * Headers, Request and Response for the isolate: the subset of the Fetch standard a Workers fetch
 * handler uses. A body is known bytes (the fast path: what crosses the isolate boundary) or a
 * ReadableStream of Uint8Array (web-streams-polyfill); `body` is always a stream, made from the bytes
 * when first asked for. Hand-written glue: no maintained pure-JS Fetch implementation runs without
 * Node or a DOM.
 */
import { TextDecoder, TextEncoder } from './encoding.ts';
import { URL, URLSearchParams } from 'whatwg-url';
import { ReadableStream } from 'web-streams-polyfill';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const U8 = Uint8Array;
const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Fetch: a header value is a ByteString (no code unit above U+00FF) without NUL, CR or LF; a status
// text is a reason phrase (tab, space, visible ASCII, obs-text). Either is a TypeError at the call.
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/;
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;
const defineProperty = Object.defineProperty;

function normalizeValue(v: unknown): string {
  return String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

export type HeadersInit = Headers | [string, string][] | Record<string, string>;

export class Headers {
  #list: [string, string][] = [];
  constructor(init?: HeadersInit) {
    if (init === undefined || init === null) return;
    if (init instanceof Headers) for (const [k, v] of init.#list) this.#list.push([k, v]);
    else if (typeof (init as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const pair of init as Iterable<unknown>) {
        const p = [...(pair as Iterable<unknown>)];
        if (p.length !== 2) throw new TypeError('Headers constructor: each header must be a [name, value] pair');
        this.append(String(p[0]), String(p[1]));
      }
    } else for (const k of Object.keys(init)) this.append(k, (init as Record<string, string>)[k]!);
  }
  #check(name: string): string {
    const n = String(name);
    if (!NAME.test(n)) throw new TypeError(`Invalid header name: ${JSON.stringify(n)}`);
    return n.toLowerCase();
  }
  append(name: string, value: string): void {
    const v = normalizeValue(value);
    if (BAD_VALUE.test(v)) throw new TypeError(`Invalid header value for ${name}: NUL, CR, LF and characters above U+00FF are not allowed`);
    this.#list.push([this.#check(name), v]);
  }
  set(name: string, value: string): void {
    const n = this.#check(name);
    this.#list = this.#list.filter(([k]) => k !== n);
    this.append(n, value);
  }
  get(name: string): string | null {
    const n = this.#check(name);
    const values = this.#list.filter(([k]) => k === n).map(([, v]) => v);
    return values.length ? values.join(', ') : null;
  }
  getSetCookie(): string[] {
    return this.#list.filter(([k]) => k === 'set-cookie').map(([, v]) => v);
  }
  has(name: string): boolean {
    const n = this.#check(name);
    return this.#list.some(([k]) => k === n);
  }
  delete(name: string): void {
    const n = this.#check(name);
    this.#list = this.#list.filter(([k]) => k !== n);
  }
  *entries(): IterableIterator<[string, string]> {
    const names = [...new Set(this.#list.map(([k]) => k))].sort();
    for (const n of names) {
      if (n === 'set-cookie') for (const v of this.getSetCookie()) yield [n, v];
      else yield [n, this.get(n)!];
    }
  }
  keys(): IterableIterator<string> {
    return (function* (h: Headers) {
      for (const [k] of h.entries()) yield k;
    })(this);
  }
  values(): IterableIterator<string> {
    return (function* (h: Headers) {
      for (const [, v] of h.entries()) yield v;
    })(this);
  }
  forEach(fn: (value: string, name: string, headers: Headers) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
  /**
   * Every header line in order, set-cookie kept apart: what crosses to the host. A copy made without
   * any method a tenant could have patched (Array.prototype.map, iterators, index setters).
   */
  static raw(h: Headers): [string, string][] {
    const list = h.#list;
    const out: [string, string][] = [];
    for (let i = 0; i < list.length; i++) {
      const pair = list[i]!;
      defineProperty(out, i, { value: [pair[0], pair[1]], writable: true, enumerable: true, configurable: true });
    }
    return out;
  }
}

type BlobPart = string | ArrayBuffer | ArrayBufferView | Blob;

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new U8(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export class Blob {
  readonly #bytes: Uint8Array;
  readonly #type: string;
  constructor(parts: BlobPart[] = [], options: { type?: string } = {}) {
    this.#bytes = concat(
      [...parts].map((p) => {
        if (p instanceof Blob) return p.#bytes;
        if (p instanceof ArrayBuffer) return new U8(p.slice(0));
        if (ArrayBuffer.isView(p)) return new U8(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength) as ArrayBuffer);
        return encoder.encode(String(p));
      }),
    );
    const type = String(options.type ?? '');
    this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : '';
  }
  get size(): number {
    return this.#bytes.byteLength;
  }
  get type(): string {
    return this.#type;
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.#bytes.slice().buffer as ArrayBuffer;
  }
  async bytes(): Promise<Uint8Array> {
    return this.#bytes.slice();
  }
  async text(): Promise<string> {
    return decoder.decode(this.#bytes);
  }
  slice(start = 0, end = this.size, type = ''): Blob {
    return new Blob([this.#bytes.slice(start, end)], { type });
  }
  /** The bytes, for the runtime. */
  static peek(b: Blob): Uint8Array {
    return b.#bytes;
  }
}

export class File extends Blob {
  readonly name: string;
  readonly lastModified: number;
  constructor(parts: BlobPart[], name: string, options: { type?: string; lastModified?: number } = {}) {
    super(parts, options);
    this.name = String(name);
    this.lastModified = options.lastModified ?? Date.now();
  }
}

type FormValue = string | File;

export class FormData {
  #entries: [string, FormValue][] = [];
  #value(value: unknown, filename?: string): FormValue {
    if (value instanceof Blob) return value instanceof File && filename === undefined ? value : new File([value], filename ?? 'blob', { type: value.type });
    return String(value);
  }
  append(name: string, value: unknown, filename?: string): void {
    this.#entries.push([String(name), this.#value(value, filename)]);
  }
  set(name: string, value: unknown, filename?: string): void {
    const n = String(name);
    const i = this.#entries.findIndex(([k]) => k === n);
    this.#entries = this.#entries.filter(([k], j) => k !== n || j === i);
    if (i < 0) this.append(n, value, filename);
    else this.#entries[this.#entries.findIndex(([k]) => k === n)] = [n, this.#value(value, filename)];
  }
  get(name: string): FormValue | null {
    return this.#entries.find(([k]) => k === String(name))?.[1] ?? null;
  }
  getAll(name: string): FormValue[] {
    return this.#entries.filter(([k]) => k === String(name)).map(([, v]) => v);
  }
  has(name: string): boolean {
    return this.#entries.some(([k]) => k === String(name));
  }
  delete(name: string): void {
    this.#entries = this.#entries.filter(([k]) => k !== String(name));
  }
  *entries(): IterableIterator<[string, FormValue]> {
    yield* this.#entries.map(([k, v]) => [k, v] as [string, FormValue]);
  }
  *keys(): IterableIterator<string> {
    for (const [k] of this.#entries) yield k;
  }
  *values(): IterableIterator<FormValue> {
    for (const [, v] of this.#entries) yield v;
  }
  forEach(fn: (value: FormValue, name: string, form: FormData) => void, thisArg?: unknown): void {
    for (const [k, v] of this.#entries) fn.call(thisArg, v, k, this);
  }
  [Symbol.iterator](): IterableIterator<[string, FormValue]> {
    return this.entries();
  }
}

const quote = (s: string) => s.replace(/[\r\n"]/g, (c) => (c === '"' ? '%22' : c === '\r' ? '%0D' : '%0A'));

/** multipart/form-data, as the HTML standard encodes it. */
function encodeMultipart(form: FormData): { bytes: Uint8Array; type: string } {
  let boundary = '----cordon';
  for (let i = 0; i < 24; i++) boundary += '0123456789abcdef'[Math.floor(Math.random() * 16)];
  const chunks: Uint8Array[] = [];
  for (const [name, value] of form) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"`;
    if (typeof value === 'string') {
      chunks.push(encoder.encode(`${head}\r\n\r\n${value.replace(/\r?\n|\r/g, '\r\n')}\r\n`));
    } else {
      head += `; filename="${quote(value.name)}"\r\nContent-Type: ${value.type || 'application/octet-stream'}\r\n\r\n`;
      chunks.push(encoder.encode(head), Blob.peek(value), encoder.encode('\r\n'));
    }
  }
  chunks.push(encoder.encode(`--${boundary}--\r\n`));
  return { bytes: concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

/** Parse a multipart/form-data or urlencoded body (the two kinds `formData()` accepts). */
function decodeForm(bytes: Uint8Array, contentType: string): FormData {
  const form = new FormData();
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) {
    for (const [k, v] of new URLSearchParams(decoder.decode(bytes))) form.append(k, v);
    return form;
  }
  const boundary = /^multipart\/form-data;.*boundary="?([^";]+)"?/i.exec(contentType)?.[1];
  if (!boundary) throw new TypeError('formData(): the body is neither multipart/form-data nor application/x-www-form-urlencoded');
  // Latin-1 keeps byte offsets equal to string offsets, so file parts survive byte for byte.
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  for (const part of text.split(`--${boundary}`).slice(1)) {
    if (part.startsWith('--')) break;
    const split = part.indexOf('\r\n\r\n');
    if (split < 0) throw new TypeError('formData(): malformed multipart body');
    const head = part.slice(2, split);
    const body = part.slice(split + 4, part.endsWith('\r\n') ? -2 : undefined);
    const name = /name="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined) throw new TypeError('formData(): a part has no name');
    const filename = /filename="([^"]*)"/i.exec(head)?.[1];
    const raw = U8.from(body, (c) => c.charCodeAt(0));
    if (filename === undefined) form.append(name, decoder.decode(raw));
    else form.append(name, new File([raw], filename, { type: /content-type:\s*([^\r\n]+)/i.exec(head)?.[1] ?? '' }));
  }
  return form;
}

export type BodyInit = string | ArrayBuffer | ArrayBufferView | URLSearchParams | Blob | FormData | ReadableStream<Uint8Array> | null | undefined;

type Source = { bytes: Uint8Array } | { stream: ReadableStream<Uint8Array> } | null;

function toSource(body: BodyInit, headers: Headers): Source {
  if (body instanceof ReadableStream) return { stream: body };
  const bytes = toBytes(body, headers);
  return bytes === null ? null : { bytes };
}

function toBytes(body: Exclude<BodyInit, ReadableStream>, headers: Headers): Uint8Array | null {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') {
    if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    return encoder.encode(body);
  }
  if (body instanceof URLSearchParams) {
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    return encoder.encode(body.toString());
  }
  if (body instanceof Blob) {
    if (!headers.has('content-type') && body.type) headers.set('content-type', body.type);
    return Blob.peek(body).slice();
  }
  if (body instanceof FormData) {
    const { bytes, type } = encodeMultipart(body);
    headers.set('content-type', type);
    return bytes;
  }
  if (body instanceof ArrayBuffer) return new U8(body.slice(0));
  if (ArrayBuffer.isView(body)) return new U8(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer);
  const s = String(body);
  if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  return encoder.encode(s);
}

/** Every chunk of a body stream, joined; chunks must be bytes, and `max` bounds the total. */
async function readAll(stream: ReadableStream<Uint8Array>, max = Infinity): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!(value instanceof U8)) {
      await reader.cancel();
      throw new TypeError('a body stream must give Uint8Array chunks');
    }
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new RangeError(`the body is over ${max} bytes`);
    }
    chunks.push(value);
  }
  return concat(chunks);
}

abstract class Body {
  #bytes: Uint8Array | null;
  #stream: ReadableStream<Uint8Array> | null;
  #used = false;
  constructor(source: Source) {
    this.#bytes = source && 'bytes' in source ? source.bytes : null;
    this.#stream = source && 'stream' in source ? source.stream : null;
  }
  get bodyUsed(): boolean {
    return this.#used || (this.#stream !== null && this.#bytes === null && this.#stream.locked);
  }
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream === null && this.#bytes !== null) {
      const bytes = this.#bytes;
      this.#stream = new ReadableStream<Uint8Array>({
        start(controller) {
          if (bytes.byteLength) controller.enqueue(bytes.slice());
          controller.close();
        },
      });
      this.#bytes = null; // from now on the stream is the body: reading it uses it
    }
    return this.#stream;
  }
  async #consume(): Promise<Uint8Array> {
    if (this.bodyUsed) throw new TypeError('Body has already been used');
    this.#used = true;
    if (this.#bytes !== null) return this.#bytes;
    return this.#stream ? readAll(this.#stream) : new U8(0);
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.#consume();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  async bytes(): Promise<Uint8Array> {
    return new U8(await this.arrayBuffer());
  }
  async text(): Promise<string> {
    return decoder.decode(await this.#consume());
  }
  async blob(): Promise<Blob> {
    const type = (this as unknown as { headers: Headers }).headers.get('content-type') ?? '';
    return new Blob([await this.#consume()], { type });
  }
  async formData(): Promise<FormData> {
    const type = (this as unknown as { headers: Headers }).headers.get('content-type') ?? '';
    return decodeForm(await this.#consume(), type);
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
  /** The body as a source for a copy: bytes shared, or one branch of the stream (the other stays here). */
  static fork(b: Body): Source {
    if (b.#bytes !== null) return { bytes: b.#bytes };
    if (b.#stream === null) return null;
    const [mine, theirs] = b.#stream.tee();
    b.#stream = mine;
    return { stream: theirs };
  }
  /** Give a fresh body (of a copy) the source `fork` made. */
  static adopt(b: Body, source: Source): void {
    b.#bytes = source && 'bytes' in source ? source.bytes : null;
    b.#stream = source && 'stream' in source ? source.stream : null;
  }
  /** Brand check for the runtime: throws unless `b` is a real Request or Response. */
  static check(b: Body): void {
    void b.#used;
  }
  /** For the runtime: a body still to be streamed out (a stream nobody read), taken over (the body is used then). */
  static takeStream(b: Body): ReadableStream<Uint8Array> | null {
    if (b.#bytes !== null || b.#stream === null || b.bodyUsed) return null;
    b.#used = true;
    return b.#stream;
  }
  /** The whole body as bytes for the runtime (a stream is read to its end, at most `max` bytes; the body is used then). */
  static async read(b: Body, max = Infinity): Promise<Uint8Array | null> {
    if (b.#bytes !== null) return b.#bytes;
    if (b.#stream === null) return null;
    if (b.bodyUsed) throw new TypeError('Body has already been used');
    b.#used = true;
    return readAll(b.#stream, max);
  }
}

export interface RequestInit {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit;
  redirect?: string;
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
    this.url = new URL(base ? base.url : String(input)).href;
    this.method = method;
    this.headers = headers;
    this.redirect = init.redirect ?? base?.redirect ?? 'follow';
  }
  clone(): Request {
    if (this.bodyUsed) throw new TypeError('Cannot clone a Request whose body was used');
    return new Request(this);
  }
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
    if (!Number.isInteger(status) || ((status < 200 || status > 599) && !upgrade)) throw new RangeError(`Response status ${status} is outside 200-599 (101 only with a webSocket)`);
    const statusText = init.statusText === undefined ? '' : String(init.statusText);
    if (!REASON_PHRASE.test(statusText)) throw new TypeError(`Invalid statusText ${JSON.stringify(statusText.slice(0, 100))}: only tab, space, visible ASCII and Latin-1 characters are allowed`);
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
    return 'default';
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
    return new Response(null, { status, headers: { location: new URL(String(url)).href } });
  }
  static error(): Response {
    throw new TypeError('Response.error() is not supported');
  }
}

export { Body, URL, URLSearchParams };
