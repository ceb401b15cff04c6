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

/** What the bindings are made from. */
export interface EnvDeps {
  callCap: CapCall;
  callCapAsync: CallAsync;
  /** `env.<name>` of a service binding (workers-rpc.ts). */
  service: (name: string) => object;
}

export function makeEnv(vars: BootOptions['vars'], bindings: BootOptions['bindings'], deps: EnvDeps): object {
  const { callCap, callCapAsync } = deps;
  // One line per binding type.
  const make: Record<BootOptions['bindings'][number]['type'], (name: string) => object> = {
    storage: (name) => storageBinding(callCap, name),
    directory: (name) => directoryBinding(callCap, name),
    workflow: (name) => workflowBinding(callCapAsync, name, codec),
    service: deps.service,
  };
  const bindingObjects: Record<string, object> = {};
  for (const b of bindings) bindingObjects[b.name] = make[b.type](b.name);
  return Object.freeze({ ...vars, ...bindingObjects });
}
