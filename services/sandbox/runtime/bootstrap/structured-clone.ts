/**
 * structuredClone as HTML's StructuredSerialize/Deserialize define it, for what an isolate holds: plain
 * data and arrays (their non-index properties too), the primitive wrappers (Boolean, Number, String,
 * BigInt objects), Date, RegExp, ArrayBuffer (resizable kept resizable) and views, Map, Set, Error of the
 * standard kinds, DOMException, Blob and File; cycles and shared references kept; ArrayBuffers in
 * `transfer` moved (the originals detached). A function, a symbol, a platform object that is not
 * serializable (URL, Request, streams …) or a CryptoKey is a DataCloneError (workerd does not serialize
 * keys either: measured, with its message). SharedArrayBuffer stays absent on purpose.
 */
import { DOMException } from './encoding.ts';
import { isCryptoKey } from './subtle.ts';
// From the snapshot modules, as the worker's globals are (fetch-api.ts says why).
import { Blob, File, Headers, Request, Response } from './fetch-api.ts';
import { streamClassOrNone } from './streams.ts';
import { urlClassOrNone } from './url.ts';

const ERRORS: Record<string, ErrorConstructor> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
};
const cannot = (what: string) => new DOMException(`${what} could not be cloned`, 'DataCloneError');
/** Platform objects of this runtime that HTML does not make serializable. */
const PLATFORM: { name: string; is: (v: object) => boolean }[] = [
  { name: 'URL', is: (v) => v instanceof urlClassOrNone('URL') },
  { name: 'URLSearchParams', is: (v) => v instanceof urlClassOrNone('URLSearchParams') },
  { name: 'Headers', is: (v) => v instanceof Headers },
  { name: 'Request', is: (v) => v instanceof Request },
  { name: 'Response', is: (v) => v instanceof Response },
  { name: 'ReadableStream', is: (v) => v instanceof streamClassOrNone('ReadableStream') },
  { name: 'WritableStream', is: (v) => v instanceof streamClassOrNone('WritableStream') },
  { name: 'TransformStream', is: (v) => v instanceof streamClassOrNone('TransformStream') },
];

/** The value a primitive wrapper holds, or undefined when `v` is no wrapper (a brand check, not `instanceof`). */
function unwrap(v: object): { value: unknown } | undefined {
  for (const valueOf of [Boolean.prototype.valueOf, Number.prototype.valueOf, String.prototype.valueOf, BigInt.prototype.valueOf]) {
    try {
      return { value: Reflect.apply(valueOf, v, []) };
    } catch {
      // not this kind
    }
  }
  return undefined;
}

function cloneBuffer(b: ArrayBuffer): ArrayBuffer {
  if (b.detached) throw cannot('A detached ArrayBuffer');
  if (!b.resizable) return b.slice(0);
  const copy = new ArrayBuffer(b.byteLength, { maxByteLength: b.maxByteLength });
  new Uint8Array(copy).set(new Uint8Array(b));
  return copy;
}

function clone(value: unknown, seen: Map<unknown, unknown>): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw cannot(String(value));
    return value;
  }
  if (seen.has(value)) return seen.get(value);
  const keep = <T>(out: T): T => (seen.set(value, out), out);
  if (Array.isArray(value)) {
    const a = keep(new Array<unknown>(value.length));
    for (const k of Object.keys(value)) (a as unknown as Record<string, unknown>)[k] = clone((value as unknown as Record<string, unknown>)[k], seen);
    return a;
  }
  const wrapped = unwrap(value);
  if (wrapped) return keep(Object(wrapped.value));
  if (isCryptoKey(value)) throw new DOMException('Could not serialize object of type "CryptoKey". This type does not support serialization.', 'DataCloneError');
  if (value instanceof Date) return keep(new Date(value.getTime()));
  if (value instanceof RegExp) return keep(new RegExp(value.source, value.flags));
  if (value instanceof ArrayBuffer) return keep(cloneBuffer(value));
  if (ArrayBuffer.isView(value)) {
    if (!(value.buffer instanceof ArrayBuffer)) throw cannot('A view on a SharedArrayBuffer');
    if (value.buffer.detached) throw cannot('A view on a detached ArrayBuffer');
    // A view past the end of its (shrunk) resizable buffer: a DataView's getters throw, and slice()
    // validates a typed array without changing it.
    try {
      if (!(value instanceof DataView)) (value as unknown as Uint8Array).slice(0, 0);
      void value.byteOffset;
    } catch {
      throw cannot('An out-of-bounds view');
    }
    const buffer = clone(value.buffer, seen) as ArrayBuffer;
    if (value instanceof DataView) return keep(new DataView(buffer, value.byteOffset, value.byteLength));
    const C = value.constructor as new (b: ArrayBuffer, o: number, l: number) => ArrayBufferView;
    return keep(new C(buffer, value.byteOffset, (value as unknown as Uint8Array).length));
  }
  if (value instanceof Map) {
    const m = keep(new Map());
    for (const [k, v] of value) m.set(clone(k, seen), clone(v, seen));
    return m;
  }
  if (value instanceof Set) {
    const s = keep(new Set());
    for (const v of value) s.add(clone(v, seen));
    return s;
  }
  if (value instanceof DOMException) return keep(new DOMException(value.message, value.name));
  if (value instanceof Error) {
    const name = String(value.name);
    const Ctor = Object.hasOwn(ERRORS, name) ? ERRORS[name]! : Error;
    const desc = Object.getOwnPropertyDescriptor(value, 'message');
    const e = keep(desc && 'value' in desc ? new Ctor(String(desc.value)) : new Ctor());
    if (typeof value.stack === 'string') Object.defineProperty(e, 'stack', { value: value.stack, writable: true, configurable: true });
    return e;
  }
  if (value instanceof File) return keep(new File([Blob.peek(value).slice()], value.name, { type: value.type, lastModified: value.lastModified }));
  if (value instanceof Blob) return keep(new Blob([Blob.peek(value).slice()], { type: value.type }));
  const platform = PLATFORM.find((p) => p.is(value));
  if (platform) throw cannot(`${platform.name} object`);
  const o = keep({} as Record<string, unknown>);
  for (const k of Object.keys(value)) o[k] = clone((value as Record<string, unknown>)[k], seen);
  return o;
}

/** HTML's structuredClone(value, { transfer }): ArrayBuffers only are transferable here. */
export function structuredClone(value: unknown, options?: { transfer?: unknown[] }): unknown {
  const transfer = options?.transfer === undefined ? [] : [...(options.transfer as Iterable<unknown>)];
  const listed = new Set<ArrayBuffer>();
  for (const t of transfer) {
    if (!(t instanceof ArrayBuffer)) throw cannot('A value in transfer that is not an ArrayBuffer');
    if (listed.has(t)) throw cannot('An ArrayBuffer listed twice in transfer');
    if (t.detached) throw cannot('A detached ArrayBuffer');
    listed.add(t);
  }
  const out = clone(value, new Map());
  // The copy already holds the bytes (a resizable buffer stays resizable): what moving adds is that
  // the originals are detached, so only the receiver can use them.
  for (const t of listed) t.transfer();
  return out;
}
