/**
 * The sandbox's end of the HTTP fast path: requests ingress sends as binary frames (fast-frames.ts)
 * on the session's own channel, each one run through the same SandboxPort.handle as a capnweb call
 * (the same checks of target and request, code key, limits), counted against the same session's quota
 * of calls in flight, in the caller's trace. The answer goes back as one frame; a body the worker
 * streams goes as chunks, never more unread bytes than ingress granted (credit), so a slow client
 * slows the worker rather than filling ingress.
 */
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { carriesBinary } from '../../lib/rpc/channel.ts';
import {
  decodeBody,
  decodeFrame,
  encodeChunk,
  encodeEnd,
  encodeFailed,
  encodeResponse,
  INITIAL_CREDIT,
  Kind,
  MAX_CHUNK,
  type FastRequest,
} from '../../lib/rpc/fast-frames.ts';
import type { MeshSession } from '../../lib/rpc/index.ts';
import { parseTraceparent } from '../../lib/rpc/trace.ts';
import type { Logger } from '../../lib/log.ts';
import type { WireResponse } from '../../schemas/http.ts';
import type { SandboxPort } from './port.ts';
import { freeSole } from './runtime/sole-bytes.ts';

interface Outgoing {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Bytes ingress will still take. */
  credit: number;
  /** What is left of the chunk being sent, and the whole of it (freed once its last piece is written). */
  rest: Uint8Array | undefined;
  chunk: Uint8Array | undefined;
  pumping: boolean;
  done(): void;
}

/** Serves the fast path on `session` (a session from ingress) with `port`; a channel without binary messages has none. */
export function serveFastPath(session: MeshSession<any>, port: SandboxPort, log: Logger): void {
  const channel = session.channel;
  if (!carriesBinary(channel)) return;
  const streams = new Map<number, Outgoing>();
  /** A request whose body is the next message (it follows its frame: fast-frames.ts). */
  let awaitingBody: FastRequest | undefined;
  channel.onBinary((bytes) => {
    if (awaitingBody) {
      const request = awaitingBody;
      awaitingBody = undefined;
      return void run({ ...request, body: decodeBody(bytes) });
    }
    const frame = decodeFrame(bytes);
    switch (frame.kind) {
      case Kind.Request:
        if (frame.follows) return void (awaitingBody = frame);
        return void run(frame);
      case Kind.Credit: {
        const s = streams.get(frame.id);
        if (!s) return; // ended meanwhile
        s.credit += frame.bytes;
        return void pump(frame.id, s);
      }
      case Kind.Cancel: {
        const s = streams.get(frame.id);
        if (!s) return;
        streams.delete(frame.id);
        s.done();
        return void s.reader.cancel().catch(() => {});
      }
      default:
        // Answers go the other way: ingress sending one broke the protocol (the channel closes).
        throw new Error(`ingress sent a fast-path frame of kind ${frame.kind}`);
    }
  });
  session.closed.then(() => {
    for (const s of streams.values()) {
      s.done();
      void s.reader.cancel().catch(() => {});
    }
    streams.clear();
  });

  const send = (bytes: Uint8Array | Uint8Array[], written?: () => void) => {
    if (!channel.closed) channel.sendBinary(bytes, written);
  };

  async function run(frame: FastRequest): Promise<void> {
    let done: () => void;
    try {
      done = session.admitCall();
    } catch (e) {
      return send(encodeFailed(frame.id, (e as Error).message));
    }
    let response: WireResponse;
    try {
      const { target, method, url, headers, body, cf } = frame;
      const request = cf ? { method, url, headers, body, cf } : { method, url, headers, body };
      const caller = parseTraceparent(frame.traceparent);
      const parent = caller ? trace.setSpanContext(ROOT_CONTEXT, caller) : ROOT_CONTEXT;
      response = await context.with(parent, () => port.handle(target, request));
    } catch (e) {
      done();
      return send(encodeFailed(frame.id, (e as Error).message));
    }
    const { status, statusText, headers, body, stream } = response;
    try {
      // The runtime's own answer body is freed as soon as the socket has taken it (sole-bytes.ts).
      const written = body && !stream ? () => freeSole(body) : undefined;
      send(encodeResponse({ id: frame.id, status, statusText, headers, body: stream ? null : body, streamed: stream !== undefined }), written);
    } catch (e) {
      // An answer the frame cannot carry (a string past its length field, a message past the limit):
      // this call fails, as capnweb's does for a message over the limit, and nothing else.
      done();
      void stream?.cancel().catch(() => {});
      return send(encodeFailed(frame.id, `the response cannot be sent: ${(e as Error).message}`));
    }
    if (!stream) return done();
    const s: Outgoing = { reader: stream.getReader(), credit: INITIAL_CREDIT, rest: undefined, chunk: undefined, pumping: false, done };
    streams.set(frame.id, s);
    await pump(frame.id, s);
  }

  /** Sends what the credit allows, reading from the worker only when there is credit left. */
  async function pump(id: number, s: Outgoing): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    try {
      while (s.credit > 0 && streams.get(id) === s) {
        if (!s.rest) {
          const { done, value } = await s.reader.read();
          if (streams.get(id) !== s) return; // cancelled while the worker made the chunk
          if (done) {
            streams.delete(id);
            s.done();
            return send(encodeEnd(id, true));
          }
          if (!value.byteLength) continue;
          s.rest = s.chunk = value;
        }
        const n = Math.min(s.rest.byteLength, s.credit, MAX_CHUNK);
        const last = n === s.rest.byteLength;
        // A chunk the runtime made is freed once its last piece is written (sole-bytes.ts).
        const chunk = s.chunk!;
        send(encodeChunk(id, s.rest.subarray(0, n)), last ? () => freeSole(chunk) : undefined);
        s.credit -= n;
        s.rest = last ? undefined : s.rest.subarray(n);
      }
    } catch (e) {
      if (streams.get(id) !== s) return;
      streams.delete(id);
      s.done();
      log.debug('a streamed response failed', { error: (e as Error).message });
      send(encodeEnd(id, false, (e as Error).message));
    } finally {
      s.pumping = false;
    }
  }
}
