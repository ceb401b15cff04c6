/**
 * capnweb's sessions, a lazy unit (units.ts): only an isolate that makes or serves a Workers RPC call
 * loads them. Its RpcTarget is capnweb.ts's, in the snapshot (bootstrap-bundle.ts patches capnweb to
 * use it), so classes that extend RpcTarget exist before the unit does.
 */
export { RpcSession } from 'capnweb';
