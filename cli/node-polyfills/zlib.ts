/**
 * `node:zlib` for the isolate: unenv's constants and stand-ins, with gzip, deflate and raw deflate (one
 * shot: `*Sync`, callbacks) computed by fflate in the isolate, so a bomb meets the worker's own memory
 * limit. Streams (`createGzip`…) and brotli stay unenv's (they throw "not implemented").
 */
import { Buffer } from 'node:buffer';
import { deflateSync as fDeflate, gunzipSync as fGunzip, gzipSync as fGzip, inflateSync as fInflate, unzlibSync as fUnzlib, zlibSync as fZlib } from 'fflate';
import * as unenv from 'unenv/node/zlib';

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

export const {
  constants,
  crc32,
  createGzip,
  createGunzip,
  createDeflate,
  createInflate,
  createDeflateRaw,
  createInflateRaw,
  createUnzip,
  brotliCompressSync,
  brotliDecompressSync,
} = unenv as typeof unenv & { crc32: unknown };

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
};
