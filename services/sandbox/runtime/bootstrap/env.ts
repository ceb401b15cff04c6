/** The worker's `env`: its vars and a binding object per capability it was given. */
import type { BootOptions } from '../abi.ts';
import { directoryBinding, storageBinding, type CapCall } from './bindings.ts';
import { workflowBinding, type CallAsync } from './workflow-step.ts';
import { codec } from './value-codec.ts';
import { requests } from './request-state.ts';
import { NO_OUTBOUND_BINDING, OUTBOUND_BINDING } from '../abi.ts';
import { namespaceBinding } from './durable-objects.ts';
import { kvBinding } from './kv.ts';
import { d1Binding } from './d1.ts';
import { queueBinding } from './queue-producer.ts';
import { assetsBinding } from './assets.ts';

export { codec };

/** What the bindings are made from. */
export interface EnvDeps {
  callCap: CapCall;
  callCapAsync: CallAsync;
  /** `env.<name>` of a service binding, or (with `own` properties) a Durable Object stub's session to `name` (workers-rpc.ts). */
  service: (name: string, own?: Readonly<Record<string, unknown>>) => object;
  /** `env.<name>` of a Worker Loader binding (worker-loader.ts). */
  loader: (name: string) => object;
}

export function makeEnv(vars: BootOptions['vars'], bindings: BootOptions['bindings'], deps: EnvDeps): object {
  const { callCap, callCapAsync } = deps;
  // One line per binding type.
  const make: Record<BootOptions['bindings'][number]['type'], (name: string) => object> = {
    storage: (name) => storageBinding(callCap, name),
    directory: (name) => directoryBinding(callCap, name),
    workflow: (name) => workflowBinding(callCapAsync, name, codec),
    service: (name) => deps.service(name),
    loader: deps.loader,
    durable_object: (name) => namespaceBinding(callCap, callCapAsync, name, (target) => deps.service(target)),
    kv: (name) => kvBinding(callCapAsync, name),
    d1: (name) => d1Binding(callCapAsync, name),
    queue: (name) => queueBinding(callCapAsync, name),
    assets: (name) => assetsBinding(callCapAsync, name),
  };
  const bindingObjects: Record<string, object> = {};
  requests.outbound = undefined;
  requests.noOutbound = false;
  for (const b of bindings) {
    if (b.name === NO_OUTBOUND_BINDING) requests.noOutbound = true;
    // A Dynamic Worker's gateway: where its fetch() goes (index.ts), not in its env.
    else if (b.name === OUTBOUND_BINDING) requests.outbound = make[b.type](b.name) as unknown as NonNullable<typeof requests.outbound>;
    else bindingObjects[b.name] = make[b.type](b.name);
  }
  return Object.freeze({ ...vars, ...bindingObjects });
}
