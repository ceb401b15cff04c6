/**
 * capnweb inside the isolate (a start-up snapshot library, abi.ts SNAPSHOT_MODULES): Workers RPC is
 * capnweb sessions between isolates, carried by the hosts (workers-rpc.ts). Its rules are Workers'
 * (what is callable on an RpcTarget, functions and stubs passed by reference, `Symbol.dispose`); it
 * looks up the Web API classes it serialises (Request, Response, ReadableStream, …) as globals when
 * it serialises, so it uses the bootstrap's own.
 */
export { RpcSession, RpcStub, RpcTarget } from 'capnweb';
