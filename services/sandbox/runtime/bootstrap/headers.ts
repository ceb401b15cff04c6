/** Headers (Fetch standard): names and values checked as the standard says, kept in order. */

/*
 * The checks below walk the string's code units rather than run a regular expression: V8 compiles each
 * regular expression in each new isolate on its first use (~30 µs each), and every new isolate (a Dynamic
 * Worker's above all) checks headers on its first request. Indexing a string and comparing strings are
 * not methods a tenant can replace; the table has no prototype.
 */
const TOKEN: Record<string, true> = Object.create(null);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TOKEN[c] = true;

/** Fetch: a header name is an HTTP token (one or more tchar). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TOKEN[s[i]!] !== true) return false;
  return true;
}

/** Fetch: a header value is a ByteString (no code unit above U+00FF) without NUL, CR or LF. */
export function isHeaderValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\0' || c === '\r' || c === '\n' || c > '\u00ff') return false;
  }
  return true;
}
const defineProperty = Object.defineProperty;

const isHttpWhitespace = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
function normalizeValue(v: unknown): string {
  const s = String(v);
  // Most values have nothing to strip: two character checks rather than a regular expression's scan.
  if (s.length > 0 && !isHttpWhitespace(s.charCodeAt(0)) && !isHttpWhitespace(s.charCodeAt(s.length - 1))) return s;
  return s.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
}

export type HeadersInit = Headers | [string, string][] | Record<string, string>;

export class Headers {
  #list: [string, string][] = [];
  constructor(init?: HeadersInit) {
    if (init === undefined) return;
    // WebIDL's (sequence or record) conversion: an object, @@iterator read once to pick the sequence,
    // else a record from its own enumerable string keys (the order of reads the standard gives).
    if ((typeof init !== 'object' && typeof init !== 'function') || init === null)
      throw new TypeError(
        "Failed to construct 'Headers': The provided value is not of type '(record<ByteString, ByteString> or sequence<sequence<ByteString>>)'.",
      );
    const iterate = (init as Iterable<unknown>)[Symbol.iterator];
    if (iterate !== undefined && iterate !== null) {
      if (typeof iterate !== 'function') throw new TypeError("Failed to construct 'Headers': @@iterator is not a function");
      for (const pair of { [Symbol.iterator]: () => Reflect.apply(iterate, init, []) as Iterator<unknown> }) {
        if ((typeof pair !== 'object' && typeof pair !== 'function') || pair === null)
          throw new TypeError('Headers constructor: each header must be a [name, value] pair');
        const p = [...(pair as Iterable<unknown>)];
        if (p.length !== 2) throw new TypeError('Headers constructor: each header must be a [name, value] pair');
        this.append(String(p[0]), String(p[1]));
      }
      return;
    }
    for (const key of Reflect.ownKeys(init)) {
      const desc = Reflect.getOwnPropertyDescriptor(init, key);
      if (!desc?.enumerable) continue;
      if (typeof key === 'symbol') throw new TypeError('Headers constructor: a header name cannot be a Symbol');
      this.append(key, String((init as Record<string, unknown>)[key]));
    }
  }
  #check(name: string): string {
    const n = String(name);
    if (!isToken(n)) throw new TypeError(`Invalid header name: ${JSON.stringify(n)}`);
    return n.toLowerCase();
  }
  append(name: string, value: string): void {
    const v = normalizeValue(value);
    if (!isHeaderValue(v)) throw new TypeError(`Invalid header value for ${name}: NUL, CR, LF and characters above U+00FF are not allowed`);
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
  /** The sort-and-combine view the iterators walk (set-cookie values kept apart), recomputed at each step. */
  #pairs(): [string, string][] {
    const out: [string, string][] = [];
    for (const n of [...new Set(this.#list.map(([k]) => k))].sort()) {
      if (n === 'set-cookie') for (const v of this.getSetCookie()) out.push([n, v]);
      else out.push([n, this.get(n)!]);
    }
    return out;
  }
  entries(): IterableIterator<[string, string]> {
    return headersIterator(this, 'entries') as IterableIterator<[string, string]>;
  }
  keys(): IterableIterator<string> {
    return headersIterator(this, 'keys') as IterableIterator<string>;
  }
  values(): IterableIterator<string> {
    return headersIterator(this, 'values') as IterableIterator<string>;
  }
  /** For the iterators: pair `i` of the current view, or undefined past its end. */
  static pairAt(h: Headers, i: number): [string, string] | undefined {
    return h.#pairs()[i];
  }
  forEach(fn: (value: string, name: string, headers: Headers) => void, thisArg?: unknown): void {
    if (typeof fn !== 'function') throw new TypeError("Failed to execute 'forEach' on 'Headers': parameter 1 is not of type 'Function'.");
    for (let i = 0, p = Headers.pairAt(this, 0); p; p = Headers.pairAt(this, ++i)) fn.call(thisArg, p[1], p[0], this);
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

type Kind = 'keys' | 'values' | 'entries';
/**
 * WebIDL's default iterator object for `Headers`: its prototype inherits from %IteratorPrototype%, has
 * `next` and the tag "Headers Iterator", and it walks the live sorted view (a header added while
 * iterating is seen, as the standard says). Its state is a private field, not a WeakMap: the runtime
 * iterates a response's headers after tenant code ran, and WeakMap's methods are the tenant's to patch.
 */
class HeadersIterator {
  readonly #target: Headers;
  readonly #kind: Kind;
  #index = 0;
  constructor(target: Headers, kind: Kind) {
    this.#target = target;
    this.#kind = kind;
  }
  static next(it: unknown): IteratorResult<unknown> {
    if (typeof it !== 'object' || it === null || !(#target in it)) throw new TypeError("Failed to execute 'next' on 'Headers Iterator': Illegal invocation");
    const state = it as HeadersIterator;
    const pair = Headers.pairAt(state.#target, state.#index);
    if (!pair) return { value: undefined, done: true };
    state.#index++;
    return { value: state.#kind === 'keys' ? pair[0] : state.#kind === 'values' ? pair[1] : pair, done: false };
  }
}
// `next` as an ordinary method (named "next", not a constructor), on a prototype under %IteratorPrototype%.
const step = HeadersIterator.next;
const methods = {
  next(this: unknown) {
    return step(this);
  },
};
Object.setPrototypeOf(HeadersIterator.prototype, Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())) as object);
// WebIDL's iterator prototypes have no `constructor` of their own.
Reflect.deleteProperty(HeadersIterator.prototype, 'constructor');
Object.defineProperties(HeadersIterator.prototype, {
  next: { value: methods.next, writable: true, enumerable: true, configurable: true },
  [Symbol.toStringTag]: { value: 'Headers Iterator', configurable: true },
});
function headersIterator(target: Headers, kind: Kind): object {
  return new HeadersIterator(target, kind);
}
