/**
 * node:zlib's Brotli for the isolate: one shot (`brotliCompressSync`, callbacks) and as Node streams
 * (`createBrotliCompress`, …), computed by brotli-wasm (the Rust port of Google's Brotli, as WebAssembly)
 * in the worker's isolate. Chosen over the pure-JS `brotli` package (an asm.js build of the C encoder):
 * that one's encoder is promise-only and one-shot (no `*Sync`, no streams) and adds ~1.3 MB of JavaScript
 * to every bundle that imports node:zlib; brotli-wasm's glue adds ~14 KB and its ~1 MB of wasm comes from
 * the host on the first Brotli call only (services/sandbox/runtime/bootstrap/brotli.ts), compiled once
 * per process, and it streams. At default settings its output is byte for byte Node's.
 *
 * Everything runs chunk by chunk (`chunkSize` of output at a time), so the codec's wasm memory stays
 * small and what a decompression produces accumulates in the isolate's heap: a bomb meets the worker's
 * memory limit, or `maxOutputLength` first. Its wasm memory is charged to the worker's limit too.
 *
 * Of the encoder's parameters only BROTLI_PARAM_QUALITY changes the output (brotli-wasm takes no other);
 * the rest are checked as Node checks them and otherwise have no effect (the window is Node's default, 22).
 */
import { Buffer, kMaxLength } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { BrotliStreamResultCode, CompressStream, DecompressStream, initSync } from 'cordon:brotli-wasm';
import { brotliModule } from 'node-internal:zlib';

type Input = string | ArrayBufferView | ArrayBuffer;
export interface BrotliOptions {
  params?: Record<number, number | boolean>;
  chunkSize?: number;
  maxOutputLength?: number;
}

const PARAM_QUALITY = 1;
/** BROTLI_PARAM_MODE … BROTLI_PARAM_NDIRECT, and the decoder's two. */
const ENCODER_PARAMS = 8;
const DECODER_PARAMS = 1;
const DEFAULT_CHUNK = 16 * 1024;
const MIN_CHUNK = 64;

let ready = false;
/** Counts instances: a stream made on one that was dropped (codecError) cannot go on on the next. */
let generation = 0;
/** Instantiates the codec on the first Brotli call of this isolate (or the first after a trap). */
function codec(): number {
  if (ready) return generation;
  initSync(brotliModule());
  ready = true;
  return ++generation;
}

/** What a trap in wasm throws (the project's TypeScript libs declare no WebAssembly value). */
const WasmTrap = (globalThis as unknown as { WebAssembly: { RuntimeError: ErrorConstructor } }).WebAssembly.RuntimeError;
const nodeError = (e: Error, code: string) => Object.assign(e, { code });

/**
 * What the codec threw, as Node says it. A trap (a Rust panic: its allocator found no more memory under
 * the cap the worker's memory limit puts on wasm memory) leaves the instance unusable: it is dropped, and
 * the next call makes a fresh one.
 */
function codecError(e: unknown, compress: boolean): Error {
  if (e instanceof WasmTrap) {
    ready = false;
    return new RangeError(
      `Brotli ${compress ? 'compression' : 'decompression'} needs more memory than this worker's memory limit leaves it (quality 11, the default, takes ~35 MiB, ~70 MiB past 1 MB of input); lower BROTLI_PARAM_QUALITY or raise the worker's memory limit`,
    );
  }
  return new Error(compress ? 'Compression failed' : 'Decompression failed');
}

function bytes(data: Input): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw nodeError(
    new TypeError('The "buffer" argument must be of type string or an instance of Buffer, TypedArray, DataView, or ArrayBuffer.'),
    'ERR_INVALID_ARG_TYPE',
  );
}

/** The options as Node checks them: numeric parameter keys in range, number or boolean values. */
function checked(o: BrotliOptions | undefined, maxParam: number): { quality: number | undefined; chunk: number; max: number } {
  let quality: number | undefined;
  for (const [key, value] of Object.entries(o?.params ?? {})) {
    const k = Number(key);
    if (!Number.isInteger(k) || k < 0 || k > maxParam) throw nodeError(new RangeError(`${key} is not a valid Brotli parameter`), 'ERR_BROTLI_INVALID_PARAM');
    if (typeof value !== 'number' && typeof value !== 'boolean')
      throw nodeError(new TypeError(`The "options.params[key]" property must be of type number or boolean. Received ${typeof value}`), 'ERR_INVALID_ARG_TYPE');
    if (maxParam === ENCODER_PARAMS && k === PARAM_QUALITY) quality = Math.min(11, Math.max(0, Number(value) | 0));
  }
  const chunk = o?.chunkSize === undefined ? DEFAULT_CHUNK : Number(o.chunkSize);
  if (!Number.isInteger(chunk) || chunk < MIN_CHUNK)
    throw nodeError(
      new RangeError(`The value of "options.chunkSize" is out of range. It must be >= ${MIN_CHUNK}. Received ${o?.chunkSize}`),
      'ERR_OUT_OF_RANGE',
    );
  const max = o?.maxOutputLength === undefined ? kMaxLength : Number(o.maxOutputLength);
  if (!Number.isInteger(max) || max < 1 || max > kMaxLength)
    throw nodeError(new RangeError(`The value of "options.maxOutputLength" is out of range. Received ${o?.maxOutputLength}`), 'ERR_OUT_OF_RANGE');
  return { quality, chunk, max };
}

/** One of brotli-wasm's streaming codecs, fed and drained here, freed at the end or on an error. */
class Codec {
  readonly #compress: boolean;
  readonly #chunk: number;
  readonly #max: number;
  readonly #generation: number;
  #state: CompressStream | DecompressStream | undefined;
  #out = 0;
  #done = false;

  constructor(compress: boolean, o: BrotliOptions | undefined) {
    const { quality, chunk, max } = checked(o, compress ? ENCODER_PARAMS : DECODER_PARAMS);
    this.#generation = codec();
    this.#compress = compress;
    this.#chunk = chunk;
    this.#max = max;
    try {
      this.#state = compress ? new CompressStream(quality) : new DecompressStream();
    } catch (e) {
      throw codecError(e, compress);
    }
  }

  /** Its instance is the live one (not dropped after a trap in another call). */
  get #live(): boolean {
    return ready && this.#generation === generation;
  }

  /** Feeds `input` (or, when compressing, `undefined`: finish), handing each piece of output to `emit`. */
  step(input: Uint8Array | undefined, emit: (out: Buffer) => void): void {
    const s = this.#state;
    if (!s) throw new Error('zlib binding closed');
    if (!this.#live) throw this.#fail(new RangeError('Brotli: this stream ended when its codec ran out of memory in another call'));
    if (this.#done && input?.byteLength) throw this.#fail(new Error('Decompression failed'));
    let offset = 0;
    let code: number;
    do {
      let r: ReturnType<CompressStream['compress']>;
      try {
        const rest = input?.subarray(offset);
        r = this.#compress ? (s as CompressStream).compress(rest, this.#chunk) : (s as DecompressStream).decompress(rest!, this.#chunk);
      } catch (e) {
        throw this.#fail(codecError(e, this.#compress));
      }
      const out = r.buf;
      code = r.code;
      offset += r.input_offset;
      r.free();
      if (out.byteLength) {
        this.#out += out.byteLength;
        if (this.#out > this.#max) throw this.#fail(nodeError(new RangeError(`Cannot create a Buffer larger than ${this.#max} bytes`), 'ERR_BUFFER_TOO_LARGE'));
        emit(Buffer.from(out.buffer, out.byteOffset, out.byteLength));
      }
    } while (code === BrotliStreamResultCode.NeedsMoreOutput);
    if (code === BrotliStreamResultCode.ResultSuccess) this.#done = true;
  }

  /** The end of the input: a decompression must have reached the end of the Brotli stream. */
  finish(emit: (out: Buffer) => void): void {
    if (this.#compress) this.step(undefined, emit);
    else if (!this.#done) throw this.#fail(nodeError(new Error('unexpected end of file'), 'Z_BUF_ERROR'));
    this.close();
  }

  #fail(e: Error): Error {
    this.close();
    return e;
  }

  close(): void {
    // A codec whose instance trapped is not freed: that instance is dropped whole (codecError).
    if (this.#live) this.#state?.free();
    this.#state = undefined;
  }
}

function oneShot(compress: boolean) {
  return (data: Input, o?: BrotliOptions): Buffer => {
    const input = bytes(data);
    const c = new Codec(compress, o);
    const parts: Buffer[] = [];
    const emit = (b: Buffer) => void parts.push(b);
    c.step(input, emit);
    c.finish(emit);
    return Buffer.concat(parts);
  };
}
export const brotliCompressSync = oneShot(true);
export const brotliDecompressSync = oneShot(false);

type Callback = (e: Error | null, r?: Buffer) => void;
function withCallback(f: (d: Input, o?: BrotliOptions) => Buffer) {
  return (d: Input, o: BrotliOptions | Callback, cb?: Callback) => {
    const done = typeof o === 'function' ? o : cb;
    if (typeof done !== 'function') throw nodeError(new TypeError('The "callback" argument must be of type function'), 'ERR_INVALID_ARG_TYPE');
    let r: Buffer;
    try {
      r = f(d, typeof o === 'function' ? undefined : o);
    } catch (e) {
      queueMicrotask(() => done(e as Error));
      return;
    }
    queueMicrotask(() => done(null, r));
  };
}
export const brotliCompress = withCallback(brotliCompressSync);
export const brotliDecompress = withCallback(brotliDecompressSync);

/** A Node Transform over a streaming codec: output as it is produced, `chunkSize` at a time. */
class BrotliStream extends Transform {
  readonly #codec: Codec;
  constructor(compress: boolean, o?: BrotliOptions) {
    super(o as object);
    this.#codec = new Codec(compress, o);
  }
  #run(f: () => void, cb: TransformCallback): void {
    try {
      f();
    } catch (e) {
      return cb(e as Error);
    }
    cb();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#run(() => this.#codec.step(bytes(chunk), (b) => this.push(b)), cb);
  }
  override _flush(cb: TransformCallback): void {
    this.#run(() => this.#codec.finish((b) => this.push(b)), cb);
  }
  override _destroy(e: Error | null, cb: (e: Error | null) => void): void {
    this.#codec.close();
    cb(e);
  }
}

export class BrotliCompress extends BrotliStream {
  constructor(o?: BrotliOptions) {
    super(true, o);
  }
}
export class BrotliDecompress extends BrotliStream {
  constructor(o?: BrotliOptions) {
    super(false, o);
  }
}
export const createBrotliCompress = (o?: BrotliOptions) => new BrotliCompress(o);
export const createBrotliDecompress = (o?: BrotliOptions) => new BrotliDecompress(o);
