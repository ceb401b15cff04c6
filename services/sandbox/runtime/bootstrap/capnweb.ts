/**
 * Workers RPC's RpcTarget (a start-up snapshot library, abi.ts SNAPSHOT_MODULES): the marker class an
 * RPC-callable object extends. capnweb itself, whose sessions carry Workers RPC between isolates through
 * the hosts (workers-rpc.ts), is a lazy unit (rpc-unit.ts), patched to take this class as its own
 * (bootstrap-bundle.ts): WorkerEntrypoint, DurableObject and a worker's own RpcTargets extend it before any
 * session exists. capnweb's rules are Workers' (what is callable on an RpcTarget, functions and stubs
 * passed by reference, `Symbol.dispose`); it looks up the Web API classes it serialises (Request,
 * Response, ReadableStream, …) as globals when it serialises, so it uses the bootstrap's own.
 */
export class RpcTarget {}

// The marks an error of a Workers RPC call carries, as workerd sets them: `remote` on what the callee threw
// (its method, an RpcTarget's or a function's it returned, its fetch()), never on an error it returned as a
// value; `retryable` on a Durable Object call that did not reach its object or cannot be told to have run;
// `durableObjectReset` (not `remote`) on the error that reset an object (`ctx.abort()`, a throwing
// `blockConcurrencyWhile`).
// Own enumerable properties, as workerd's (`Object.keys(e)` lists them). Here, in the snapshot, so that the
// built-ins they use are taken before any tenant code runs, for the init half and the RPC unit alike.
const defineProperty = Object.defineProperty;
const hasOwn = Object.hasOwn;
const ErrorCtor = Error;

function mark(e: unknown, name: 'remote' | 'retryable' | 'durableObjectReset'): unknown {
  if (!(e instanceof ErrorCtor)) return e;
  try {
    defineProperty(e, name, { value: true, writable: true, enumerable: true, configurable: true });
  } catch {
    // A frozen error keeps what it has.
  }
  return e;
}

/** `e` marked as thrown by the other side of a call (an infrastructure error, marked retryable, and a reset are not). */
export function remote(e: unknown): unknown {
  return e instanceof ErrorCtor && (hasOwn(e, 'retryable') || hasOwn(e, 'durableObjectReset')) ? e : mark(e, 'remote');
}

/** `e`, the error that reset a Durable Object, marked so. */
export function resetBy(e: unknown): unknown {
  return mark(e, 'durableObjectReset');
}

/** `e` marked as a call that never ran, or cannot be told to have run: an idempotent one may be sent again. */
export function retryable(e: Error): Error {
  return mark(e, 'retryable') as Error;
}
