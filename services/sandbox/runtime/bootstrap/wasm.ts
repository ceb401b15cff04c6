/**
 * A small WebAssembly binary reader that answers one question: does this module declare or import
 * shared memory? Shared memory hands out SharedArrayBuffers (a high-resolution timer with Atomics
 * gone or not), so modules that ask for it are refused. It fails closed: anything it cannot read
 * in the import and memory sections is refused too. Runs in the isolate (bootstrap) and on the host.
 */

/** Why `bytes` is refused, or null when it declares no shared memory (the rest is V8's to validate). */
export function wasmProblem(bytes: Uint8Array): string | null {
  let pos = 0;
  const end = bytes.length;
  const fail = (why: string) => {
    throw new RangeError(why);
  };
  const byte = (): number => {
    if (pos >= end) fail('truncated module');
    return bytes[pos++]!;
  };
  // Unsigned LEB128 (up to 64 bits; the value only matters for sizes, which stay < 2^53).
  const uleb = (): number => {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = byte();
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
    return fail('malformed LEB128');
  };
  const sleb = (): void => {
    for (let i = 0; i < 10; i++) if ((byte() & 0x80) === 0) return;
    fail('malformed LEB128');
  };
  const skip = (n: number) => {
    if (n > end - pos) fail('truncated module');
    pos += n;
  };
  const name = () => skip(uleb());
  const valtype = () => {
    const b = byte();
    if (b === 0x63 || b === 0x64) sleb(); // (ref null? heaptype)
  };
  /** Memory/table limits; returns true when the shared flag is set. */
  const limits = (): boolean => {
    const flags = byte();
    if (flags > 0x07) fail(`unknown limits flags 0x${flags.toString(16)}`);
    uleb();
    if (flags & 0x01) uleb();
    return (flags & 0x02) !== 0;
  };
  try {
    if (end < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) return 'not a WebAssembly module';
    if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return 'unsupported WebAssembly binary version';
    pos = 8;
    while (pos < end) {
      const id = byte();
      const size = uleb();
      if (size > end - pos) return 'truncated section';
      const sectionEnd = pos + size;
      if (id === 2) {
        for (let n = uleb(); n > 0; n--) {
          name();
          name();
          const kind = byte();
          if (kind === 0x00) uleb();
          else if (kind === 0x01) {
            valtype();
            limits();
          } else if (kind === 0x02) {
            if (limits()) return 'the module imports shared memory, which is disallowed';
          } else if (kind === 0x03) {
            valtype();
            byte();
          } else if (kind === 0x04) {
            byte();
            uleb();
          } else return `unknown import kind 0x${kind.toString(16)}`;
        }
      } else if (id === 5) {
        for (let n = uleb(); n > 0; n--) if (limits()) return 'the module declares shared memory, which is disallowed';
      }
      pos = sectionEnd;
    }
    return null;
  } catch (e) {
    return `malformed WebAssembly module: ${(e as Error).message}`;
  }
}
