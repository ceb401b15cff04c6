/**
 * Length-prefixed frames: a 4-byte big-endian length, then that many bytes of UTF-8 text.
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

export class FrameDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #need = -1; // body length of the frame being read; -1 while reading the header
  /** May be raised between pushes (a channel's limit grows once its peer has authenticated). */
  maxFrame: number;
  constructor(maxFrame: number) {
    this.maxFrame = maxFrame;
  }

  /** Feed bytes; returns the complete frames they finish. Throws FrameTooLargeError on an oversized header. */
  push(data: Buffer): string[] {
    this.#chunks.push(data);
    this.#buffered += data.length;
    const out: string[] = [];
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) break;
        const header = this.#take(4);
        const length = header.readUInt32BE(0);
        if (length > this.maxFrame) throw new FrameTooLargeError(length, this.maxFrame);
        this.#need = length;
      }
      if (this.#buffered < this.#need) break;
      out.push(this.#take(this.#need).toString('utf8'));
      this.#need = -1;
    }
    return out;
  }

  #take(n: number): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#chunks = rest.length ? [rest] : [];
    this.#buffered = rest.length;
    return head;
  }
}
