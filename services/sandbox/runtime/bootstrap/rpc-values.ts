/**
 * Values crossing a Durable Object call (RPC arguments and results, async KV values): structured clone
 * as Workers does it — plain data, undefined, -0, NaN and ±Infinity, bigint, Date, RegExp, Map, Set,
 * ArrayBuffer and typed arrays, Error (name and message), cycles and shared references — encoded as
 * JSON text with tags, so the host and the supervisor carry it without looking inside. A function,
 * symbol or class instance other than those is a DataCloneError, as in Workers (stubs and functions
 * by reference are not carried yet: docs/durable-objects.md). One module, named for what it does, so
 * the Workers RPC of service bindings can share it.
 */
import { DOMException } from './encoding.ts';
import { b64 } from './bindings.ts';

const JSONstringify = JSON.stringify;
const JSONparse = JSON.parse;
const isArray = Array.isArray;
const objectProto = Object.prototype;
const getProto = Object.getPrototypeOf;
const keysOf = Object.keys;

/** Nesting deeper than this is refused (a value, not a data structure to walk without end). */
const MAX_DEPTH = 256;

type Tagged = null | boolean | number | string | Tagged[] | { [k: string]: Tagged };

const TYPED: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = {
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
  DataView: DataView as unknown as new (b: ArrayBuffer) => ArrayBufferView,
};

function cloneError(what: string): DOMException {
  return new DOMException(`${what} could not be cloned`, 'DataCloneError');
}

/** A value as tagged JSON: every object is `{ $t: kind, … }` (plain objects `$t: 'o'`), refs to ones seen `{ $r: n }`. */
export function encodeValue(value: unknown): string {
  const seen = new Map<object, number>();
  const walk = (v: unknown, depth: number): Tagged => {
    if (depth > MAX_DEPTH) throw cloneError('a value nested this deep');
    switch (typeof v) {
      case 'undefined':
        return { $t: 'u' };
      case 'boolean':
      case 'string':
        return v;
      case 'number':
        if (Number.isNaN(v) || !Number.isFinite(v) || Object.is(v, -0)) return { $t: 'n', v: String(v === 0 ? '-0' : v) };
        return v;
      case 'bigint':
        return { $t: 'b', v: v.toString() };
      case 'function':
      case 'symbol':
        throw cloneError(String(v));
    }
    if (v === null) return null;
    const o = v as object;
    const ref = seen.get(o);
    if (ref !== undefined) return { $r: ref };
    const n = seen.size;
    seen.set(o, n);
    if (isArray(o)) return { $t: 'a', v: o.map((x) => walk(x, depth + 1)) };
    if (o instanceof Date) return { $t: 'd', v: o.getTime() };
    if (o instanceof RegExp) return { $t: 'r', s: o.source, f: o.flags };
    if (o instanceof ArrayBuffer) return { $t: 'ab', v: b64.encode(new Uint8Array(o)) };
    if (ArrayBuffer.isView(o)) {
      const kind = o.constructor.name;
      if (!Object.hasOwn(TYPED, kind)) throw cloneError(kind);
      return { $t: 'ta', k: kind, v: b64.encode(new Uint8Array(o.buffer, o.byteOffset, o.byteLength)) };
    }
    if (o instanceof Map) return { $t: 'm', v: [...o].map(([k, x]) => [walk(k, depth + 1), walk(x, depth + 1)]) };
    if (o instanceof Set) return { $t: 's', v: [...o].map((x) => walk(x, depth + 1)) };
    if (o instanceof Error) return { $t: 'e', n: String(o.name), m: String(o.message) };
    const proto = getProto(o);
    if (proto !== objectProto && proto !== null)
      throw cloneError(`an instance of ${(proto as { constructor?: { name?: string } }).constructor?.name ?? 'a class'}`);
    const out: Record<string, Tagged> = {};
    for (const k of keysOf(o)) out[k] = walk((o as Record<string, unknown>)[k], depth + 1);
    return { $t: 'o', v: out };
  };
  return JSONstringify(walk(value, 0));
}

const ERRORS: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

/** The value encodeValue encoded (each decode makes fresh objects). */
export function decodeValue(text: string): unknown {
  const refs: unknown[] = [];
  const walk = (t: Tagged): unknown => {
    if (t === null || typeof t !== 'object') return t;
    if (isArray(t)) throw new TypeError('malformed value');
    if (typeof t.$r === 'number') return refs[t.$r];
    const v = t.v;
    switch (t.$t) {
      case 'u':
        return undefined;
      case 'n':
        return Number(v);
      case 'b':
        return BigInt(v as string);
    }
    const at = refs.length;
    refs.push(undefined);
    const keep = <T>(x: T): T => ((refs[at] = x), x);
    switch (t.$t) {
      case 'a': {
        const a = keep([] as unknown[]);
        for (const x of v as Tagged[]) a.push(walk(x));
        return a;
      }
      case 'd':
        return keep(new Date(v as number));
      case 'r':
        return keep(new RegExp(t.s as string, t.f as string));
      case 'ab': {
        const bytes = b64.decode(v as string);
        return keep(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      }
      case 'ta': {
        const bytes = b64.decode(v as string);
        const C = TYPED[t.k as string];
        if (!C) throw new TypeError('malformed value');
        const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
        return keep(C === (DataView as unknown) ? new DataView(buf) : new (C as unknown as new (b: ArrayBuffer) => ArrayBufferView)(buf));
      }
      case 'm': {
        const m = keep(new Map());
        for (const [k, x] of v as [Tagged, Tagged][]) m.set(walk(k), walk(x));
        return m;
      }
      case 's': {
        const s = keep(new Set());
        for (const x of v as Tagged[]) s.add(walk(x));
        return s;
      }
      case 'e': {
        const C = ERRORS[t.n as string] ?? Error;
        const e = keep(new C(t.m as string));
        if (!ERRORS[t.n as string]) e.name = String(t.n);
        return e;
      }
      case 'o': {
        const o = keep({} as Record<string, unknown>);
        for (const k of keysOf(v as object)) {
          const x = walk((v as Record<string, Tagged>)[k]!);
          // Defined as data, so a key named __proto__ is a key, never the prototype.
          Object.defineProperty(o, k, { value: x, writable: true, enumerable: true, configurable: true });
        }
        return o;
      }
    }
    throw new TypeError('malformed value');
  };
  return walk(JSONparse(text) as Tagged);
}
