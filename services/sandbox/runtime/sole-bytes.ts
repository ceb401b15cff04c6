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
  if (reuse?.(bytes.buffer as ArrayBuffer)) return;
  try {
    (bytes.buffer as ArrayBuffer).transfer(0);
  } catch {
    // not detachable: the GC's, as before
  }
}
