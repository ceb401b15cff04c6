/** Headers (Fetch standard): names and values checked as the standard says, kept in order. */

const NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Fetch: a header value is a ByteString (no code unit above U+00FF) without NUL, CR or LF.
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/;
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
