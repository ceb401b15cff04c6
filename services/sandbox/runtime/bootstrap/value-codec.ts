/** Values that cross between isolates (workflow values, RPC arguments and results): structured-clonable data and bytes, as the wire encoding carries them. */
import { b64 } from './bindings.ts';
import { structuredClone } from './structured-clone.ts';
import { decodeWire, encodeWire, inText } from './wire-codec.ts';
import type { ValueCodec } from './workflow-step.ts';

const inB64 = inText(b64);

/** Checked to be structured-clonable first, so a function or a stub is refused with a DataCloneError. */
export const codec: ValueCodec = {
  encode: (v) => (v === undefined ? null : encodeWire(structuredClone(v), inB64)),
  decode: (t) => (t === null ? undefined : decodeWire(t, inB64)),
};
