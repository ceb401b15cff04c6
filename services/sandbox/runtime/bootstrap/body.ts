/**
 * The body of a Request or Response: known bytes (the fast path: what crosses the isolate boundary)
 * or a ReadableStream of Uint8Array (web-streams-polyfill, loaded on first use: streams.ts); `body` is
 * always a stream, made from the bytes when first asked for.
 */
import { TextDecoder, TextEncoder } from './encoding.ts';
import type { URLSearchParams } from 'whatwg-url';
import type { ReadableStream } from 'web-streams-polyfill';
import { streamClassOrNone, streams } from './streams.ts';
import { urlClassOrNone } from './url.ts';
import type { Headers } from './headers.ts';
import { Blob, concat } from './blob.ts';
import { decodeForm, encodeMultipart, FormData } from './form-data.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const U8 = Uint8Array;
/** What a body sent out holds instead of its bytes (Body.takeOut). */
const EMPTY = new U8(0);
const apply = Reflect.apply;
const abByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;
const TypedArrayProto = Object.getPrototypeOf(U8.prototype) as object;
const taGetter = (name: string) => Object.getOwnPropertyDescriptor(TypedArrayProto, name)!.get!;
const taBuffer = taGetter('buffer');
const taByteOffset = taGetter('byteOffset');
const taByteLength = taGetter('byteLength');
const weakSetAdd = WeakSet.prototype.add;
const weakSetDelete = WeakSet.prototype.delete;

/**
 * Bytes the runtime made and hands straight to a Request or Response it builds (handOver): nobody
 * else holds them, so the body keeps them as they are instead of copying them as a tenant's bytes are.
 */
const handedOver = new WeakSet<Uint8Array>();

/** `bytes` (the whole of a buffer only the runtime holds, such as a request body the host moved in) become the next body's own, uncopied. */
export function handOver(bytes: Uint8Array): Uint8Array {
  apply(weakSetAdd, handedOver, [bytes]);
  return bytes;
}

/**
 * Whether `bytes` is the whole of its ArrayBuffer (not a SharedArrayBuffer: the brand check throws),
 * so that handing on the buffer hands on exactly these bytes.
 */
function whole(bytes: Uint8Array): boolean {
  try {
    if (apply(taByteOffset, bytes, []) !== 0) return false;
    return apply(taByteLength, bytes, []) === apply(abByteLength, apply(taBuffer, bytes, []), []);
  } catch {
    return false;
  }
}

export type BodyInit = string | ArrayBuffer | ArrayBufferView | URLSearchParams | Blob | FormData | ReadableStream<Uint8Array> | null | undefined;

/**
 * A body's bytes or stream. `own`: the bytes are a copy nobody else holds (every BodyInit is copied in,
 * or handed over by the runtime), so the body may hand their buffer on once rather than copy it again.
 */
type Source = { bytes: Uint8Array; own: boolean } | { stream: ReadableStream<Uint8Array> } | null;

/** A web-streams-polyfill stream's "disturbed" flag (read from or cancelled), which the standard keeps internal. */
function disturbed(stream: ReadableStream<Uint8Array>): boolean {
  return (stream as unknown as { _disturbed?: boolean })._disturbed === true;
}

export function toSource(body: BodyInit, headers: Headers): Source {
  if (body instanceof streamClassOrNone('ReadableStream')) {
    if (body.locked || disturbed(body)) throw new TypeError('The body stream is locked or has already been read from');
    return { stream: body };
  }
  const bytes = toBytes(body as Exclude<BodyInit, ReadableStream>, headers);
  return bytes === null ? null : { bytes, own: true };
}

function toBytes(body: Exclude<BodyInit, ReadableStream>, headers: Headers): Uint8Array | null {
  if (body === null || body === undefined) return null;
  if (typeof body === 'string') {
    if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    return encoder.encode(body);
  }
  if (body instanceof urlClassOrNone('URLSearchParams')) {
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    return encoder.encode(body.toString());
  }
  if (body instanceof Blob) {
    if (!headers.has('content-type') && body.type) headers.set('content-type', body.type);
    return Blob.peek(body).slice();
  }
  if (body instanceof FormData) {
    const { bytes, type } = encodeMultipart(body);
    if (!headers.has('content-type')) headers.set('content-type', type);
    return bytes;
  }
  if (body instanceof ArrayBuffer) return new U8(body.slice(0));
  if (body instanceof U8 && apply(weakSetDelete, handedOver, [body])) return body;
  if (ArrayBuffer.isView(body)) return new U8(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer);
  const s = String(body);
  if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  return encoder.encode(s);
}

/** Every chunk of a body stream, joined; chunks must be bytes, and `max` bounds the total. */
async function readAll(stream: ReadableStream<Uint8Array>, max = Infinity): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (!(value instanceof U8)) {
      await reader.cancel();
      throw new TypeError('a body stream must give Uint8Array chunks');
    }
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new RangeError(`the body is over ${max} bytes`);
    }
    chunks.push(value);
  }
  return concat(chunks);
}

export abstract class Body {
  #bytes: Uint8Array | null;
  #stream: ReadableStream<Uint8Array> | null;
  #used = false;
  /** #bytes is nobody else's (Source's `own`): arrayBuffer() or the response's way out may take its buffer, once. */
  #own: boolean;
  constructor(source: Source) {
    this.#bytes = source && 'bytes' in source ? source.bytes : null;
    this.#own = source !== null && 'bytes' in source && source.own;
    this.#stream = source && 'stream' in source ? source.stream : null;
  }
  /** Fetch: a body is used once its stream is disturbed; a null body never is. */
  get bodyUsed(): boolean {
    return this.#used || (this.#stream !== null && disturbed(this.#stream));
  }
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream === null && this.#bytes !== null) {
      const bytes = this.#bytes;
      // A byte stream, as the standard's body is, so a BYOB reader can read it.
      this.#stream = new (streams().ReadableStream)({
        type: 'bytes',
        start(controller) {
          if (bytes.byteLength) controller.enqueue(bytes.slice());
          controller.close();
        },
      }) as ReadableStream<Uint8Array>;
      this.#bytes = null; // from now on the stream is the body: reading it uses it
      this.#own = false;
      // Consumed through the bytes path: the stream is as a full read leaves it, disturbed and locked.
      if (this.#used) void this.#stream.getReader().read();
    }
    return this.#stream;
  }
  async #consume(): Promise<Uint8Array> {
    if (this.bodyUsed || this.#stream?.locked) throw new TypeError('Body has already been used');
    if (this.#bytes === null && this.#stream === null) return new U8(0);
    this.#used = true;
    if (this.#bytes !== null) return this.#bytes;
    return readAll(this.#stream!);
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.#consume();
    // Bytes nobody else holds are handed over as they are, not copied (a 64 KiB echo copied them twice
    // more); the body keeps them, no longer its own, so nothing else hands them on.
    if (this.#own && b === this.#bytes && whole(b)) {
      this.#own = false;
      return apply(taBuffer, b, []) as ArrayBuffer;
    }
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }
  async bytes(): Promise<Uint8Array> {
    return new U8(await this.arrayBuffer());
  }
  async text(): Promise<string> {
    return decoder.decode(await this.#consume());
  }
  async blob(): Promise<Blob> {
    const type = (this as unknown as { headers: Headers }).headers.get('content-type') ?? '';
    return new Blob([await this.#consume()], { type });
  }
  async formData(): Promise<FormData> {
    const type = (this as unknown as { headers: Headers }).headers.get('content-type') ?? '';
    return decodeForm(await this.#consume(), type);
  }
  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
  /** The body as a source for a copy: bytes shared, or one branch of the stream (the other stays here). */
  static fork(b: Body): Source {
    // The bytes are shared from now on: neither body may hand their buffer on.
    b.#own = false;
    if (b.#bytes !== null) return { bytes: b.#bytes, own: false };
    if (b.#stream === null) return null;
    const [mine, theirs] = b.#stream.tee();
    b.#stream = mine;
    return { stream: theirs };
  }
  /** Give a fresh body (of a copy) the source `fork` made. */
  static adopt(b: Body, source: Source): void {
    b.#bytes = source && 'bytes' in source ? source.bytes : null;
    b.#stream = source && 'stream' in source ? source.stream : null;
    b.#own = source !== null && 'bytes' in source && source.own;
  }
  /** Brand check for the runtime: throws unless `b` is a real Request or Response. */
  static check(b: Body): void {
    void b.#used;
  }
  /** For the runtime: a body still to be streamed out (a stream nobody read), taken over (the body is used then). */
  static takeStream(b: Body): ReadableStream<Uint8Array> | null {
    if (b.#bytes !== null || b.#stream === null || b.bodyUsed || b.#stream.locked) return null;
    b.#used = true;
    return b.#stream;
  }
  /**
   * For the runtime sending a response out, after read(): the body is used from now on, as workerd's is
   * once a handler returned it (reading or cloning it throws). Whether `bytes` were its own and the whole
   * of their buffer, which the caller then holds alone and may move out of the isolate.
   */
  static takeOut(b: Body, bytes: Uint8Array): boolean {
    b.#used = true;
    if (b.#bytes === bytes) b.#bytes = EMPTY;
    if (!b.#own || !whole(bytes)) return false;
    b.#own = false;
    return true;
  }
  /** For the runtime: whether `b` is a body held as bytes (not yet a stream); false for anything else. */
  /** Whether `b` has no body (Fetch's null body), asked without making its stream as `body` would. */
  static isNull(b: Body): boolean {
    return b.#bytes === null && b.#stream === null;
  }
  static holdsBytes(b: unknown): boolean {
    return typeof b === 'object' && b !== null && #bytes in b && b.#bytes !== null;
  }
  /**
   * For Workers RPC: the bytes of a body that holds them (made from a string, bytes, a form…; not a
   * stream), at most `max`, to cross in the message itself rather than as a stream of their own; the body
   * is used then, as a body sent as a stream is. Null otherwise: the caller sends the stream.
   */
  static takeBytes(b: Body, max: number): Uint8Array | null {
    if (b.#bytes === null || b.#used || (apply(taByteLength, b.#bytes, []) as number) > max) return null;
    b.#used = true;
    return b.#bytes;
  }
  /** The whole body as bytes for the runtime (a stream is read to its end, at most `max` bytes; the body is used then). */
  static async read(b: Body, max = Infinity): Promise<Uint8Array | null> {
    if (b.#bytes !== null) return b.#bytes;
    if (b.#stream === null) return null;
    if (b.bodyUsed || b.#stream.locked) throw new TypeError('Body has already been used');
    b.#used = true;
    return readAll(b.#stream, max);
  }
}
