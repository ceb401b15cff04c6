/**
 * Ingress's end of the HTTP fast path to a sandbox: a request with its body in hand goes as one binary
 * frame (fast-frames.ts) on the capnweb session's own authenticated channel, and its answer comes back
 * as one frame, or as a head and then chunks for a body the worker streams. What the sandbox answers
 * is checked by ingress as a capnweb answer is (responseProblem); a sandbox that breaks the protocol
 * (an answer to nothing, more body than granted) has its channel closed.
 * Requests whose body streams in and WebSocket upgrades stay on capnweb (they hold capabilities).
 */
import { carriesBinary, type BinaryChannel } from '../../lib/rpc/channel.ts';
import { decodeFrame, encodeCancel, encodeCredit, encodeRequestMessages, INITIAL_CREDIT, Kind, type FastResponse } from '../../lib/rpc/fast-frames.ts';
import { FrameTooLargeError, type FramePool } from '../../lib/rpc/frames.ts';
import type { MeshSession } from '../../lib/rpc/index.ts';
import type { SandboxApi } from '../../schemas/services.ts';
import { activeTraceparent } from '../../lib/rpc/trace.ts';
import type { WireRequest, WireResponse } from '../../schemas/http.ts';
import type { WorkerTarget } from '../../schemas/worker.ts';

/** Credit goes back once the client has taken this much of a streamed body. */
const CREDIT_STEP = INITIAL_CREDIT / 4;

interface Incoming {
  /** Body bytes the sandbox may still send. */
  granted: number;
  /** Body bytes the client took that have not been granted again yet. */
  owed: number;
  queue: Uint8Array[];
  end: { ok: boolean; message: string } | undefined;
  wake: (() => void) | undefined;
}

export class FastLink {
  static readonly #links = new WeakMap<MeshSession<any>, FastLink>();

  /** The fast path on `session`, or undefined where its channel carries no binary messages. */
  static of(session: MeshSession<any>): FastLink | undefined {
    let link = FastLink.#links.get(session);
    if (!link && carriesBinary(session.channel)) FastLink.#links.set(session, (link = new FastLink(session.channel, session.closed)));
    return link;
  }

  readonly #channel: BinaryChannel;
  /** Where body-sized answers are read (their bodies are given back once written to the client: forward.ts). */
  readonly #pool: FramePool | undefined;
  readonly #pending = new Map<number, { resolve: (r: WireResponse) => void; reject: (e: Error) => void }>();
  readonly #streams = new Map<number, Incoming>();
  #next = 0;
  #closed: Error | undefined;

  private constructor(channel: BinaryChannel, closed: Promise<Error>) {
    this.#channel = channel;
    this.#pool = channel.framePool?.();
    channel.onBinary((bytes) => this.#receive(bytes));
    void closed.then((reason) => {
      this.#closed = reason;
      for (const p of this.#pending.values()) p.reject(reason);
      this.#pending.clear();
      for (const s of this.#streams.values()) this.#ended(s, false, reason.message);
      this.#streams.clear();
    });
  }

  /** One request whose body is bytes (or none) to the sandbox; the answer as a capnweb call would give it. */
  call(target: WorkerTarget, wire: WireRequest): Promise<WireResponse> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = (this.#next = (this.#next + 1) >>> 0);
    const messages = encodeRequestMessages({
      id,
      traceparent: activeTraceparent() ?? '',
      target: { workerId: target.workerId, version: target.version, codeKey: target.codeKey },
      method: wire.method,
      url: wire.url,
      headers: wire.headers,
      body: wire.bodyParts ?? wire.body,
      cf: wire.cf,
    });
    return new Promise<WireResponse>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      try {
        // All of the request's messages or none: a body sent after its frame failed would be read as the next request's.
        for (const m of messages) {
          const length = m.reduce((n, p) => n + p.byteLength, 0);
          if (length > this.#channel.maxMessage) throw new FrameTooLargeError(length, this.#channel.maxMessage);
        }
        for (const m of messages) this.#channel.sendBinary(m);
      } catch (e) {
        this.#pending.delete(id);
        reject(e as Error);
      }
    });
  }

  #receive(bytes: Buffer): void {
    const frame = decodeFrame(bytes, this.#pool);
    switch (frame.kind) {
      case Kind.Response:
        return this.#answered(frame);
      case Kind.Failed:
        return this.#take(frame.id).reject(new Error(frame.message));
      case Kind.Chunk: {
        const s = this.#streams.get(frame.id);
        if (!s) return; // cancelled: chunks sent before the sandbox heard of it
        if (frame.bytes.byteLength > s.granted) throw new Error('the sandbox sent more of a streamed body than it was granted');
        s.granted -= frame.bytes.byteLength;
        s.queue.push(frame.bytes);
        return s.wake?.();
      }
      case Kind.End: {
        const s = this.#streams.get(frame.id);
        if (!s) return;
        this.#streams.delete(frame.id);
        return this.#ended(s, frame.ok, frame.message);
      }
      default:
        throw new Error(`the sandbox sent a fast-path frame of kind ${frame.kind}`);
    }
  }

  #take(id: number) {
    const p = this.#pending.get(id);
    if (!p) throw new Error(`the sandbox answered request ${id}, which is not waiting for an answer`);
    this.#pending.delete(id);
    return p;
  }

  #answered(frame: FastResponse): void {
    const { resolve } = this.#take(frame.id);
    const { status, statusText, headers, body } = frame;
    if (!frame.streamed) return resolve({ status, statusText, headers, body });
    const s: Incoming = { granted: INITIAL_CREDIT, owed: 0, queue: [], end: undefined, wake: undefined };
    this.#streams.set(frame.id, s);
    const stream = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (!s.queue.length && !s.end) await new Promise<void>((r) => (s.wake = r));
          s.wake = undefined;
          const chunk = s.queue.shift();
          if (chunk) {
            controller.enqueue(chunk);
            // What the client took, the sandbox may send again: granted a quarter window at a time,
            // so that credit is a frame per few chunks rather than one per chunk.
            s.owed += chunk.byteLength;
            if (s.owed >= CREDIT_STEP && !this.#closed && this.#streams.has(frame.id)) {
              s.granted += s.owed;
              this.#channel.sendBinary(encodeCredit(frame.id, s.owed));
              s.owed = 0;
            }
          } else if (s.end!.ok) controller.close();
          else controller.error(new Error(`the worker's streamed body failed: ${s.end!.message}`));
        },
        cancel: () => {
          if (!this.#streams.delete(frame.id) || this.#closed) return;
          this.#channel.sendBinary(encodeCancel(frame.id));
        },
      },
      { highWaterMark: 0 },
    );
    resolve({ status, statusText, headers, body: null, stream });
  }

  #ended(s: Incoming, ok: boolean, message: string): void {
    s.end = { ok, message };
    s.wake?.();
  }
}

/**
 * One request on a sandbox's session: by the fast path when its body is in hand, by capnweb when it
 * streams in or is a WebSocket upgrade (those carry capabilities), or when the channel has no fast path.
 */
export function callSandbox(session: MeshSession<SandboxApi>, target: WorkerTarget, wire: WireRequest): Promise<WireResponse> {
  const fast = wire.stream || wire.socket ? undefined : FastLink.of(session);
  if (fast) return fast.call(target, wire);
  const { bodyParts, ...rest } = wire;
  return session.remote.handle(target, bodyParts ? { ...rest, body: Buffer.concat(bodyParts) } : wire);
}
