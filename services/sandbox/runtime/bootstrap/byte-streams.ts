/**
 * The stream classes of Workers that are glue over TransformStream: TextEncoderStream and
 * TextDecoderStream (every encoding TextDecoder has), IdentityTransformStream (bytes through
 * unchanged) and FixedLengthStream (the same, refusing any other total than the one it was given).
 */
import type { ReadableStream, Transformer, WritableStream } from 'web-streams-polyfill';
import { streams } from './streams.ts';

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
    const t = new (streams().TransformStream)<I, O>(transformer);
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

export class TextDecoderStream extends Pair<BufferSource, string> {
  readonly encoding: string;
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  constructor(label = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
    const decoder = new TextDecoder(label, options);
    super({
      transform(chunk, controller) {
        if (typeof chunk === 'string') throw new TypeError('TextDecoderStream takes ArrayBuffer or ArrayBufferView chunks (got string)');
        const s = decoder.decode(bytesOf(chunk, 'TextDecoderStream'), { stream: true });
        if (s.length > 0) controller.enqueue(s);
      },
      flush(controller) {
        const s = decoder.decode();
        if (s.length > 0) controller.enqueue(s);
      },
    });
    this.encoding = decoder.encoding;
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
