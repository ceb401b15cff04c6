/**
 * Bytes the runtime made for one response alone: an answer's body or a streamed chunk, each over an
 * ArrayBuffer isolated-vm has just made in this heap and nothing else holds. Once the channel has taken
 * them (fast-port.ts, on the socket write's completion), their memory is freed at once (freeSole)
 * instead of waiting for a major garbage collection: a 10 MiB stream is 40 buffers of 256 KiB.
 */
const sole = new WeakSet<Uint8Array>();

/** `buffer` (one nothing else holds), or its first `length` bytes, as sole bytes. */
export function soleBytes(buffer: ArrayBuffer, length = buffer.byteLength): Uint8Array {
  const bytes = new Uint8Array(buffer, 0, length);
  sole.add(bytes);
  return bytes;
}

/**
 * Frees the memory of `bytes` now if they are sole bytes, by detaching their buffer (anything that
 * still held it would see 0 bytes, never other bytes); anything else is left as it is.
 */
export function freeSole(bytes: Uint8Array): void {
  if (!sole.delete(bytes)) return;
  try {
    (bytes.buffer as ArrayBuffer).transfer(0);
  } catch {
    // not detachable: the GC's, as before
  }
}
