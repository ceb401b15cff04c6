/**
 * A small WebAssembly binary reader for the two things the runtime must know before V8 compiles a
 * module:
 * - does it declare or import shared memory? Shared memory hands out SharedArrayBuffers (a
 *   high-resolution timer with Atomics gone or not), so such modules are refused;
 * - how large may the memories it defines become? Memory grown from inside Wasm (`memory.grow`) is
 *   out of the runtime's sight, so each defined memory's maximum is capped here (`planMemories`) and
 *   the capped maximum is what an instance is charged against the worker's memory limit.
 * It fails closed: anything it cannot read in the import and memory sections is refused too, 64-bit
 * and custom-page-size memories included. Runs in the isolate (bootstrap, possibly after tenant code
 * patched the built-ins: so only what is captured here at load, typed arrays and operators) and on
 * the host.
 */

export const WASM_PAGE = 65536;

const U8 = Uint8Array;
const F64 = Float64Array;
const RangeErr = RangeError;
const apply = Reflect.apply;
const TypedArrayProto = Object.getPrototypeOf(U8.prototype) as object;
const taLength = Object.getOwnPropertyDescriptor(TypedArrayProto, 'length')!.get!;

/** A module refused for what it asks (not for being malformed). */
class Refusal {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/**
 * The memories a module defines, three numbers each: limits flags, initial pages, maximum pages (-1:
 * none declared); and where its memory section is.
 */
type Reading = { problem: string } | { problem: null; memories: Float64Array; section: [start: number, end: number] | undefined };

/** A module ready for V8: its bytes (memory maximums capped) and the byte size all its defined memories may reach together. */
export interface MemoryPlan {
  bytes: Uint8Array;
  maxBytes: number;
  /** How many memories it defines. */
  count: number;
}

/** Why `bytes` is refused, or null when it is not (the rest is V8's to validate). */
export function wasmProblem(bytes: Uint8Array): string | null {
  return read(bytes).problem;
}

function read(bytes: Uint8Array): Reading {
  let pos = 0;
  const end = apply(taLength, bytes, []) as number;
  const fail = (why: string): never => {
    throw new RangeErr(why);
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
  /** Table limits (any index type). */
  const limits = (): void => {
    const flags = byte();
    if (flags > 0x07) fail(`unknown limits flags 0x${flags.toString(16)}`);
    uleb();
    if (flags & 0x01) uleb();
  };
  /** Memory limits, written to `into` at `at` when given: shared and 64-bit memories are refused. */
  const memoryType = (what: string, into?: Float64Array, at = 0): void => {
    const flags = byte();
    if (flags > 0x07) fail(`unknown memory limits flags 0x${flags.toString(16)}`);
    if (flags & 0x02) throw new Refusal(`the module ${what} shared memory, which is disallowed`);
    if (flags & 0x04) throw new Refusal(`the module ${what} a 64-bit memory, which is not supported`);
    const initial = uleb();
    const maximum = flags & 0x01 ? uleb() : -1;
    if (into) {
      into[at] = flags;
      into[at + 1] = initial;
      into[at + 2] = maximum;
    }
  };
  let memories = new F64(0);
  let section: [number, number] | undefined;
  try {
    if (end < 8 || bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) return { problem: 'not a WebAssembly module' };
    if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) return { problem: 'unsupported WebAssembly binary version' };
    pos = 8;
    while (pos < end) {
      const sectionStart = pos;
      const id = byte();
      const size = uleb();
      if (size > end - pos) return { problem: 'truncated section' };
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
          } else if (kind === 0x02) memoryType('imports');
          else if (kind === 0x03) {
            valtype();
            byte();
          } else if (kind === 0x04) {
            byte();
            uleb();
          } else return { problem: `unknown import kind 0x${kind.toString(16)}` };
        }
      } else if (id === 5) {
        if (section) fail('two memory sections');
        const count = uleb();
        if (count > size) fail('memory section size mismatch'); // each memory takes two bytes at least
        memories = new F64(count * 3);
        for (let i = 0; i < count; i++) memoryType('declares', memories, i * 3);
        if (pos !== sectionEnd) fail('memory section size mismatch');
        section = [sectionStart, sectionEnd];
      }
      pos = sectionEnd;
    }
    return { problem: null, memories, section };
  } catch (e) {
    if (e instanceof Refusal) return { problem: e.message };
    return { problem: `malformed WebAssembly module: ${(e as Error).message}` };
  }
}

/** Writes `value` as unsigned LEB128 into `out` at `at`; returns the position after it. */
function uleb128(out: Uint8Array, at: number, value: number): number {
  let v = value;
  let i = at;
  do {
    const low = v % 128;
    v = (v - low) / 128;
    out[i++] = v > 0 ? low | 0x80 : low;
  } while (v > 0);
  return i;
}

/**
 * The module as V8 may compile it: each memory it defines gets a maximum of at most `capPages` (or its
 * initial size, when that is larger), so that no `memory.grow` inside Wasm can take it further; a
 * declared maximum below that is kept. Returns why the module is refused instead, when it is.
 */
export function planMemories(bytes: Uint8Array, capPages: number): MemoryPlan | string {
  const r = read(bytes);
  if (r.problem !== null) return r.problem;
  const m = r.memories;
  const count = (apply(taLength, m, []) as number) / 3;
  let maxBytes = 0;
  let changed = false;
  // At most 1 + 5 + 5 bytes a memory (flags, two 32-bit LEB128s), after the count.
  const content = new U8(5 + count * 11);
  let at = uleb128(content, 0, count);
  for (let i = 0; i < count; i++) {
    const initial = m[i * 3 + 1]!;
    const declared = m[i * 3 + 2]!;
    const ceiling = initial > capPages ? initial : capPages;
    const maximum = declared >= 0 && declared <= ceiling ? declared : ceiling;
    if (maximum !== declared) changed = true;
    maxBytes += maximum * WASM_PAGE;
    content[at++] = m[i * 3]! | 0x01;
    at = uleb128(content, at, initial);
    at = uleb128(content, at, maximum);
  }
  if (!changed || !r.section) return { bytes, maxBytes, count };
  // The memory section rebuilt with the capped maximums (nothing else in a module points into it).
  const head = new U8(6);
  head[0] = 5;
  const headLength = uleb128(head, 1, at);
  const start = r.section[0];
  const end = r.section[1];
  const total = apply(taLength, bytes, []) as number;
  const out = new U8(start + headLength + at + (total - end));
  // Plain loops: the typed-array methods consult species constructors the tenant may have replaced.
  let o = 0;
  for (let i = 0; i < start; i++) out[o++] = bytes[i]!;
  for (let i = 0; i < headLength; i++) out[o++] = head[i]!;
  for (let i = 0; i < at; i++) out[o++] = content[i]!;
  for (let i = end; i < total; i++) out[o++] = bytes[i]!;
  return { bytes: out, maxBytes, count };
}
