/** The worker's `env`: its vars and a binding object per capability it was given. */
import type { BootOptions } from '../abi.ts';
import { b64, directoryBinding, storageBinding, type CapCall } from './bindings.ts';
import { structuredClone } from './structured-clone.ts';
import { decodeWire, encodeWire } from './wire-codec.ts';
import { workflowBinding, type CallAsync, type ValueCodec } from './workflow-step.ts';

/** Workflow values: JSON-compatible data and bytes, checked to be structured-clonable first. */
export const codec: ValueCodec = {
  encode: (v) => (v === undefined ? null : encodeWire(structuredClone(v), b64)),
  decode: (t) => (t === null ? undefined : decodeWire(t, b64)),
};

export function makeEnv(vars: BootOptions['vars'], bindings: BootOptions['bindings'], callCap: CapCall, callCapAsync: CallAsync): object {
  const bindingObjects: Record<string, object> = {};
  for (const b of bindings) {
    bindingObjects[b.name] =
      b.type === 'storage'
        ? storageBinding(callCap, b.name)
        : b.type === 'workflow'
          ? workflowBinding(callCapAsync, b.name, codec)
          : directoryBinding(callCap, b.name);
  }
  return Object.freeze({ ...vars, ...bindingObjects });
}
