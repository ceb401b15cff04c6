/**
 * Bytes the runtime made for one response alone: an answer's body or a streamed chunk, each over an
 * ArrayBuffer made for it that nothing else holds. Once the channel has taken them (fast-port.ts, on the
 * socket write's completion), their memory is freed at once (freeSole) instead of waiting for a major
 * garbage collection (a 10 MiB stream is 40 buffers of 256 KiB), or given back to the stream that made
 * them, for its next bytes.
 */
const sole = new WeakMap<Uint8Array, Reuse | undefined>();

/** Takes a written chunk's buffer back for the same stream's next bytes, or declines it (false: it is freed). */
export type Reuse = (buffer: ArrayBuffer) => boolean;

/** `buffer` (one nothing else holds), or its first `length` bytes, as sole bytes; `reuse` may take the buffer back once written. */
export function soleBytes(buffer: ArrayBuffer, length = buffer.byteLength, reuse?: Reuse): Uint8Array {
  const bytes = new Uint8Array(buffer, 0, length);
  sole.set(bytes, reuse);
  return bytes;
}

/**
 * Nothing reads `bytes` any more: if they are sole bytes, their buffer goes back to the stream that made
 * them if it takes it, else its memory is freed now by detaching it (anything that still held it would
 * see 0 bytes, never other bytes); anything else is left as it is.
 */
export function freeSole(bytes: Uint8Array): void {
  if (!sole.has(bytes)) return;
  const reuse = sole.get(bytes);
  sole.delete(bytes);
  if (!reuse?.(bytes.buffer as ArrayBuffer)) free(bytes.buffer as ArrayBuffer);
}

/** Frees `buffer`'s memory now by detaching it (a holder would see 0 bytes, never other bytes). */
function free(buffer: ArrayBuffer): void {
  try {
    buffer.transfer(0);
  } catch {
    // not detachable: the GC's, as before
  }
}

/** Bytes all streams' spares (StreamSpares) of this process hold at most. */
export const SPARE_BYTES = 32 * 1024 * 1024;
/** Bytes held by the spares of every stream of this process now. */
let spareBytes = 0;
export const spareBytesHeld = (): number => spareBytes;

/**
 * One streamed body's buffers that were written (freeSole gives them back through `reuse`): its next
 * pulls' again, holding nothing but this stream's own earlier bytes, so neither zeroed nor allocated
 * anew. At most `max` per stream, and SPARE_BYTES for all streams of the process together: a stream
 * that sent fast and then waits (an event stream left open) keeps its spares while it stays open, and a
 * tenant's many such streams would hold host memory no isolate limit counts. Never another stream's.
 */
export class StreamSpares {
  readonly #kept: ArrayBuffer[] = [];
  readonly #max: number;
  #closed = false;
  constructor(max: number) {
    this.#max = max;
  }

  /** Keeps a written buffer for a later pull, or declines it (freeSole then frees it). */
  readonly reuse: Reuse = (buffer) => {
    if (this.#closed || this.#kept.length >= this.#max || spareBytes + buffer.byteLength > SPARE_BYTES) return false;
    spareBytes += buffer.byteLength;
    this.#kept.push(buffer);
    return true;
  };

  /** A kept buffer for the next pull, if any. */
  take(): ArrayBuffer | undefined {
    const buffer = this.#kept.pop();
    if (buffer) spareBytes -= buffer.byteLength;
    return buffer;
  }

  /** The stream ended: what it kept is freed now, and what is written later is not kept. */
  close(): void {
    this.#closed = true;
    for (let buffer = this.take(); buffer; buffer = this.take()) free(buffer);
  }
}
