/**
 * Structured-clonable values as text, for what crosses the isolate's edge as data: a queue message of
 * the `v8` content type, a Durable Object call's arguments and results, its async KV values, and the
 * Workers RPC values capnweb has no form for (rpc-clone.ts). Workers
 * writes these with V8's serializer, which the isolate does not have; this writes the same values as
 * tagged JSON
 * (`{"$t": type, "v": …}` for what JSON has no form for: Date, Map, Set, RegExp, bytes and typed
 * arrays, BigInt, undefined, NaN and ±Infinity and -0, Error, Boolean/Number/String objects; a repeated object as a reference, so
 * shared parts and cycles come back as they were). Every object is tagged, arrays and plain objects
 * too, so no value of the sender's can pass for a tag. Nesting is bounded (a value, not a structure
 * to walk without end). Built-ins are captured before tenant code runs, so a patched one changes nothing.
 */
import { b64 } from './bindings.ts';
import { DOMException } from './encoding.ts';

const JSONstringify = JSON.stringify;
const JSONparse = JSON.parse;
const isArray = Array.isArray;
const keysOf = Object.keys;
const hasOwn = Object.hasOwn;
const is = Object.is;
const DateCtor = Date;
const MapCtor = Map;
const SetCtor = Set;
const RegExpCtor = RegExp;
const ErrorCtor = Error;
const BigIntFn = BigInt;
const ObjectFn = Object;
const BooleanCtor = Boolean;
const NumberCtor = Number;
const StringCtor = String;
const boolValue = Boolean.prototype.valueOf;
const numValue = Number.prototype.valueOf;
const strValue = String.prototype.valueOf;
const isInteger = Number.isInteger;
const UNCLONABLE: (abstract new (...args: never[]) => object)[] = [WeakMap, WeakSet, WeakRef, Promise, FinalizationRegistry];
const U8 = Uint8Array;
const isView = ArrayBuffer.isView;
const dateTime = Date.prototype.getTime;
const apply = Reflect.apply;
const defineProperty = Object.defineProperty;
const getProto = Object.getPrototypeOf;
const objectProto = Object.prototype;
/** An own data property, even for `__proto__` (an assignment would set the prototype instead). */
const setOwn = (o: object, k: string, v: unknown) => defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });

type Tagged = { $t: string; v?: unknown };

/** Nesting deeper than this is refused. */
const MAX_DEPTH = 256;

const ERRORS: Record<string, ErrorConstructor> = { Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError };

export interface EncodeOptions {
  /**
   * 'refuse': an instance of a class other than the built-ins above is a DataCloneError, as Workers RPC
   * refuses one; 'plain' (the default): its own enumerable properties, as V8's serializer keeps them.
   */
  instances?: 'refuse' | 'plain';
  /**
   * Objects and functions this says yes to are not encoded but pushed onto `holes` and written as
   * their index there: the caller carries them by other means (Workers RPC's stubs; rpc-clone.ts).
   */
  byReference?: (value: object) => boolean;
  holes?: unknown[];
}

export interface DecodeOptions {
  /** What encodeValue's `holes` held, in order; a value naming a hole not here is refused. */
  holes?: readonly unknown[];
  /** A BigInt of more decimal digits is refused (parsing one costs time quadratic in its length). */
  maxBigIntDigits?: number;
}
const VIEWS: Record<string, new (buffer: ArrayBuffer) => ArrayBufferView> = {
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
  DataView,
};

export function encodeValue(value: unknown, opts: EncodeOptions = {}): string {
  const seen = new Map<object, number>();
  let depth = 0;
  const walk = (v: unknown): unknown => {
    if (depth > MAX_DEPTH) throw new DOMException('a value nested this deep could not be cloned', 'DataCloneError');
    depth++;
    try {
      return walkOne(v);
    } finally {
      depth--;
    }
  };
  const { byReference, holes } = opts;
  const walkOne = (v: unknown): unknown => {
    if (v === undefined) return { $t: 'undefined' };
    if (holes && byReference && (typeof v === 'function' || (typeof v === 'object' && v !== null)) && byReference(v))
      return { $t: 'Hole', v: holes.push(v) - 1 };
    if (typeof v === 'number') return Number.isFinite(v) && !is(v, -0) ? v : { $t: 'Number', v: String(v) === '0' ? '-0' : String(v) };
    if (typeof v === 'bigint') return { $t: 'BigInt', v: String(v) };
    if (typeof v === 'function' || typeof v === 'symbol') throw new DOMException(`${String(v)} could not be cloned.`, 'DataCloneError');
    if (v === null || typeof v !== 'object') return v;
    const ref = seen.get(v);
    if (ref !== undefined) return { $t: 'Ref', v: ref };
    seen.set(v, seen.size);
    if (isArray(v)) {
      // Each index, holes too (map() would skip them and JSON write them as null).
      const a: unknown[] = [];
      for (let i = 0; i < v.length; i++) a.push(walk(v[i]));
      return { $t: 'Array', v: a };
    }
    if (v instanceof DateCtor) return { $t: 'Date', v: apply(dateTime, v, []) };
    if (v instanceof RegExpCtor) return { $t: 'RegExp', v: [v.source, v.flags] };
    if (v instanceof ArrayBuffer) return { $t: 'ArrayBuffer', v: b64.encode(new U8(v)) };
    if (isView(v)) {
      const name = v.constructor.name;
      if (!hasOwn(VIEWS, name)) throw new DOMException(`a ${name} could not be cloned`, 'DataCloneError');
      return { $t: name, v: b64.encode(new U8(v.buffer, v.byteOffset, v.byteLength)) };
    }
    if (v instanceof MapCtor) return { $t: 'Map', v: [...v].map(([k, x]) => [walk(k), walk(x)]) };
    if (v instanceof SetCtor) return { $t: 'Set', v: [...v].map(walk) };
    if (v instanceof ErrorCtor) return { $t: 'Error', v: [String(v.name), String(v.message)] };
    if (v instanceof BooleanCtor) return { $t: 'Boxed', v: apply(boolValue, v, []) };
    if (v instanceof NumberCtor) return { $t: 'Boxed', v: walk(apply(numValue, v, [])) };
    if (v instanceof StringCtor) return { $t: 'Boxed', v: apply(strValue, v, []) };
    const proto = getProto(v);
    // Built-ins V8's serializer cannot write, in its words.
    for (const Ctor of UNCLONABLE) if (v instanceof Ctor) throw new DOMException(`#<${Ctor.name}> could not be cloned.`, 'DataCloneError');
    if (opts.instances === 'refuse' && proto !== objectProto && proto !== null) {
      // workerd's words.
      throw new DOMException(
        `Could not serialize object of type "${(proto as { constructor?: { name?: string } }).constructor?.name ?? 'Object'}". This type does not support serialization.`,
        'DataCloneError',
      );
    }
    const o: Record<string, unknown> = {};
    for (const k of keysOf(v)) setOwn(o, k, walk((v as Record<string, unknown>)[k]));
    return { $t: 'Object', v: o };
  };
  return JSONstringify(walk(value));
}

/** The value encodeValue encoded (each decode makes fresh objects); a tag it does not write is refused, and so is nesting past encodeValue's. */
export function decodeValue(text: string, opts: DecodeOptions = {}): unknown {
  const refs: unknown[] = [];
  const { holes, maxBigIntDigits = Number.POSITIVE_INFINITY } = opts;
  let depth = 0;
  const walk = (x: unknown): unknown => {
    if (x === null || typeof x !== 'object' || isArray(x)) return x;
    if (depth > MAX_DEPTH + 1) throw new TypeError('a value nested too deep');
    depth++;
    try {
      return walkOne(x);
    } finally {
      depth--;
    }
  };
  const walkOne = (x: object): unknown => {
    const { $t: t, v } = x as Tagged;
    switch (t) {
      case 'undefined':
        return undefined;
      case 'Number':
        return v === '-0' ? -0 : Number(v);
      case 'BigInt':
        if (typeof v !== 'string' || v.length > maxBigIntDigits) throw new TypeError('a BigInt too long or malformed in a value');
        return BigIntFn(v);
      case 'Boxed': {
        const inner = walk(v);
        if (!['boolean', 'number', 'string'].includes(typeof inner)) throw new TypeError('a malformed boxed primitive in a value');
        return push(refs, ObjectFn(inner));
      }
      case 'Hole':
        if (!holes || !isInteger(v) || (v as number) < 0 || (v as number) >= holes.length) throw new TypeError('a value names a reference it was not sent');
        return holes[v as number];
      case 'Ref':
        return refs[v as number];
      case 'Array': {
        const a: unknown[] = [];
        refs.push(a);
        for (const e of v as unknown[]) a.push(walk(e));
        return a;
      }
      case 'Object': {
        const o: Record<string, unknown> = {};
        refs.push(o);
        for (const k of keysOf(v as object)) setOwn(o, k, walk((v as Record<string, unknown>)[k]));
        return o;
      }
      case 'Map': {
        const m = new MapCtor();
        refs.push(m);
        for (const [k, e] of v as [unknown, unknown][]) m.set(walk(k), walk(e));
        return m;
      }
      case 'Set': {
        const s = new SetCtor();
        refs.push(s);
        for (const e of v as unknown[]) s.add(walk(e));
        return s;
      }
      case 'Date':
        return push(refs, new DateCtor(v as number));
      case 'RegExp':
        return push(refs, new RegExpCtor((v as string[])[0]!, (v as string[])[1]));
      case 'Error': {
        const [name, message] = v as [string, string];
        const e = new (hasOwn(ERRORS, name) ? ERRORS[name]! : ErrorCtor)(message);
        if (!hasOwn(ERRORS, name)) e.name = name;
        return push(refs, e);
      }
      case 'ArrayBuffer': {
        const bytes = b64.decode(v as string);
        return push(refs, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      }
      default: {
        if (!hasOwn(VIEWS, t)) throw new TypeError(`unknown tag ${String(t)} in a value`);
        const bytes = b64.decode(v as string);
        return push(refs, new VIEWS[t]!(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer));
      }
    }
  };
  return walk(JSONparse(text));
}

function push<T>(refs: unknown[], v: T): T {
  refs.push(v);
  return v;
}
