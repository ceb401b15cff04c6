/**
 * A Workers RPC pipe across the mesh (runtime/rpc-pipes.ts carries it inside this process): this
 * sandbox's end offered to the other side as a capability (PipeTarget), and the other side's end,
 * a capability we hold, as a PipePeer. Messages go out through the cordon's shared session to the
 * supervisor, so they pass the same gate as every other call, in order; a pipe whose messages pile
 * up unanswered is closed rather than buffered for.
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import type { RpcPipe } from '../../schemas/service-bindings.ts';
import type { PipePeer } from './runtime/index.ts';
import { supervisorCalls } from './call-gate.ts';

/** Messages of one pipe on their way out and not yet acknowledged; beyond this the pipe is closed. */
export const MAX_UNACKED = 1024;

/**
 * Our end, for the other side to send to. Released by the other side (or its session lost), it calls
 * `released` — by default the pipe ends here too.
 */
export class PipeTarget extends RpcTarget implements RpcPipe {
  #peer: PipePeer | undefined;
  readonly #released: (() => void) | undefined;
  constructor(peer: PipePeer, released?: () => void) {
    super();
    this.#peer = peer;
    this.#released = released;
  }
  async send(message: unknown): Promise<void> {
    if (typeof message !== 'string') throw new TypeError('a pipe message is a string');
    this.#peer?.send(message);
  }
  async close(reason: unknown): Promise<void> {
    const peer = this.#peer;
    this.#peer = undefined;
    peer?.close(typeof reason === 'string' ? reason.slice(0, 500) : 'closed');
  }
  [Symbol.dispose](): void {
    if (this.#released) this.#released();
    else void this.close('the other end of the RPC session went away');
  }
}

/** The other side's end (a capability we now own), as our carrier writes to it; `lost`: the connection to it broke. */
export function remotePipe(stub: RpcStub<RpcPipe>, lost: (reason: string) => void): PipePeer {
  let open = true;
  let unacked = 0;
  const shut = (reason: string) => {
    if (!open) return;
    open = false;
    void supervisorCalls
      .run(() => stub.close(reason))
      .catch(() => {})
      .finally(() => stub[Symbol.dispose]());
  };
  stub.onRpcBroken(() => {
    if (!open) return;
    open = false;
    lost('the connection to the other end of the RPC session was lost');
  });
  return {
    send(message) {
      if (!open) return;
      if (++unacked > MAX_UNACKED) {
        shut('the other end does not keep up');
        return lost(`more than ${MAX_UNACKED} RPC messages unanswered: the session was closed`);
      }
      void supervisorCalls
        .run(() => stub.send(message))
        .then(
          () => void unacked--,
          () => {
            if (!open) return;
            open = false;
            lost('the other end of the RPC session is gone');
          },
        );
    },
    close: shut,
  };
}

/**
 * A session the worker opens (`toIsolate`: its end) to whatever `open` reaches with our end: the other
 * side's end comes back. Released when the open fails too: then the refusal, not the release, is what
 * the worker hears.
 */
export async function openPipe(toIsolate: PipePeer, open: (mine: PipeTarget) => Promise<unknown>): Promise<PipePeer> {
  let connected = false;
  const mine = new PipeTarget(toIsolate, () => {
    if (connected) toIsolate.close('the other end of the RPC session went away');
  });
  const theirs = (await supervisorCalls.run(() => open(mine))) as RpcStub<RpcPipe>;
  connected = true;
  return remotePipe(theirs, (reason) => toIsolate.close(reason));
}
