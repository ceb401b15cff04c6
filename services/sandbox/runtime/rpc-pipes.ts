/**
 * The host's side of an isolate's Workers RPC pipes (bootstrap/workers-rpc.ts). The host does not
 * take part in the capnweb session that runs over a pipe: it carries its messages, verbatim, between
 * the isolate and the pipe's other end — another isolate in this process, or a peer over the mesh —
 * and bounds what one isolate can put on it: the size of a message, the pipes open at once, and the
 * messages held while a pipe's other end is being found. Whatever goes wrong on a pipe ends that
 * pipe alone.
 */
import { DEFAULT_QUOTAS } from '../../../lib/rpc/quotas.ts';

/** One end of a pipe as the other end's carrier sees it: where messages for it go. */
export interface PipePeer {
  send(message: string): void;
  close(reason: string): void;
}

/** The isolate, as its pipes reach it (the instance's entry points). */
export interface IsolatePipeEnds {
  deliver(pipe: number, message: string): void;
  closed(pipe: number, reason: string): void;
}

/** A message on a pipe is at most this long (three quarters of a mesh message: it may cross the mesh, with an envelope). */
export const MAX_PIPE_MESSAGE = (DEFAULT_QUOTAS.maxMessage / 4) * 3;
/** Pipes one isolate may have open at once. */
export const MAX_PIPES = 256;
/** Messages held for a pipe whose other end is not there yet. */
const MAX_PENDING = 256;

export class PipeError extends Error {}

interface Pipe {
  /** Where this pipe's messages from the isolate go; undefined while it is being connected. */
  peer: PipePeer | undefined;
  pending: string[];
  /** Opened by the host to serve an entrypoint (it counts as an invocation of the worker). */
  served: boolean;
}

export interface PipeTableDeps {
  isolate: IsolatePipeEnds;
  /** The other end for a pipe the isolate opened to `target` (a binding's name); `toIsolate` is this end. */
  connect(target: string, toIsolate: PipePeer): Promise<PipePeer>;
  /** A served pipe ended. */
  servedEnded(pipe: number): void;
}

export class PipeTable {
  readonly #pipes = new Map<number, Pipe>();
  readonly #deps: PipeTableDeps;
  #next = 0;

  constructor(deps: PipeTableDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#pipes.size;
  }

  /** The isolate opened pipe `id` (negative, new) to `target`. */
  opened(id: number, target: string): void {
    if (!Number.isSafeInteger(id) || id >= 0 || this.#pipes.has(id) || typeof target !== 'string') return this.#deps.isolate.closed(id, 'malformed pipe');
    if (this.#pipes.size >= MAX_PIPES) return this.#deps.isolate.closed(id, `too many RPC sessions open at once (a worker may have ${MAX_PIPES})`);
    const pipe: Pipe = { peer: undefined, pending: [], served: false };
    this.#pipes.set(id, pipe);
    this.#deps.connect(target, this.#toIsolate(id)).then(
      (peer) => {
        if (this.#pipes.get(id) !== pipe) return peer.close('the caller has gone');
        pipe.peer = peer;
        for (const m of pipe.pending.splice(0)) peer.send(m);
      },
      (e: unknown) => this.#end(id, e instanceof Error ? e.message : String(e), true),
    );
  }

  /** A message from the isolate's end of pipe `id`. */
  fromIsolate(id: number, message: string): void {
    const pipe = this.#pipes.get(id);
    if (!pipe) return;
    if (typeof message !== 'string' || message.length > MAX_PIPE_MESSAGE)
      return this.#end(id, `an RPC message was larger than ${MAX_PIPE_MESSAGE / 1024 / 1024} MiB`, true, true);
    if (pipe.peer) return pipe.peer.send(message);
    if (pipe.pending.length >= MAX_PENDING) return this.#end(id, 'too many RPC messages before the session was connected', true, true);
    pipe.pending.push(message);
  }

  /** The isolate's end of pipe `id` is gone. */
  closedByIsolate(id: number, reason: string): void {
    const pipe = this.#pipes.get(id);
    if (!pipe) return;
    this.#pipes.delete(id);
    pipe.peer?.close(typeof reason === 'string' ? reason.slice(0, 500) : 'closed');
    if (pipe.served) this.#deps.servedEnded(id);
  }

  /**
   * A pipe the host opens to serve an entrypoint for `peer` (the caller's end): its id (for the
   * isolate's rpcServe) and this end, for the caller's carrier.
   */
  serve(peer: PipePeer): { id: number; end: PipePeer } {
    if (this.#pipes.size >= MAX_PIPES) throw new PipeError(`the worker has too many RPC sessions open (${MAX_PIPES})`);
    const id = ++this.#next;
    this.#pipes.set(id, { peer, pending: [], served: true });
    return { id, end: this.#toIsolate(id) };
  }

  /** Every pipe ends (the isolate is gone). */
  closeAll(reason: string): void {
    for (const id of [...this.#pipes.keys()]) this.#end(id, reason, false, true);
  }

  /** This end of pipe `id`, for whoever carries the other end's messages to it. */
  #toIsolate(id: number): PipePeer {
    return {
      send: (message) => {
        if (!this.#pipes.has(id)) return;
        if (typeof message !== 'string' || message.length > MAX_PIPE_MESSAGE)
          return this.#end(id, `an RPC message was larger than ${MAX_PIPE_MESSAGE / 1024 / 1024} MiB`, true, true);
        this.#deps.isolate.deliver(id, message);
      },
      close: (reason) => this.#end(id, String(reason).slice(0, 500), true),
    };
  }

  /** End pipe `id`: the isolate (`tellIsolate`) and the other end (`tellPeer`) hear of it. */
  #end(id: number, reason: string, tellIsolate: boolean, tellPeer = false): void {
    const pipe = this.#pipes.get(id);
    if (!pipe) return;
    this.#pipes.delete(id);
    if (tellPeer) pipe.peer?.close(reason);
    if (tellIsolate) this.#deps.isolate.closed(id, reason);
    if (pipe.served) this.#deps.servedEnded(id);
  }
}
