/**
 * structuredClone: plain data, Date, RegExp, ArrayBuffer and views, Map, Set and Error (as a plain
 * Error with its name and message), cycles kept; a function, a symbol or a CryptoKey is a DataCloneError
 * (workerd does not serialize keys either: measured, with its message).
 */
import { DOMException } from './encoding.ts';
import { isCryptoKey } from './subtle.ts';

export function structuredClone(value: unknown, seen = new Map<unknown, unknown>()): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw new DOMException(`${String(value)} could not be cloned`, 'DataCloneError');
    return value;
  }
  if (seen.has(value)) return seen.get(value);
  let out: unknown;
  if (Array.isArray(value)) {
    const a: unknown[] = [];
    seen.set(value, a);
    for (let i = 0; i < value.length; i++) a[i] = structuredClone(value[i], seen);
    return a;
  }
  if (isCryptoKey(value)) throw new DOMException('Could not serialize object of type "CryptoKey". This type does not support serialization.', 'DataCloneError');
  if (value instanceof Date) out = new Date(value.getTime());
  else if (value instanceof RegExp) out = new RegExp(value.source, value.flags);
  else if (value instanceof ArrayBuffer) out = value.slice(0);
  else if (ArrayBuffer.isView(value)) {
    const C = value.constructor as new (b: ArrayBuffer, o: number, l: number) => unknown;
    const buf = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    out = value instanceof DataView ? new DataView(buf) : new C(buf as ArrayBuffer, 0, (value as unknown as { length: number }).length);
  } else if (value instanceof Map) {
    const m = new Map();
    seen.set(value, m);
    for (const [k, v] of value) m.set(structuredClone(k, seen), structuredClone(v, seen));
    return m;
  } else if (value instanceof Set) {
    const s = new Set();
    seen.set(value, s);
    for (const v of value) s.add(structuredClone(v, seen));
    return s;
  } else if (value instanceof Error) {
    const e = new Error(value.message);
    e.name = value.name;
    out = e;
  } else {
    const o: Record<string, unknown> = {};
    seen.set(value, o);
    for (const k of Object.keys(value)) o[k] = structuredClone((value as Record<string, unknown>)[k], seen);
    return o;
  }
  seen.set(value, out);
  return out;
}
