/**
 * The Streams standard's classes, loaded on first use (streams-unit.ts, a lazy unit) rather than carried
 * in the start-up snapshot. The runtime's modules ask `streams()` when they make a stream, and
 * `streamClassOrNone(name)` when they only test a value: before the unit is loaded no stream exists, so
 * nothing is an instance of its classes. The globals (ReadableStream, …) are accessors that load the unit on
 * first read and leave a plain data property in their place (installStreamGlobals).
 */
import type { LazyUnits } from '../abi.ts';
import { installLazyGlobals, loadedUnit, unit } from './units.ts';
import { DOMException } from './encoding.ts';

export type Streams = LazyUnits['streams'];

/**
 * The built-ins the polyfill reads once, as it loads, and keeps (bootstrap-bundle.ts, streamsPinned): taken
 * here, in the start-up snapshot, so a worker that replaces them before its first stream does not steer the
 * streams it then gets. What it reads of them each time it runs, it read at run time when it was in the
 * snapshot too.
 */
export const PINNED = Object.freeze({
  __proto__: null,
  Promise,
  resolve: Promise.resolve.bind(Promise),
  reject: Promise.reject.bind(Promise),
  promiseThen: Promise.prototype.then,
  isFinite: Number.isFinite,
  isNaN: Number.isNaN,
  trunc: Math.trunc,
  asyncIterator: Symbol.asyncIterator,
  DOMException,
});

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
