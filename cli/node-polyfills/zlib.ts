/**
 * `node:zlib` for the isolate: unenv's constants and stand-ins, with gzip, deflate and raw deflate —
 * one shot (`*Sync`, callbacks) and as Node streams (`createGzip`, `createGunzip`, …) — computed by
 * fflate in the isolate, so a bomb meets the worker's own memory limit. Brotli is brotli.ts's.
 */
import { Buffer } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import {
  Deflate as FDeflate,
  deflateSync as fDeflate,
  Gunzip as FGunzip,
  gunzipSync as fGunzip,
  Gzip as FGzip,
  gzipSync as fGzip,
  Inflate as FInflate,
  inflateSync as fInflate,
  Unzlib as FUnzlib,
  unzlibSync as fUnzlib,
  Zlib as FZlib,
  zlibSync as fZlib,
} from 'fflate';
import * as unenv from 'unenv/node/zlib';
import * as brotli from './brotli.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
interface Options {
  level?: number;
}
type Level = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

function bytes(data: Input): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
const level = (o?: Options): { level?: Level } => (o?.level !== undefined && o.level >= 0 && o.level <= 9 ? { level: o.level as Level } : {});

function safe(f: (b: Uint8Array) => Uint8Array) {
  return (data: Input) => {
    try {
      return Buffer.from(f(bytes(data)));
    } catch (e) {
      throw Object.assign(new Error((e as Error).message || 'invalid compressed data'), { code: 'Z_DATA_ERROR', errno: -3 });
    }
  };
}

export const gzipSync = (d: Input, o?: Options) => Buffer.from(fGzip(bytes(d), level(o)));
export const deflateSync = (d: Input, o?: Options) => Buffer.from(fZlib(bytes(d), level(o)));
export const deflateRawSync = (d: Input, o?: Options) => Buffer.from(fDeflate(bytes(d), level(o)));
export const gunzipSync = safe((b) => fGunzip(b));
export const inflateSync = safe((b) => fUnzlib(b));
export const inflateRawSync = safe((b) => fInflate(b));
export const unzipSync = safe((b) => (b[0] === 0x1f && b[1] === 0x8b ? fGunzip(b) : fUnzlib(b)));

type Callback = (e: Error | null, r?: Buffer) => void;
function callback(f: (d: Input, o?: Options) => Buffer) {
  return (d: Input, o: Options | Callback, cb?: Callback) => {
    const done = (typeof o === 'function' ? o : cb)!;
    const opts = typeof o === 'function' ? undefined : o;
    let r: Buffer;
    try {
      r = f(d, opts);
    } catch (e) {
      queueMicrotask(() => done(e as Error));
      return;
    }
    queueMicrotask(() => done(null, r));
  };
}
export const gzip = callback(gzipSync);
export const gunzip = callback(gunzipSync);
export const deflate = callback(deflateSync);
export const inflate = callback(inflateSync);
export const deflateRaw = callback(deflateRawSync);
export const inflateRaw = callback(inflateRawSync);
export const unzip = callback(unzipSync);

/** fflate's streaming (de)compressors, as they are driven here. */
interface Flate {
  ondata: (data: Uint8Array, final: boolean) => void;
  push(chunk: Uint8Array, final?: boolean): void;
}

/** A Node Transform over one of fflate's streaming (de)compressors. */
class FlateStream extends Transform {
  readonly #flate: Flate;
  constructor(flate: Flate) {
    super();
    this.#flate = flate;
    flate.ondata = (data) => {
      if (data.byteLength) this.push(Buffer.from(data));
    };
  }
  #feed(chunk: Uint8Array, final: boolean, cb: TransformCallback): void {
    try {
      this.#flate.push(chunk, final);
    } catch (e) {
      return cb(Object.assign(new Error((e as Error).message || 'invalid compressed data'), { code: 'Z_DATA_ERROR', errno: -3 }));
    }
    cb();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#feed(bytes(chunk), false, cb);
  }
  override _flush(cb: TransformCallback): void {
    this.#feed(new Uint8Array(0), true, cb);
  }
}

/** A gzip or zlib stream, told apart by its first bytes (Node's Unzip). */
class Unzip implements Flate {
  ondata: Flate['ondata'] = () => {};
  #inner: Flate | undefined;
  #head = new Uint8Array(0);
  push(chunk: Uint8Array, final = false): void {
    if (!this.#inner) {
      const head = new Uint8Array(this.#head.length + chunk.length);
      head.set(this.#head);
      head.set(chunk, this.#head.length);
      if (head.length < 2 && !final) {
        this.#head = head;
        return;
      }
      this.#inner = head[0] === 0x1f && head[1] === 0x8b ? (new FGunzip() as Flate) : (new FUnzlib() as Flate);
      this.#inner.ondata = (d, f) => this.ondata(d, f);
      chunk = head;
    }
    this.#inner.push(chunk, final);
  }
}

export const createGzip = (o?: Options) => new FlateStream(new FGzip(level(o)) as Flate);
export const createDeflate = (o?: Options) => new FlateStream(new FZlib(level(o)) as Flate);
export const createDeflateRaw = (o?: Options) => new FlateStream(new FDeflate(level(o)) as Flate);
export const createGunzip = () => new FlateStream(new FGunzip() as Flate);
export const createInflate = () => new FlateStream(new FUnzlib() as Flate);
export const createInflateRaw = () => new FlateStream(new FInflate() as Flate);
export const createUnzip = () => new FlateStream(new Unzip());

export const { constants, crc32 } = unenv as typeof unenv & { crc32: unknown };
export {
  BrotliCompress,
  BrotliDecompress,
  brotliCompress,
  brotliCompressSync,
  brotliDecompress,
  brotliDecompressSync,
  createBrotliCompress,
  createBrotliDecompress,
} from './brotli.ts';

export default {
  ...unenv,
  gzipSync,
  deflateSync,
  deflateRawSync,
  gunzipSync,
  inflateSync,
  inflateRawSync,
  unzipSync,
  gzip,
  gunzip,
  deflate,
  inflate,
  deflateRaw,
  inflateRaw,
  unzip,
  createGzip,
  createDeflate,
  createDeflateRaw,
  createGunzip,
  createInflate,
  createInflateRaw,
  createUnzip,
  ...brotli,
};
