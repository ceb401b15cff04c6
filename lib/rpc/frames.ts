/**
 * Length-prefixed frames: a 4-byte big-endian length, then that many bytes of UTF-8 text; with the
 * length's top bit set, that many bytes of a binary message (the HTTP fast path's, fast-frames.ts).
 * The length is checked against the limit as soon as its 4 bytes arrive, before any of the body is
 * buffered, so a peer cannot make us allocate more than `maxFrame` bytes for one message.
 * Hand-written because it is 40 lines and every framing library we looked at buffers first.
 */
/** A message over the frame limit: 413, and a refusal (the peer sent, or asked for, more than it may). */
import { CordonError } from '../errors.ts';

export class FrameTooLargeError extends CordonError {
  readonly length: number;
  readonly max: number;
  constructor(length: number, max: number) {
    super(`frame of ${length} bytes exceeds the limit of ${max} bytes`, { status: 413, refusal: true });
    this.name = 'FrameTooLargeError';
    this.length = length;
    this.max = max;
  }
}

export function encodeFrame(text: string, maxFrame: number): Buffer {
  const length = Buffer.byteLength(text, 'utf8');
  if (length > maxFrame) throw new FrameTooLargeError(length, maxFrame);
  const frame = Buffer.allocUnsafe(4 + length);
  frame.writeUInt32BE(length, 0);
  frame.write(text, 4, 'utf8');
  return frame;
}

/** The length's top bit: the frame is binary (no limit comes near 2 GiB, so the bit is free). */
export const BINARY = 0x8000_0000;

/**
 * A frame whose body has not all arrived is assembled in a buffer of its own as its bytes come, up to
 * this size (over it, the pieces are kept and joined at the end): so a read is copied once, and a
 * peer that announces a large frame and stalls holds no more than it sent.
 */
const ASSEMBLE_IN_PLACE = 1024 * 1024;
/**
 * A binary frame of at least this size is a body's (or carries one): it is read into memory of its own,
 * or a pooled buffer, never the decoder's lent one. A smaller binary frame that arrives in pieces is
 * assembled in one buffer the decoder keeps and lends (a request's head can span reads: one allocation
 * fewer per frame). A lent view never covers the whole buffer, so a reader sees it is not the frame's
 * own memory and copies out what it keeps (fast-frames' Reader does): the next frame overwrites it.
 */
export const BODY_SIZED = 32 * 1024;

/** Room for a frame's head above a size class of FramePool (a 64 KiB body's response frame fits 64 KiB + 1 KiB). */
const HEAD_ROOM = 1024;
/** FramePool's size classes: a frame goes in the smallest that holds it, so a buffer lent is at most about twice its frame. */
const POOL_CLASSES = [BODY_SIZED, 64 * 1024, 128 * 1024, 256 * 1024].map((n) => n + HEAD_ROOM);
/** Free buffers a pool keeps per size class (at most ~4 MiB in all); past that, given-back buffers are left to the GC. */
const POOL_KEEP = 8;

/** The pool and the buffer behind bytes read from a pooled frame, until they are given back (once). */
const lentViews = new WeakMap<Uint8Array, { pool: FramePool; buffer: Buffer }>();

/**
 * Buffers for the binary frames of one connection whose bytes a reader keeps only until it has written
 * them on (ingress: a response body or streamed chunk, written to the client). A body-sized frame is
 * assembled in one of them instead of a new buffer each time (each a major GC's work once garbage:
 * a 10 MiB stream was 40 of 256 KiB). The reader marks the bytes it keeps (lend) and gives them back
 * (giveBack) once nothing reads them any more — for ingress, when the client socket has taken them —
 * and only then may the buffer carry another frame. Bytes never given back are the GC's, as before.
 */
export class FramePool {
  readonly #free: Buffer[][] = POOL_CLASSES.map(() => []);
  /** Pooled buffers, by their memory: a frame in one of them is read in place (holds). */
  readonly #mine = new WeakSet<ArrayBuffer>();

  /** A buffer of `length` bytes from the pool, or undefined if no size class fits it. */
  take(length: number): Buffer | undefined {
    const at = POOL_CLASSES.findIndex((size) => length <= size);
    if (length < BODY_SIZED || at < 0) return undefined;
    let buffer = this.#free[at]!.pop();
    if (!buffer) {
      buffer = Buffer.allocUnsafeSlow(POOL_CLASSES[at]!);
      this.#mine.add(buffer.buffer as ArrayBuffer);
    }
    return buffer.subarray(0, length);
  }

  /** Whether `frame` is in one of this pool's buffers. */
  holds(frame: Uint8Array): boolean {
    return this.#mine.has(frame.buffer as ArrayBuffer);
  }

  /** `view`, bytes of a frame in one of this pool's buffers, is what a reader keeps of it: the one view giveBack() takes. */
  lend(view: Uint8Array): void {
    const buffer = Buffer.from(view.buffer as ArrayBuffer);
    if (!this.#mine.has(buffer.buffer)) throw new Error('lend: not a pooled frame');
    lentViews.set(view, { pool: this, buffer });
  }

  /**
   * Nothing reads `view` any more (it was written on): if it is a pooled frame's lent bytes, their buffer
   * may carry another frame. A view is given back once; giving back anything else does nothing.
   */
  static giveBack(view: Uint8Array): void {
    const lent = lentViews.get(view);
    if (!lent) return;
    lentViews.delete(view);
    const free = lent.pool.#free[POOL_CLASSES.indexOf(lent.buffer.length)];
    if (free && free.length < POOL_KEEP) free.push(lent.buffer);
  }
}

export class FrameDecoder {
  readonly #header = Buffer.alloc(4);
  #headerFilled = 0;
  #need = -1; // body length of the frame being read; -1 while reading the header
  #binary = false;
  /** The incomplete frame's body, assembled in place (at most ASSEMBLE_IN_PLACE bytes) … */
  #frame: Buffer | undefined;
  /** … or its pieces so far (each its own memory, or a view of a read that is not reused). */
  #pieces: Buffer[] = [];
  #filled = 0;
  /** The lent assembly buffer (BODY_SIZED bytes, made on first use), and whether a frame in it is in use. */
  #lent: Buffer | undefined;
  #lentBusy = false;
  /** May be raised between pushes (a channel's limit grows once its peer has authenticated). */
  maxFrame: number;
  /** Where body-sized binary frames are assembled when the channel's reader gives their bytes back (FramePool). */
  pool: FramePool | undefined;
  constructor(maxFrame: number) {
    this.maxFrame = maxFrame;
  }

  /**
   * Feed bytes; returns the complete frames they finish (binary ones as Buffers of their own memory,
   * or lent: a view of the decoder's assembly buffer, valid until the next push — never the whole of it;
   * or, with a pool, a view of a pooled buffer, the reader's until it gives it back).
   * `reused`: `data` is overwritten after this call (a socket reading into one buffer), so nothing
   * of it is kept but copies. Throws FrameTooLargeError on an oversized header.
   */
  push(data: Buffer, reused = false): (string | Buffer)[] {
    const out: (string | Buffer)[] = [];
    // What the last push lent has been read (its frames' handlers ran); a frame still being assembled in it keeps it.
    this.#lentBusy = this.#frame !== undefined && this.#frame.buffer === this.#lent?.buffer;
    let at = 0;
    while (at < data.length) {
      if (this.#need < 0) {
        const n = Math.min(4 - this.#headerFilled, data.length - at);
        data.copy(this.#header, this.#headerFilled, at, at + n);
        this.#headerFilled += n;
        at += n;
        if (this.#headerFilled < 4) break;
        this.#headerFilled = 0;
        const word = this.#header.readUInt32BE(0);
        this.#binary = (word & BINARY) !== 0;
        const length = word & ~BINARY;
        if (length > this.maxFrame) throw new FrameTooLargeError(length, this.maxFrame);
        this.#need = length;
        this.#filled = 0;
        if (data.length - at >= length) {
          // The whole body is in this read: a binary one is copied out (it must not share the read's
          // memory: its bytes may be handed on whole), a text one decoded straight from it.
          out.push(this.#binary ? this.#copyOf(data, at, length) : data.toString('utf8', at, at + length));
          at += length;
          this.#need = -1;
          continue;
        }
        const pooled = this.#binary ? this.pool?.take(length) : undefined;
        if (pooled) this.#frame = pooled;
        else if (this.#binary && length < BODY_SIZED && !this.#lentBusy) {
          this.#lent ??= Buffer.allocUnsafeSlow(BODY_SIZED);
          this.#lentBusy = true;
          this.#frame = this.#lent.subarray(0, length);
        } else if (length <= ASSEMBLE_IN_PLACE) this.#frame = Buffer.allocUnsafeSlow(length);
      }
      const n = Math.min(this.#need - this.#filled, data.length - at);
      if (this.#frame) data.copy(this.#frame, this.#filled, at, at + n);
      else if (n) this.#pieces.push(reused ? copyOf(data, at, n) : data.subarray(at, at + n));
      this.#filled += n;
      at += n;
      if (this.#filled < this.#need) break;
      const body = this.#frame ?? Buffer.concat(this.#pieces, this.#need);
      this.#frame = undefined;
      this.#pieces = [];
      this.#need = -1;
      // Joined pieces are a buffer of their own only when more than the pool's half (Buffer.concat pools small ones).
      const own = body.byteOffset === 0 && body.buffer.byteLength === body.length;
      const kept = own || body.buffer === this.#lent?.buffer || this.pool?.holds(body);
      out.push(this.#binary ? (kept ? body : copyOf(body, 0, body.length)) : body.toString('utf8'));
    }
    return out;
  }

  /** Whether the decoder keeps views of the reads it was given (the pieces of a frame over ASSEMBLE_IN_PLACE): it copies everything else. */
  get keepsReads(): boolean {
    return this.#pieces.length > 0;
  }

  /** A binary frame's bytes out of a read, in a pooled buffer or one of their own. */
  #copyOf(data: Buffer, at: number, n: number): Buffer {
    const pooled = this.pool?.take(n);
    if (!pooled) return copyOf(data, at, n);
    data.copy(pooled, 0, at, at + n);
    return pooled;
  }
}

/** `n` bytes of `data` from `at`, in memory of their own (never a pooled slab shared with other buffers). */
function copyOf(data: Buffer, at: number, n: number): Buffer {
  const own = Buffer.allocUnsafeSlow(n);
  data.copy(own, 0, at, at + n);
  return own;
}
