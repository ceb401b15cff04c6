/**
 * Service bindings (Workers RPC): `env.<BINDING>` is another worker's entrypoint. The fields a
 * binding of type `service` carries, and the contract the hosts carry a session's messages over
 * (services/sandbox/runtime/rpc-pipes.ts): a pipe end, one per side.
 */
import { z } from 'zod';

// Worker and tenant names as schemas/worker.ts has them (not imported: worker.ts imports this file).
const SERVICE = /^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\/)?[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

/** An exported class name, as a JavaScript identifier (`default` for the default export). */
export const EntrypointName = z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/, 'an entrypoint is the name of an export (a JavaScript identifier)');

/** What `ctx.props` of the callee holds: JSON, set by whoever owns the binding, never by the caller's code. */
export const BindingProps = z.record(z.string(), z.json()).refine((p) => JSON.stringify(p).length <= 16 * 1024, 'props are at most 16 KiB as JSON');

/** The fields of a Binding of type `service` (schemas/worker.ts; present only on those). */
export const ServiceBindingFields = {
  /** The worker called: `name` (same tenant) or `tenant/name` (another tenant's, which must grant it). */
  service: z.string().regex(SERVICE, "a service is a worker name, or tenant/worker for another tenant's").optional(),
  entrypoint: EntrypointName.optional(),
  props: BindingProps.optional(),
};

/** One end of a pipe, as the carrier on the other side holds it (over the mesh: a capability). */
export interface RpcPipe {
  /** A capnweb message for this end. */
  send(message: string): Promise<void>;
  /** The other end is gone. */
  close(reason: string): Promise<void>;
}

/** What the supervisor hands a sandbox for a service binding of one of its workers. */
export interface ServiceBindingApi {
  /** Opens a session to the bound entrypoint: `caller` is the calling worker's end; resolves with the callee's. */
  connect(caller: RpcPipe): Promise<RpcPipe>;
}
