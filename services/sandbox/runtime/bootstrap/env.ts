/** The worker's `env`: its vars and a binding object per capability it was given. */
import type { BootOptions } from '../abi.ts';
import { directoryBinding, storageBinding, type CapCall } from './bindings.ts';
import { workflowBinding, type CallAsync } from './workflow-step.ts';
import { codec } from './value-codec.ts';
import { loaderBinding } from './worker-loader.ts';
import { entrypointStub } from './entrypoints.ts';

export { codec };

export function makeEnv(vars: BootOptions['vars'], bindings: BootOptions['bindings'], callCap: CapCall, callCapAsync: CallAsync, maxBody: number): object {
  const bindingObjects: Record<string, object> = {};
  for (const b of bindings) {
    bindingObjects[b.name] =
      b.type === 'storage'
        ? storageBinding(callCap, b.name)
        : b.type === 'workflow'
          ? workflowBinding(callCapAsync, b.name, codec)
          : b.type === 'loader'
            ? loaderBinding(callCapAsync, b.name, maxBody)
            : b.type === 'entrypoint'
              ? entrypointStub((method, args) => callCapAsync(b.name, 'invoke', [method, args]), maxBody, false)
              : directoryBinding(callCap, b.name);
  }
  return Object.freeze({ ...vars, ...bindingObjects });
}
