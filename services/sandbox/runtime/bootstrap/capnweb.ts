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
