/**
 * An RPC session: capnweb over an authenticated Channel, with per-session quotas and trace context.
 * Each session has its own import/export tables, so a capability reference is meaningful only on the
 * connection it was handed out on: a number guessed, replayed after release, or copied from another
 * session names nothing, and capnweb aborts the session that sends it.
 */
import { context } from '@opentelemetry/api';
import { RpcSession, RpcTarget, type RpcCompatible, type RpcStub, type RpcTransport } from 'capnweb';
import type { Channel } from './channel.ts';
import type { PeerIdentity } from './handshake.ts';
import { CallAccounting, DEFAULT_QUOTAS, QuotaExceededError, type Quotas } from './quotas.ts';
import { activeTraceparent, contextFrom, parseTraceparent } from './trace.ts';
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
  /** Trace context of the call message most recently handed to capnweb. */
  incomingTrace: SpanContext | undefined;
  exportCount: () => number = () => 0;
  readonly #accounting: CallAccounting;
  readonly #channel: Channel;
  readonly #quotas: Quotas;
  #untilCount = 0;
  #nextImport = 1;
  /** Our calls that were too large to send, by import id: the error their answer is replaced with. */
  readonly #refused = new Map<number, string>();
  constructor(channel: Channel, quotas: Quotas) {
    this.#channel = channel;
    this.#quotas = quotas;
    this.#accounting = new CallAccounting(quotas);
  }

  get inFlight(): number {
    return this.#accounting.inFlight;
  }

  send(message: string): void {
    this.#accounting.outgoing(message);
    const opens = OPENS_IMPORT.exec(message)?.[1];
    const importId = opens ? this.#nextImport++ : 0;
    const tp = opens === 'push' || opens === 'stream' ? activeTraceparent() : undefined;
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
    if (raw.charCodeAt(0) !== 0x5b /* [ */) {
      if (raw.charCodeAt(TRACEPARENT_LENGTH) !== 0x0a) throw new Error('malformed RPC frame: expected a traceparent line');
      this.incomingTrace = parseTraceparent(raw.slice(0, TRACEPARENT_LENGTH));
      message = raw.slice(TRACEPARENT_LENGTH + 1);
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

export class MeshSession<Remote extends RpcCompatible<Remote> = undefined> {
  readonly remote: RpcStub<Remote>;
  readonly closed: Promise<Error>;
  readonly #session: RpcSession<Remote>;
  readonly #transport: MeshTransport;
  /** One traced stand-in per exported target, so capnweb sees the same object each time it is returned. */
  readonly #tracedTargets = new WeakMap<object, object>();

  readonly channel: Channel;
  readonly peer: PeerIdentity;

  /** `onSendError` rewrites an error before it goes to the peer (capnweb's option of that name). */
  constructor(channel: Channel, peer: PeerIdentity, local: RpcTarget | undefined, quotas: Partial<Quotas> = {}, onSendError?: (error: Error) => Error | void) {
    this.channel = channel;
    this.peer = peer;
    const q = { ...DEFAULT_QUOTAS, ...quotas };
    this.#transport = new MeshTransport(channel, q);
    this.closed = new Promise((resolve) => channel.onClose(resolve));
    const main = local ? this.traced(local) : undefined;
    this.#session = new RpcSession<Remote>(this.#transport, main, { limits: { maxDepth: q.maxDepth, maxMessageSize: q.maxMessage }, onSendError });
    this.#transport.exportCount = () => this.#session.getStats().exports;
    this.remote = this.#session.getRemoteMain();
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

  /**
   * Wrap a target so each method the peer calls runs inside the caller's trace context (the session's
   * main is; a target handed to the peer as a call's argument must be wrapped by its sender). capnweb
   * dispatches a call synchronously while it handles the message, so the transport's
   * `incomingTrace` is that call's context. Capabilities a traced method returns (directly, in a
   * promise, or as the values of a plain record) are traced too: calls on them carry their own
   * traceparent. (A call pipelined on an unresolved promise is dispatched later and starts a fresh trace.)
   */
  traced<T extends object>(target: T): T {
    const known = this.#tracedTargets.get(target);
    if (known) return known as T;
    const transport = this.#transport;
    const session = this;
    const proxy = new Proxy(target, {
      get(t, key, receiver) {
        const value = Reflect.get(t, key, receiver);
        if (typeof value !== 'function' || typeof key === 'symbol') return value;
        return function (this: unknown, ...args: unknown[]) {
          return session.#tracedResult(context.with(contextFrom(transport.incomingTrace), () => Reflect.apply(value, t, args)));
        };
      },
    });
    this.#tracedTargets.set(target, proxy);
    return proxy;
  }

  #tracedResult(result: unknown): unknown {
    if (result instanceof Promise) return result.then((r) => this.#tracedResult(r));
    if (result instanceof RpcTarget) return this.traced(result);
    if (result !== null && typeof result === 'object' && Object.getPrototypeOf(result) === Object.prototype) {
      const values = Object.values(result);
      if (!values.some((v) => v instanceof RpcTarget)) return result;
      return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, v instanceof RpcTarget ? this.traced(v) : v]));
    }
    return result;
  }
}
