/**
 * The stream classes of Workers that are glue over TransformStream: TextEncoderStream and
 * TextDecoderStream (UTF-8, as TextEncoder/TextDecoder here), IdentityTransformStream (bytes through
 * unchanged) and FixedLengthStream (the same, refusing any other total than the one it was given).
 */
import { TransformStream, type ReadableStream, type Transformer, type WritableStream } from 'web-streams-polyfill';

type BufferSource = ArrayBuffer | ArrayBufferView;
import { TextDecoder, TextEncoder } from './encoding.ts';

const U8 = Uint8Array;
const isView = ArrayBuffer.isView;
const StringCtor = String;
const utf8 = new TextEncoder();

/**
 * A chunk written to one of Workers' byte streams as bytes: a BufferSource as it is, a string as its
 * UTF-8 (workerd takes strings there too), anything else a TypeError.
 */
export function bytesOf(chunk: unknown, what: string): Uint8Array {
  if (chunk instanceof ArrayBuffer) return new U8(chunk);
  if (isView(chunk)) return new U8(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return utf8.encode(chunk);
  throw new TypeError(`${what} takes ArrayBuffer, ArrayBufferView or string chunks (got ${chunk === null ? 'null' : typeof chunk})`);
}

/** A readable/writable pair over a TransformStream, as Workers' classes are (not subclasses of it). */
class Pair<I, O> {
  readonly readable: ReadableStream<O>;
  readonly writable: WritableStream<I>;
  constructor(transformer: Transformer<I, O>) {
    const t = new TransformStream<I, O>(transformer);
    this.readable = t.readable;
    this.writable = t.writable;
  }
}

export class TextEncoderStream extends Pair<string, Uint8Array> {
  constructor() {
    const encoder = new TextEncoder();
    // A lone high surrogate at a chunk's end waits for the next chunk's low one.
    let pending = '';
    super({
      transform(chunk, controller) {
        let s = pending + StringCtor(chunk);
        pending = '';
        const last = s.charCodeAt(s.length - 1);
        if (last >= 0xd800 && last <= 0xdbff) {
          pending = s.slice(-1);
          s = s.slice(0, -1);
        }
        if (s.length > 0) controller.enqueue(encoder.encode(s));
      },
      flush(controller) {
        if (pending) controller.enqueue(encoder.encode(pending));
      },
    });
  }
  get encoding(): string {
    return 'utf-8';
  }
}

/** How many bytes at the end of `b` are the start of a UTF-8 sequence that the next chunk completes. */
function incompleteTail(b: Uint8Array): number {
  for (let back = 1; back <= 3 && back <= b.length; back++) {
    const c = b[b.length - back]!;
    if (c < 0x80) return 0;
    if (c >= 0xc0) {
      const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      return need > back ? back : 0;
    }
  }
  return 0;
}

export class TextDecoderStream extends Pair<BufferSource, string> {
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  constructor(label = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
    const first = new TextDecoder(label, options);
    const rest = new TextDecoder(label, { fatal: options.fatal, ignoreBOM: true });
    let started = false;
    let held = new U8(0);
    const decode = (b: Uint8Array) => {
      const s = (started ? rest : first).decode(b);
      started = true;
      return s;
    };
    super({
      transform(chunk, controller) {
        if (typeof chunk === 'string') throw new TypeError('TextDecoderStream takes ArrayBuffer or ArrayBufferView chunks (got string)');
        const b = bytesOf(chunk, 'TextDecoderStream');
        const all = new U8(held.length + b.length);
        all.set(held);
        all.set(b, held.length);
        const keep = incompleteTail(all);
        held = all.slice(all.length - keep);
        const s = decode(all.subarray(0, all.length - keep));
        if (s.length > 0) controller.enqueue(s);
      },
      flush(controller) {
        if (held.length > 0) controller.enqueue(decode(held));
      },
    });
    this.encoding = first.encoding;
    this.fatal = Boolean(options.fatal);
    this.ignoreBOM = Boolean(options.ignoreBOM);
  }
}

export class IdentityTransformStream extends Pair<BufferSource, Uint8Array> {
  constructor() {
    super({
      transform(chunk, controller) {
        controller.enqueue(bytesOf(chunk, 'IdentityTransformStream').slice());
      },
    });
  }
}

export class FixedLengthStream extends Pair<BufferSource, Uint8Array> {
  constructor(length: number | bigint) {
    const expected = Number(length);
    if (!Number.isSafeInteger(expected) || expected < 0) throw new TypeError('FixedLengthStream needs a non-negative integer length');
    let seen = 0;
    super({
      transform(chunk, controller) {
        const b = bytesOf(chunk, 'FixedLengthStream');
        seen += b.byteLength;
        if (seen > expected) throw new TypeError(`FixedLengthStream: more bytes were written than the ${expected} it was created with`);
        controller.enqueue(b.slice());
      },
      flush() {
        if (seen !== expected) throw new TypeError(`FixedLengthStream: the stream ended after ${seen} of the ${expected} bytes it was created with`);
      },
    });
  }
}
