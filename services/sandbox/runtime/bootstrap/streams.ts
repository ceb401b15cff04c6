/**
 * The Streams standard's classes, loaded on first use (streams-unit.ts, a lazy unit) rather than carried
 * in the start-up snapshot. The runtime's modules ask `streams()` when they make a stream, and
 * `streamClassOrNone(name)` when they only test a value: before the unit is loaded no stream exists, so
 * nothing is an instance of its classes. The globals (ReadableStream, …) are accessors that load the unit on
 * first read and leave a plain data property in their place (installStreamGlobals).
 */
import type { LazyUnits } from '../abi.ts';
import { installLazyGlobals, loadedUnit, pinned, unit } from './units.ts';
import { DOMException } from './encoding.ts';

export type Streams = LazyUnits['streams'];

/**
 * The built-ins the polyfill names (its global bindings, and what it reads off them), pinned (units.ts
 * `pinned`) so that a worker that replaces them before its first stream does not steer the streams it then
 * gets. It reads DOMException off `globalThis`, which in the unit is PINNED itself (bootstrap-bundle.ts).
 * Not pinned: `queueMicrotask` and `structuredClone`, which the init half installs in each isolate after the
 * snapshot; the polyfill reads them when it runs, as it did in the snapshot.
 */
export const PINNED_NAMES = [
  'ArrayBuffer',
  'ArrayBuffer.isView',
  'Boolean',
  'DataView',
  'Error',
  'Error.captureStackTrace',
  'Error.prototype',
  'Function',
  'Function.prototype',
  'Math',
  'Math.ceil',
  'Math.floor',
  'Math.min',
  'Math.trunc',
  'Number',
  'Number.MAX_SAFE_INTEGER',
  'Number.isFinite',
  'Number.isNaN',
  'Object',
  'Object.create',
  'Object.defineProperties',
  'Object.defineProperty',
  'Object.getOwnPropertyDescriptor',
  'Object.getOwnPropertyNames',
  'Object.prototype',
  'Promise',
  'Promise.all',
  'Promise.prototype.then',
  'Promise.reject',
  'Promise.resolve',
  'RangeError',
  'Symbol',
  'Symbol.asyncIterator',
  'Symbol.for',
  'Symbol.iterator',
  'Symbol.toStringTag',
  'TypeError',
  'Uint8Array',
  'isFinite',
] as const;
export const PINNED = pinned(PINNED_NAMES, { DOMException });

/** The Streams classes, loading them into this isolate on the first call. */
export function streams(): Streams {
  return unit('streams');
}

/** The Streams classes if this isolate has loaded them, else undefined (and then no value is a stream). */
function loadedStreams(): Streams | undefined {
  return loadedUnit('streams');
}

/** A class nothing is an instance of: what a stream class is, for `instanceof`, before the streams are loaded. */
class NoStreamYet {}

/** Stream class `name` for an `instanceof` test, without loading the streams: before they are loaded no value is a stream. */
export function streamClassOrNone<K extends keyof Streams>(name: K): Streams[K] {
  return loadedStreams()?.[name] ?? (NoStreamYet as unknown as Streams[K]);
}

/** The classes the Streams standard makes globals, as Workers does (code checks `instanceof` against the readers and controllers too). */
export const STREAM_GLOBALS = [
  'ReadableStream',
  'WritableStream',
  'TransformStream',
  'ByteLengthQueuingStrategy',
  'CountQueuingStrategy',
  'ReadableByteStreamController',
  'ReadableStreamBYOBReader',
  'ReadableStreamBYOBRequest',
  'ReadableStreamDefaultController',
  'ReadableStreamDefaultReader',
  'TransformStreamDefaultController',
  'WritableStreamDefaultController',
  'WritableStreamDefaultWriter',
] as const satisfies readonly (keyof Streams)[];

/**
 * The Streams globals on `g`: each an accessor until first read, which loads the unit (units.ts
 * installLazyGlobals); a write before that replaces it without loading anything.
 */
export function installStreamGlobals(g: object): void {
  installLazyGlobals(g, STREAM_GLOBALS, (name) => streams()[name]);
}
