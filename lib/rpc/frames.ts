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

export class FrameDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = -1; // body length of the frame being read; -1 while reading the header
  #binary = false;
  /** May be raised between pushes (a channel's limit grows once its peer has authenticated). */
  maxFrame: number;
  constructor(maxFrame: number) {
    this.maxFrame = maxFrame;
  }

  /** Feed bytes; returns the complete frames they finish (binary ones as Buffers). Throws FrameTooLargeError on an oversized header. */
  push(data: Buffer): (string | Buffer)[] {
    this.#chunks.push(data);
    this.#buffered += data.length;
    const out: (string | Buffer)[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) break;
        const header = this.#take(4);
        const word = header.readUInt32BE(0);
        this.#binary = (word & BINARY) !== 0;
        const length = word & ~BINARY;
        if (length > this.maxFrame) throw new FrameTooLargeError(length, this.maxFrame);
        this.#need = length;
      }
      if (this.#buffered < this.#need) break;
      const body = this.#take(this.#need, this.#binary);
      out.push(this.#binary ? body : body.toString('utf8'));
      this.#need = -1;
    }
    return out;
  }

  /**
   * The next `n` bytes, copying only those (a large frame arrives in many reads; copying all that is
   * buffered for each frame would copy the frames behind it again and again). `own`: the bytes get
   * memory of their own, never a view of a read that holds other frames too (a binary frame's body is
   * handed on as a view of it).
   */
  #take(n: number, own = false): Buffer {
    const first = this.#chunks[0]!;
    let head: Buffer;
    if (first.length >= n) {
      head = first.subarray(0, n);
      if (own && !(first.byteOffset === 0 && first.buffer.byteLength === n)) {
        const copy = Buffer.allocUnsafeSlow(n);
        head.copy(copy);
        head = copy;
      }
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
    } else {
      head = Buffer.allocUnsafeSlow(n);
      let at = 0;
      while (at < n) {
        const chunk = this.#chunks[0]!;
        const used = Math.min(chunk.length, n - at);
        chunk.copy(head, at, 0, used);
        at += used;
        if (used === chunk.length) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(used);
      }
    }
    this.#buffered -= n;
    return head;
  }
}
