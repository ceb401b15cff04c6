/**
 * A console line from LogValues (abi.ts, made by bootstrap/log-mirror.ts): the values rebuilt here as
 * inert look-alikes (same constructor names, properties, accessors, holes, cycles, stacks; no tenant code,
 * getters that return nothing) and printed by Node's own util.format, which is what workerd prints with.
 * The isolate's side may be compromised: every node is checked, and the rebuild is bounded in nodes and
 * sizes, so a forged description costs at most a line saying it could not be printed.
 */
import { formatWithOptions } from 'node:util';
import type { LogNode, LogValue } from './abi.ts';

const MAX_NODES = 5000;
const MAX_NAME = 256;
/**
 * Bytes made per line for lengths to print right (a typed array's, an ArrayBuffer's, a long string's):
 * past it, a line is not printed. Its elements beyond the first 100 are never shown, only counted.
 */
const MAX_BYTES = 16 * 1024 * 1024;
const MAX_LINE = 64 * 1024;
const ERRORS: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };
const BASES: Record<string, new (...a: never[]) => object> = { array: Array, map: Map, set: Set, promise: Promise, weakmap: WeakMap, weakset: WeakSet };
const TYPED: Record<string, new (n: number) => ArrayLike<unknown> & Record<number, unknown>> = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
};

class Unprintable extends Error {}

const nameOf = (v: unknown): string => (typeof v === 'string' ? v.slice(0, MAX_NAME) : '');
const count = (v: unknown, max: number): number => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? Math.min(v, max) : 0);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** A class of that name (extending `base`), whose prototype carries `tag` as its Symbol.toStringTag. */
function named(name: string, base: (new (...a: never[]) => object) | null, tag?: string): new (...a: never[]) => object {
  // `extends B`, not `extends (…)`: util.inspect reads a class's source to print `[class K extends P]`.
  const B = (base ?? Object) as new () => object;
  const C = base ? { [name]: class extends B {} }[name]! : { [name]: class {} }[name]!;
  if (tag !== undefined) Object.defineProperty(C.prototype, Symbol.toStringTag, { value: tag, configurable: true });
  return C;
}

class Rebuild {
  nodes = 0;
  bytes = 0;
  /** `n` more bytes made for this line, within MAX_BYTES. */
  spend(n: number): number {
    this.bytes += n;
    if (this.bytes > MAX_BYTES) throw new Unprintable();
    return n;
  }
  readonly made = new Map<LogNode, unknown>();

  value(v: LogValue): unknown {
    if (v === null || typeof v !== 'object') return v;
    const known = this.made.get(v);
    if (known !== undefined) return known;
    if (++this.nodes > MAX_NODES) throw new Unprintable();
    return this.node(v);
  }

  node(n: LogNode): unknown {
    const c = n.c === null ? null : nameOf(n.c);
    // The isolate sends at most 100 of a container's elements: a forged description no more are used.
    const items = list(n.v).slice(0, 100);
    const keep = <T>(o: T): T => (this.made.set(n, o), o);
    switch (n.k) {
      case 'symbol':
        return keep(Symbol(typeof n.v === 'string' ? n.v : undefined));
      case 'string':
        return typeof n.v === 'string' ? n.v + '\0'.repeat(this.spend(2 * count(n.more, MAX_BYTES)) / 2) : '';
      case 'json': {
        const text = n.v;
        return keep({ toJSON: () => (n.c === 'circular' ? circular() : typeof text === 'string' ? JSON.parse(text) : undefined) });
      }
      case 'boxed':
        return this.props(n, keep(Object(this.value(n.v as LogValue))));
      case 'date':
        return this.props(n, keep(Reflect.construct(Date, [typeof n.v === 'number' ? n.v : Number.NaN], c && c !== 'Date' ? named(c, Date) : Date)));
      case 'regexp': {
        const [source, flags] = items;
        let re: RegExp;
        try {
          re = new RegExp(nameOfPattern(source), typeof flags === 'string' ? flags : '');
        } catch {
          re = /(?:)/;
        }
        return this.props(n, keep(re));
      }
      case 'error': {
        const [stack, message, name, ...cause] = items;
        // Always a class of our own (extending the built-in of that name, if any): its prototype takes the name, never the host's.
        const E = named(c ?? 'Error', c !== null && Object.hasOwn(ERRORS, c) ? ERRORS[c]! : Error);
        const e = keep(new (E as ErrorConstructor)(typeof message === 'string' ? message : ''));
        Object.defineProperty(e, 'stack', { value: typeof stack === 'string' ? stack : `${nameOf(name)}: ${message}`, configurable: true, writable: true });
        Object.defineProperty(E.prototype, 'name', { value: typeof name === 'string' ? nameOf(name) : 'Error', configurable: true, writable: true });
        if (cause.length) Object.defineProperty(e, 'cause', { value: this.value(cause[0] as LogValue), configurable: true, writable: true });
        return this.props(n, e);
      }
      case 'function': {
        const [fname, form, length, parent] = items;
        const name = nameOf(fname);
        let f: (...a: unknown[]) => unknown;
        if (form === 'class') f = (typeof parent === 'string' ? named(name, named(nameOf(parent), null)) : named(name, null)) as never;
        else if (form === 'AsyncFunction') f = async () => {};
        else if (form === 'GeneratorFunction') f = function* () {};
        else if (form === 'AsyncGeneratorFunction') f = async function* () {};
        else if (form === 'arrow') f = () => {};
        // biome-ignore lint/complexity/useArrowFunction: a plain function has a prototype, as the original had
        else f = function () {};
        Object.defineProperty(f, 'name', { value: name, configurable: true });
        Object.defineProperty(f, 'length', { value: count(length, 1 << 16), configurable: true });
        return this.props(n, keep(f));
      }
      case 'typed': {
        const T = c !== null && Object.hasOwn(TYPED, c) ? TYPED[c]! : Uint8Array;
        const length = items.length + count(n.more, MAX_BYTES);
        this.spend(length * ((T as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT ?? 1));
        const a = keep(new T(length));
        const big = c === 'BigInt64Array' || c === 'BigUint64Array';
        items.forEach((x, i) => {
          if (big ? typeof x === 'bigint' : typeof x === 'number') a[i] = x;
        });
        return a;
      }
      case 'arraybuffer': {
        const b = keep(new ArrayBuffer(this.spend(items.length + count(n.more, MAX_BYTES))));
        const bytes = new Uint8Array(b);
        items.forEach((x, i) => typeof x === 'number' && (bytes[i] = x));
        return b;
      }
      default:
    }
    const base = Object.hasOwn(BASES, n.k) ? BASES[n.k]! : null;
    const plainName = base ? base.name : 'Object';
    const C = c === plainName && n.t === undefined ? (base ?? Object) : named(c ?? plainName, base, n.t);
    const o: object =
      n.k === 'object' && c === null
        ? (Object.create(null) as object)
        : n.k === 'promise'
          ? new (C as PromiseConstructor)(() => {})
          : new (C as new () => object)();
    keep(o);
    if (n.deep) {
      // Not empty, so util.inspect prints `[Name]` rather than `{}` or `[]`.
      if (n.more) {
        if (n.k === 'array') (o as unknown[]).length = 1;
        else if (n.k === 'map') (o as Map<unknown, unknown>).set(0, 0);
        else if (n.k === 'set') (o as Set<unknown>).add(0);
        else Object.defineProperty(o, 'more', { value: 0, enumerable: true });
      }
      return o;
    }
    if (n.k === 'array') {
      const a = o as unknown[];
      a.length = items.length + count(n.more, 2 ** 32 - 1 - items.length);
      items.forEach((x, i) => {
        if (!(x && typeof x === 'object' && (x as LogNode).k === 'hole')) a[i] = this.value(x as LogValue);
      });
    } else if (n.k === 'map') for (const e of items) (o as Map<unknown, unknown>).set(this.value(list(e)[0] as LogValue), this.value(list(e)[1] as LogValue));
    else if (n.k === 'set') for (const x of items) (o as Set<unknown>).add(this.value(x as LogValue));
    return this.props(n, o);
  }

  /** Its own properties: values, or accessors that return nothing (util.inspect shows `[Getter]` without calling them). */
  props<T>(n: LogNode, o: T): T {
    if (o === null || (typeof o !== 'object' && typeof o !== 'function')) return o;
    for (const p of list(n.p)) {
      const [k, v, accessor, hidden] = list(p);
      const key = typeof k === 'string' ? k : this.value(k as LogValue);
      if (typeof key !== 'string' && typeof key !== 'symbol') continue;
      const enumerable = hidden !== true;
      const property: PropertyDescriptor =
        accessor === 1 || accessor === 2 || accessor === 3
          ? { get: accessor & 1 ? () => undefined : undefined, set: accessor & 2 ? () => {} : undefined, enumerable, configurable: true }
          : { value: this.value(v as LogValue), enumerable, writable: true, configurable: true };
      // A key the look-alike holds fixed (a class's `prototype`: only a forged description names it) is left as it is.
      Reflect.defineProperty(o as object, key, property);
    }
    return o;
  }
}

const nameOfPattern = (v: unknown): string => (typeof v === 'string' ? v : '(?:)');

function circular(): never {
  throw new TypeError('Converting circular structure to JSON');
}

/** The line util.format prints for these arguments; a line saying so if they cannot be printed. */
export function formatLog(args: unknown): string {
  try {
    if (!Array.isArray(args)) throw new Unprintable();
    const r = new Rebuild();
    const values = args.map((a) => r.value(a as LogValue));
    return formatWithOptions({}, ...values).slice(0, MAX_LINE);
  } catch {
    return '[a console line that could not be printed]';
  }
}
