/**
 * CompressionStream and DecompressionStream (gzip, deflate, deflate-raw) as Workers has them, on
 * fflate's streaming classes: pure JS inside the isolate, so (de)compression counts against the
 * worker's own CPU and memory limits, not the sandbox's. Input is fed in slices, so one written chunk
 * cannot become one huge output chunk: a decompression bomb grows the worker's heap step by step, up
 * to its memory limit, where the isolate is stopped.
 *
 * fflate builds ~230 KB of lookup tables when its module is evaluated, and its code would be in every
 * isolate's heap: it is a lazy unit (units.ts), compiled, run and its tables built on a worker's first
 * (de)compression, counted against that worker's memory. A worker that replaces the global typed-array
 * constructors before that first use breaks its own compression, nothing else.
 */
import type { ReadableStream, ReadableStreamDefaultController, WritableStream } from 'web-streams-polyfill';
import { streams } from './streams.ts';
import { bytesOf } from './byte-streams.ts';
import { unit } from './units.ts';
import type { LazyUnits } from '../abi.ts';

type BufferSource = ArrayBuffer | ArrayBufferView;

const U8 = Uint8Array;
const SLICE = 4 * 1024;
type Fflate = LazyUnits['fflate'];
const PromiseCtor = Promise;

interface Codec {
  ondata: (data: Uint8Array, final: boolean) => void;
  push(chunk: Uint8Array, final?: boolean): void;
}
const FORMATS = ['gzip', 'deflate', 'deflate-raw'] as const;
type Format = (typeof FORMATS)[number];

function formatOf(format: unknown, what: string): Format {
  const f = String(format);
  if (!(FORMATS as readonly string[]).includes(f)) throw new TypeError(`${what}: the format must be "gzip", "deflate" or "deflate-raw" (got "${f}")`);
  return f as Format;
}

/**
 * A writable/readable pair around `codec`. Not a TransformStream: its transform would enqueue a whole
 * written chunk's output at once, whether read or not. Here each input slice waits until the reader
 * has taken what the previous one produced, so a reader that goes chunk by chunk holds one slice's
 * output (at most ~1032 times SLICE for deflate) at a time.
 */
/**
 * The trailer check fflate leaves out: RFC 1952's CRC-32 and ISIZE (gzip) and RFC 1950's Adler-32 (zlib),
 * computed over the output and compared with the input's last bytes at its end. Truncated input, trailing
 * junk and a corrupted checksum all fail it, as with zlib. A gzip stream of several members is left
 * unchecked (its trailer covers only the last member).
 */
interface Trailer {
  size: number;
  update(out: Uint8Array): void;
  verify(tail: Uint8Array): boolean;
}

let crcTable: Uint32Array | undefined;
function gzipTrailer(): Trailer {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const table = crcTable;
  let crc = 0xffffffff;
  let length = 0;
  return {
    size: 8,
    update(out) {
      for (let i = 0; i < out.length; i++) crc = table[(crc ^ out[i]!) & 0xff]! ^ (crc >>> 8);
      length = (length + out.length) >>> 0;
    },
    verify(t) {
      const view = new DataView(t.buffer, t.byteOffset, t.byteLength);
      return view.getUint32(0, true) === (crc ^ 0xffffffff) >>> 0 && view.getUint32(4, true) === length;
    },
  };
}

function zlibTrailer(): Trailer {
  let a = 1;
  let b = 0;
  return {
    size: 4,
    update(out) {
      for (let i = 0; i < out.length; i++) {
        a = (a + out[i]!) % 65521;
        b = (b + a) % 65521;
      }
    },
    verify(t) {
      return new DataView(t.buffer, t.byteOffset, t.byteLength).getUint32(0, false) === ((b << 16) | a) >>> 0;
    },
  };
}

function codecStream(
  make: (lib: Fflate) => Codec,
  what: string,
  trailer?: () => Trailer,
): { readable: ReadableStream<Uint8Array>; writable: WritableStream<BufferSource> } {
  const check = trailer?.();
  let tail = new U8(0);
  let members = 0;
  let out!: ReadableStreamDefaultController<Uint8Array>;
  // The reader is waiting for bytes (a pull came and nothing has been enqueued since).
  let demand = false;
  let wanted: (() => void) | undefined;
  let cancelled: { reason: unknown } | undefined;
  const nextPull = () => new PromiseCtor<void>((resolve) => (wanted = resolve));
  let codec: Codec | undefined;
  const ready = async (): Promise<Codec> => {
    if (codec) return codec;
    codec = make(unit('fflate'));
    // fflate calls onmember for each gzip member after the first.
    (codec as { onmember?: () => void }).onmember = () => void members++;
    codec.ondata = (data) => {
      check?.update(data);
      if (data.byteLength === 0) return;
      demand = false;
      out.enqueue(data);
    };
    return codec;
  };
  const push = (codec: Codec, bytes: Uint8Array, final: boolean) => {
    try {
      codec.push(bytes, final);
    } catch (e) {
      // fflate's own errors (bad or truncated data) carry a numeric code; anything else (a RangeError
      // when the worker's memory is used up) is thrown as it is.
      const err = typeof (e as { code?: unknown } | null)?.code === 'number' ? new TypeError(`${what}: ${(e as Error).message}`) : e;
      out.error(err);
      throw err;
    }
  };
  const { ReadableStream, WritableStream } = streams();
  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        out = controller;
      },
      pull() {
        demand = true;
        wanted?.();
        wanted = undefined;
      },
      cancel(reason) {
        cancelled = { reason };
        wanted?.();
      },
    },
    { highWaterMark: 0 },
  );
  const writable = new WritableStream<BufferSource>({
    async write(chunk) {
      // The writer may reuse its buffer once write() resolves, and this resolves only after the last slice.
      let bytes: Uint8Array;
      try {
        bytes = bytesOf(chunk, what);
      } catch (e) {
        out.error(e); // the reader learns of it too, as with a TransformStream
        throw e;
      }
      const codec = await ready();
      if (check) {
        const joined = new U8(tail.byteLength + Math.min(bytes.byteLength, check.size));
        joined.set(tail);
        joined.set(bytes.subarray(Math.max(0, bytes.byteLength - check.size)), tail.byteLength);
        tail = joined.slice(Math.max(0, joined.byteLength - check.size));
      }
      for (let at = 0; at < bytes.byteLength; at += SLICE) {
        if (cancelled) throw cancelled.reason;
        push(codec, bytes.subarray(at, at + SLICE), false);
        while (!demand && !cancelled) await nextPull();
      }
    },
    async close() {
      const codec = await ready();
      if (cancelled) throw cancelled.reason;
      push(codec, new U8(0), true);
      if (check && members === 0 && (tail.byteLength < check.size || !check.verify(tail))) {
        const err = new TypeError(`${what}: the data is truncated, corrupt or followed by extra bytes (its checksum does not match)`);
        out.error(err);
        throw err;
      }
      out.close();
    },
    abort(reason) {
      out.error(reason);
    },
  });
  return { readable, writable };
}

export class CompressionStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<BufferSource>;
  constructor(format: string) {
    const f = formatOf(format, 'CompressionStream');
    const make = (lib: Fflate) => (f === 'gzip' ? new lib.Gzip() : f === 'deflate' ? new lib.Zlib() : new lib.Deflate()) as unknown as Codec;
    ({ readable: this.readable, writable: this.writable } = codecStream(make, 'CompressionStream'));
  }
}

export class DecompressionStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<BufferSource>;
  constructor(format: string) {
    const f = formatOf(format, 'DecompressionStream');
    const make = (lib: Fflate) => (f === 'gzip' ? new lib.Gunzip() : f === 'deflate' ? new lib.Unzlib() : new lib.Inflate()) as unknown as Codec;
    const trailer = f === 'gzip' ? gzipTrailer : f === 'deflate' ? zlibTrailer : undefined;
    ({ readable: this.readable, writable: this.writable } = codecStream(make, 'DecompressionStream', trailer));
  }
}
