/**
 * The URL Standard's classes and parser (whatwg-url), loaded on first use (url-unit.ts, a lazy unit) rather
 * than carried in the start-up snapshot. The runtime's modules ask `url()` when they parse or make a URL,
 * and `urlClassOrNone(name)` when they only test a value: before the unit is loaded no URL exists, so
 * nothing is an instance of its classes. The globals (URL, URLSearchParams) are accessors that load the
 * unit on first read and leave a plain data property in their place (installUrlGlobals).
 */
import type { LazyUnits } from '../abi.ts';
import { installLazyGlobals, loadedUnit, pinned, unit } from './units.ts';
import { TextDecoder, TextEncoder } from './encoding.ts';
export { withParseCache } from './url-parse-cache.ts';
export { percentEncodeAfterEncoding } from '@exodus/bytes/whatwg.js';

export type UrlUnit = LazyUnits['url'];

/**
 * A stand-in for SharedArrayBuffer, which a context being snapshotted does not have and the lockdown
 * removes from every context: webidl-conversions (in the unit) tests a value with its getters as it
 * loads, and with these nothing is one.
 */
class SharedArrayBuffer {
  get byteLength(): number {
    throw new TypeError('not a SharedArrayBuffer');
  }
  get growable(): boolean {
    throw new TypeError('not a SharedArrayBuffer');
  }
}

/**
 * The built-ins the unit names (its global bindings, and the functions it reads off them), pinned (units.ts
 * `pinned`) so that a worker that replaces them before its first URL does not steer the URL classes it then
 * gets. (What the unit reads off a prototype it reads when it runs, as it did in the snapshot.)
 */
export const PINNED_NAMES = [
  'Array',
  'ArrayBuffer',
  'BigInt',
  'Boolean',
  'DataView',
  'Float32Array',
  'Float64Array',
  'Function',
  'Int8Array',
  'Int16Array',
  'Int32Array',
  'Map',
  'Math',
  'Number',
  'Object',
  'Promise',
  'Reflect',
  'Set',
  'String',
  'Symbol',
  'TypeError',
  'Uint8Array',
  'Uint8ClampedArray',
  'Uint16Array',
  'Uint32Array',
  'isNaN',
  'parseInt',
  'TextEncoder',
  'TextDecoder',
  'SharedArrayBuffer',
  'Array.from',
  'Array.isArray',
  'ArrayBuffer.isView',
  'BigInt.asIntN',
  'BigInt.asUintN',
  'Math.floor',
  'Math.fround',
  'Math.max',
  'Math.min',
  'Math.round',
  'Math.trunc',
  'Number.isFinite',
  'Number.isNaN',
  'Object.create',
  'Object.defineProperties',
  'Object.defineProperty',
  'Object.getOwnPropertyDescriptor',
  'Object.getOwnPropertyDescriptors',
  'Object.getOwnPropertyNames',
  'Object.getPrototypeOf',
  'Object.hasOwn',
  'Object.is',
  'Object.keys',
  'Reflect.apply',
  'Reflect.construct',
  'Reflect.defineProperty',
  'Reflect.getOwnPropertyDescriptor',
  'Reflect.getPrototypeOf',
  'Reflect.ownKeys',
  'Reflect.set',
  'String.fromCharCode',
  'String.fromCodePoint',
  'Symbol.for',
] as const;

/** TextEncoder and TextDecoder: the snapshot's own classes (as the worker's globals are); SharedArrayBuffer: the stand-in above. */
export const PINNED = pinned(PINNED_NAMES, { TextEncoder, TextDecoder, SharedArrayBuffer });

/** The URL classes and parser, loading them into this isolate on the first call. */
export function url(): UrlUnit {
  return unit('url');
}

/** A class nothing is an instance of: what a URL class is, for `instanceof`, before the unit is loaded. */
class NoUrlYet {}

/** URL class `name` for an `instanceof` test, without loading the unit: before it is loaded no value is a URL. */
export function urlClassOrNone<K extends (typeof URL_GLOBALS)[number]>(name: K): UrlUnit[K] {
  return loadedUnit('url')?.[name] ?? (NoUrlYet as unknown as UrlUnit[K]);
}

export const URL_GLOBALS = ['URL', 'URLSearchParams'] as const satisfies readonly (keyof UrlUnit)[];

/** The URL globals on `g`: each an accessor until first read, which loads the unit (units.ts installLazyGlobals). */
export function installUrlGlobals(g: object): void {
  installLazyGlobals(g, URL_GLOBALS, (name) => url()[name]);
}
