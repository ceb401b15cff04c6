/** FormData, and the two body encodings `formData()` reads: multipart/form-data and urlencoded. */
import { TextDecoder, TextEncoder } from './encoding.ts';
import { url } from './url.ts';
import { Blob, concat, File } from './blob.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const U8 = Uint8Array;

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
export function encodeMultipart(form: FormData): { bytes: Uint8Array; type: string } {
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
export function decodeForm(bytes: Uint8Array, contentType: string): FormData {
  const form = new FormData();
  if (/^application\/x-www-form-urlencoded/i.test(contentType)) {
    for (const [k, v] of new (url().URLSearchParams)(decoder.decode(bytes))) form.append(k, v);
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
