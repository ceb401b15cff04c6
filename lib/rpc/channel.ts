/**
 * A Channel is an ordered, reliable, message-framed pipe between two services: what a transport
 * (Unix socket, NATS) offers to the handshake and then to the RPC session. Messages are text.
 */
import type { FramePool } from './frames.ts';

export interface Channel {
  /** Queue one message. Throws when the message is longer than `maxMessage` or the channel is closed. */
  send(message: string): void;
  /** The next message; rejects once the channel is closed. */
  receive(): Promise<string>;
  /** Close both directions; pending and later `receive()` calls reject with `reason`. */
  close(reason?: Error): void;
  /** Called once, when the channel closes for any reason. */
  onClose(callback: (reason: Error) => void): void;
  /**
   * The peer has proved who it is (the handshake calls this): messages up to `maxMessage` are read from
   * now on. Before, a message over MAX_HANDSHAKE_MESSAGE closes the channel, so a connection that has
   * not authenticated can make us hold no more than that.
   */
  authenticated(): void;
  readonly closed: boolean;
  /**
   * Largest message (in UTF-8 bytes) this side sends or reads; a longer one arriving closes the channel
   * before anything is buffered. It protects the reader: a sender must keep its own messages within
   * the reader's limit (the mesh uses one limit everywhere, DEFAULT_QUOTAS.maxMessage).
   */
  readonly maxMessage: number;
  /** Where the peer is, for logs (never used for authorisation). */
  readonly description: string;
}

/**
 * A channel that also carries binary messages beside the text ones: the HTTP fast path
 * (fast-frames.ts) rides the session's own authenticated link this way. A binary message that arrives
 * while no handler is set (before the session began, so before the handshake) closes the channel.
 */
export interface BinaryChannel extends Channel {
  /**
   * Queue one binary message, given as parts sent back to back (a body is not copied); throws as `send`
   * does. `written`, if the transport can tell, is called once the parts are no longer the channel's (a
   * socket has taken them, or failed): their memory may then be reused or freed. It may never be called.
   */
  sendBinary(message: Uint8Array | readonly Uint8Array[], written?: () => void): void;
  /**
   * Binary messages go to `handler` as they arrive, in order. A message is the handler's during the
   * call only unless it is a whole buffer of its own (byteOffset 0, the buffer's full length): what it
   * keeps of any other it copies (fast-frames' decodeFrame does).
   */
  onBinary(handler: (message: Buffer) => void): void;
  /**
   * From now on, body-sized binary messages are assembled in this pool's buffers (where the transport
   * can: a Unix socket's connecting end). decodeFrame reads such a message in place and lends its bytes;
   * the reader gives them back (FramePool.giveBack) once nothing reads them, and only then is the buffer reused.
   */
  framePool?(): FramePool | undefined;
}

export function carriesBinary(channel: Channel): channel is BinaryChannel {
  return typeof (channel as Partial<BinaryChannel>).sendBinary === 'function';
}

/** Longest message of the handshake, and so the longest a peer may send before it has authenticated. */
export const MAX_HANDSHAKE_MESSAGE = 1024;

/**
 * Why a channel closed: the host's own, not a CordonError. Its message names sockets and NATS sessions
 * for the operator's log; as a CordonError, whose message is for the caller, it would be shown to a
 * tenant wherever a closed session failed one of its calls.
 */
export class ChannelClosedError extends Error {
  constructor(message = 'channel closed') {
    super(message);
    this.name = 'ChannelClosedError';
  }
}

/**
 * The receive side shared by every transport: a queue of arrived messages and of waiting readers.
 * Transports push what they decode and call `fail` when the link ends.
 */
export class Inbox {
  #messages: string[] = [];
  #waiters: { resolve: (m: string) => void; reject: (e: Error) => void }[] = [];
  #error: Error | undefined;
  /** Messages held but not yet read: transports stop reading from the wire above a bound. */
  get backlog(): number {
    return this.#messages.length;
  }

  push(message: string): void {
    if (this.#error) return;
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(message);
    else this.#messages.push(message);
  }

  fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#messages.length = 0;
    for (const w of this.#waiters.splice(0)) w.reject(error);
  }

  receive(): Promise<string> {
    const next = this.#messages.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }
}
