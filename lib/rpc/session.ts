/**
 * An RPC session: capnweb over an authenticated Channel, with per-session quotas and trace context.
 * Each session has its own import/export tables, so a capability reference is meaningful only on the
 * connection it was handed out on: a number guessed, replayed after release, or copied from another
 * session names nothing, and capnweb aborts the session that sends it.
 */
import { context } from '@opentelemetry/api';
import { RpcSession, type RpcTarget, type RpcCompatible, type RpcStub, type RpcTransport } from 'capnweb';
import type { Channel } from './channel.ts';
import type { PeerIdentity } from './handshake.ts';
import { CallAccounting, DEFAULT_QUOTAS, QuotaExceededError, type Quotas } from './quotas.ts';
import { activeTraceparent, dispatchContext, parseTraceparent } from './trace.ts';
import { FrameTooLargeError } from './frames.ts';
import { mib } from './wire-size.ts';
import type { SpanContext } from '@opentelemetry/api';

/** Messages that open an import on both sides: capnweb numbers them 1, 2, 3, … in sending order. */
const OPENS_IMPORT = /^\["(push|stream|pipe)"/;
const ANSWER = /^\["(?:resolve|reject)",(\d+),/;
const TRACEPARENT_LENGTH = 55;
/** Oversized calls whose answer has not come back yet; beyond this the oldest are forgotten. */
const MAX_REFUSED = 1000;

const rejection = (id: number, message: string) => JSON.stringify(['reject', id, ['error', 'RangeError', message]]);

class MeshTransport implements RpcTransport {
  /**
   * Trace context of the call message being handed to capnweb, until the microtasks of its dispatch
   * have run (capnweb calls the target synchronously as it reads the message).
   */
  incomingTrace: SpanContext | undefined;
  #received = 0;
  exportCount: () => number = () => 0;
  readonly #accounting: CallAccounting;
  readonly #channel: Channel;
  readonly #quotas: Quotas;
  #untilCount = 0;
  #nextImport = 1;
  /** Our calls that were too large to send, by import id: the error their answer is replaced with. */
  readonly #refused = new Map<number, string>();
  /** Whether frames carry trace lines: only between Cordon's own services, which strip them. */
  readonly #traced: boolean;
  constructor(channel: Channel, quotas: Quotas, traced: boolean) {
    this.#traced = traced;
    this.#channel = channel;
    this.#quotas = quotas;
    this.#accounting = new CallAccounting(quotas);
  }

  get inFlight(): number {
    return this.#accounting.inFlight;
  }

  admit(): () => void {
    return this.#accounting.admit();
  }

  send(message: string): void {
    this.#accounting.outgoing(message);
    const opens = OPENS_IMPORT.exec(message)?.[1];
    const importId = opens ? this.#nextImport++ : 0;
    const tp = this.#traced && (opens === 'push' || opens === 'stream') ? activeTraceparent() : undefined;
    let framed = tp ? `${tp}\n${message}` : message;
    // Only a message that could be over the limit is measured (UTF-8 takes at most 3 bytes per unit).
    if (framed.length * 3 > this.#channel.maxMessage) {
      const size = Buffer.byteLength(framed, 'utf8');
      if (size > this.#channel.maxMessage) framed = this.#tooLarge(message, opens, importId, size);
    }
    this.#channel.send(framed);
  }

  /**
   * What goes out instead of a message over the limit, so that only the call it belongs to fails:
   * capnweb aborts the whole session when its transport throws, and a session is shared by many
   * workers. Our own call becomes a placeholder (the numbering of imports must stay in step) whose
   * answer is replaced by the error; our answer to the peer's call becomes that error.
   */
  #tooLarge(message: string, opens: string | undefined, importId: number, size: number): string {
    const limit = this.#channel.maxMessage;
    if (opens === 'push' || opens === 'stream') {
      this.#refused.set(importId, `this call's RPC message is ${mib(size)}; the limit for one message is ${mib(limit)}: it was not sent`);
      if (this.#refused.size > MAX_REFUSED) this.#refused.delete(this.#refused.keys().next().value!);
      return `["${opens}",null]`;
    }
    const answer = ANSWER.exec(message);
    if (answer) return rejection(Number(answer[1]), `the result is ${mib(size)} as an RPC message; the limit for one message is ${mib(limit)}`);
    throw new FrameTooLargeError(size, limit);
  }

  async receive(): Promise<string> {
    const raw = await this.#channel.receive();
    let message = raw;
    this.incomingTrace = undefined;
    if (this.#traced && raw.charCodeAt(0) !== 0x5b /* [ */) {
      if (raw.charCodeAt(TRACEPARENT_LENGTH) !== 0x0a) throw new Error('malformed RPC frame: expected a traceparent line');
      this.incomingTrace = parseTraceparent(raw.slice(0, TRACEPARENT_LENGTH));
      message = raw.slice(TRACEPARENT_LENGTH + 1);
      // Forgotten once this message's dispatch is done, so that work the session's read loop started
      // and that resumes later (e.g. a call pipelined on a promise) does not join a stranger's trace.
      const n = ++this.#received;
      process.nextTick(() => {
        if (this.#received === n) this.incomingTrace = undefined;
      });
    }
    if (this.#refused.size) {
      const id = Number(ANSWER.exec(message)?.[1]);
      const error = this.#refused.get(id);
      if (error !== undefined) {
        this.#refused.delete(id);
        message = rejection(id, error);
      }
    }
    this.#accounting.incoming(message);
    // Counting the exports walks capnweb's whole table, so it is not done on every message: after a
    // count of n, the next comes after (max - n) / 2 messages, since one of our replies exports at most
    // a couple of objects. Near the quota it is every message again.
    if (--this.#untilCount <= 0) {
      const n = this.exportCount();
      if (n > this.#quotas.maxExports) throw new QuotaExceededError(`peer holds more than ${this.#quotas.maxExports} exported objects`);
      this.#untilCount = Math.max(1, Math.floor((this.#quotas.maxExports - n) / 2));
    }
    return message;
  }

  abort(reason: unknown): void {
    this.#channel.close(reason instanceof Error ? reason : new Error(String(reason)));
  }
}

export interface SessionStats {
  imports: number;
  exports: number;
  callsInFlight: number;
}

export interface SessionOptions {
  /** Rewrites an error before it goes to the peer (capnweb's option of that name). */
  onSendError?: (error: Error) => Error | undefined;
  /**
   * Whether calls carry W3C trace context (default). Off for a peer that is not one of Cordon's
   * services (a `cordon/client` speaks plain capnweb): a trace line would break its session.
   */
  traceContext?: boolean;
}

export class MeshSession<Remote extends RpcCompatible<Remote> = undefined> {
  readonly remote: RpcStub<Remote>;
  readonly closed: Promise<Error>;
  readonly #session: RpcSession<Remote>;
  readonly #transport: MeshTransport;

  readonly channel: Channel;
  readonly peer: PeerIdentity;

  constructor(channel: Channel, peer: PeerIdentity, local: RpcTarget | undefined, quotas: Partial<Quotas> = {}, options: SessionOptions = {}) {
    const { onSendError, traceContext = true } = options;
    this.channel = channel;
    this.peer = peer;
    const q = { ...DEFAULT_QUOTAS, ...quotas };
    const transport = (this.#transport = new MeshTransport(channel, q, traceContext));
    this.closed = new Promise((resolve) => channel.onClose(resolve));
    // capnweb's read loop starts here and keeps this context for good: every call it dispatches (on
    // the main or on any capability it exported) runs with the caller's traceparent as its parent.
    this.#session = context.with(
      dispatchContext(() => transport.incomingTrace),
      () => new RpcSession<Remote>(transport, local, { limits: { maxDepth: q.maxDepth, maxMessageSize: q.maxMessage }, onSendError }),
    );
    transport.exportCount = () => this.#session.getStats().exports;
    this.remote = this.#session.getRemoteMain();
  }

  /**
   * Counts a call the peer made beside capnweb (the HTTP fast path on this session's channel) against
   * the session's quota of calls in flight; throws QuotaExceededError over it. Call the result when it ends.
   */
  admitCall(): () => void {
    return this.#transport.admit();
  }

  stats(): SessionStats {
    return { ...this.#session.getStats(), callsInFlight: this.#transport.inFlight };
  }

  close(reason: Error = new Error('session closed')): void {
    this.channel.close(reason);
  }

  get isClosed(): boolean {
    return this.channel.closed;
  }
}
