/**
 * How capability calls cross the isolate boundary: JSON text, with bytes as `{"$b": base64}` and a
 * capability handed back as `{"$h": id}`. Shared by the isolate (bootstrap) and the host, each
 * giving its own base64 functions.
 */
export interface Base64 {
  encode(bytes: Uint8Array): string;
  decode(text: string): Uint8Array;
}

export function encodeWire(value: unknown, b64: Base64): string {
  // Look at the raw value (`this[key]`): JSON.stringify has already applied toJSON, which turns a
  // Node Buffer (what capnweb hands out for bytes) into {type, data}.
  return JSON.stringify(value, function (this: Record<string, unknown>, key, converted: unknown) {
    const v = this[key];
    if (v instanceof Uint8Array) return { $b: b64.encode(v) };
    if (v instanceof ArrayBuffer) return { $b: b64.encode(new Uint8Array(v)) };
    if (ArrayBuffer.isView(v)) return { $b: b64.encode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
    return converted;
  });
}

export function decodeWire(text: string, b64: Base64): unknown {
  // A reviver makes JSON.parse several times slower; most messages carry no bytes.
  if (!text.includes('"$b"')) return JSON.parse(text);
  return JSON.parse(text, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === '$b' && typeof (v as { $b: unknown }).$b === 'string') return b64.decode((v as { $b: string }).$b);
    }
    return v;
  });
}
