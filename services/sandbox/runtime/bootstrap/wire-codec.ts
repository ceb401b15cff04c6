/**
 * How values cross as text: JSON, with bytes as `{"$b": …}` and a capability handed back as `{"$h": id}`.
 * What `$b` holds depends on where the text goes (a ByteCarrier): base64 inside the text where it is kept
 * or sent on as text (workflow values, queue batches), or the index of an ArrayBuffer that crosses beside
 * the text (a WireMessage, the host↔isolate capability calls: copied once, never encoded). Shared by the
 * isolate (bootstrap) and the host.
 */
export interface Base64 {
  encode(bytes: Uint8Array): string;
  decode(text: string): Uint8Array;
}

/** Where the bytes of a value go: `put` answers what stands for them in the text, `take` gives them back. */
export interface ByteCarrier {
  put(bytes: Uint8Array): string | number;
  take(ref: unknown): Uint8Array;
}

/** Text and the ArrayBuffers its `{"$b": index}` stand for: what crosses host↔isolate as one structured copy. */
export interface WireMessage {
  text: string;
  bytes: ArrayBuffer[];
}

// Captured when this module is evaluated, before tenant code: a tenant's subclass, proxy or patched
// prototype cannot make a view claim bytes it does not have (the getters throw on anything but a real view).
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
const getter = (proto: object, name: string) => Object.getOwnPropertyDescriptor(proto, name)!.get!;
const taBuffer = getter(TypedArrayProto, 'buffer');
const taOffset = getter(TypedArrayProto, 'byteOffset');
const taLength = getter(TypedArrayProto, 'byteLength');
const dvBuffer = getter(DataView.prototype, 'buffer');
const dvOffset = getter(DataView.prototype, 'byteOffset');
const dvLength = getter(DataView.prototype, 'byteLength');
const abLength = getter(ArrayBuffer.prototype, 'byteLength');
const abSlice = ArrayBuffer.prototype.slice;
const isView = ArrayBuffer.isView;
const call = Reflect.apply;
const U8 = Uint8Array;
const ArrayBufferCtor = ArrayBuffer;
const DataViewCtor = DataView;
const isInteger = Number.isInteger;
const stringify = JSON.stringify;
const parse = JSON.parse;
const keysOf = Object.keys;
const isArray = Array.isArray;

/**
 * The bytes `v` holds as a Uint8Array over the same memory, or undefined if it is not bytes. Throws for a
 * detached or forged one; a subclass's own getters (a lying `buffer` or `byteLength`) are never asked.
 */
export function viewOf(v: unknown): Uint8Array | undefined {
  if (v instanceof ArrayBufferCtor) {
    call(abLength, v, []);
    return new U8(v);
  }
  if (!isView(v)) return undefined;
  const dv = v instanceof DataViewCtor;
  const buffer = call(dv ? dvBuffer : taBuffer, v, []) as ArrayBuffer;
  return new U8(buffer, call(dv ? dvOffset : taOffset, v, []) as number, call(dv ? dvLength : taLength, v, []) as number);
}

/** Bytes as base64 inside the text. */
export function inText(b64: Base64): ByteCarrier {
  return {
    put: (bytes) => b64.encode(bytes),
    take(ref) {
      if (typeof ref !== 'string') throw new TypeError('malformed bytes in a wire message');
      return b64.decode(ref);
    },
  };
}

/** Bytes beside the text, in `list` (each put is one ArrayBuffer of exactly its bytes). */
export function beside(list: ArrayBuffer[]): ByteCarrier {
  return {
    put(bytes) {
      const buffer = call(taBuffer, bytes, []) as ArrayBuffer;
      const start = call(taOffset, bytes, []) as number;
      const length = call(taLength, bytes, []) as number;
      // A view of part of a buffer sends that part only; a whole buffer goes as it is (the crossing copies it).
      list.push(start === 0 && length === call(abLength, buffer, []) ? buffer : (call(abSlice, buffer, [start, start + length]) as ArrayBuffer));
      return list.length - 1;
    },
    take(ref) {
      const buffer = typeof ref === 'number' && isInteger(ref) && ref >= 0 ? list[ref] : undefined;
      if (!(buffer instanceof ArrayBufferCtor)) throw new TypeError('malformed bytes in a wire message');
      return new U8(buffer);
    },
  };
}

export function encodeWire(value: unknown, carrier: ByteCarrier): string {
  // Look at the raw value (`this[key]`): JSON.stringify has already applied toJSON, which turns a
  // Node Buffer (what capnweb hands out for bytes) into {type, data}.
  return stringify(value, function (this: Record<string, unknown>, key, converted: unknown) {
    const bytes = viewOf(this[key]);
    return bytes ? { $b: carrier.put(bytes) } : converted;
  });
}

export function decodeWire(text: string, carrier: ByteCarrier): unknown {
  // A reviver makes JSON.parse several times slower; most messages carry no bytes.
  if (!text.includes('"$b"')) return parse(text);
  return parse(text, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !isArray(v)) {
      const keys = keysOf(v);
      if (keys.length === 1 && keys[0] === '$b') return carrier.take((v as { $b: unknown }).$b);
    }
    return v;
  });
}

/** `value` as a WireMessage. */
export function toMessage(value: unknown): WireMessage {
  const bytes: ArrayBuffer[] = [];
  return { text: encodeWire(value, beside(bytes)), bytes };
}

/** The value of a WireMessage (from the other side: its shape is checked). */
export function fromMessage(message: unknown): unknown {
  const m = message as Partial<WireMessage> | null;
  if (!m || typeof m !== 'object' || typeof m.text !== 'string' || !isArray(m.bytes)) throw new TypeError('malformed wire message');
  return decodeWire(m.text, beside(m.bytes));
}
