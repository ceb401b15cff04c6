/**
 * WebSockets of a Durable Object this isolate hosts — the hibernation API: `ctx.acceptWebSocket`,
 * `getWebSockets`, `getTags`, attachments, the auto-response, and the `webSocketMessage` /
 * `webSocketClose` / `webSocketError` handlers. The supervisor keeps each socket (its tags, its
 * attachment, the browser's end), not this isolate: an instance evicted while idle loses nothing, and
 * the next event makes a new one that finds its sockets again through `getWebSockets()` and the
 * events themselves. A socket the object `accept()`s plainly gets its events as 'message'/'close'
 * events on that socket object, which lives only as long as this instance (the host keeps such an
 * instance in memory while the socket is open).
 */
import { b64, type CapCall } from './bindings.ts';
import { TextEncoder } from './encoding.ts';
import { decodeValue, encodeValue } from './tagged-values.ts';
import { WebSocket, sockets as socketInternals, type SocketRoute } from './websocket.ts';
import type { ObjectSocketEvent, ObjectSocketInfo } from '../../../../schemas/durable-objects.ts';
import { MAX_SEND_BATCH, MAX_SEND_BATCH_BYTES } from '../../../../schemas/object-socket-batches.ts';

/** workerd's bounds, with its messages (also checked by the supervisor). */
const MAX_TAGS = 10;
const MAX_TAG_LENGTH = 256;
const MAX_ATTACHMENT_BYTES = 16 * 1024;
const MAX_AUTO_BYTES = 2048;
const encoder = new TextEncoder();
/** The largest message a socket carries (ingress's and the supervisor's bound). */
const MAX_MESSAGE = 1024 * 1024;
// Captured: a tenant may patch Promise.prototype.then; the batch's flush must still run.
const resolved = Promise.resolve();
const then = Promise.prototype.then;
const apply = Reflect.apply;
/** What a facet's stub joins the client end of a socket its facet answered with through: its parent object's 101 (answer101). */
export const FACET_SOCKET = '$facet';
const freeze = Object.freeze;

/** `new WebSocketRequestResponsePair(request, response)`: the auto-response a socket gets without waking its object. */
export class WebSocketRequestResponsePair {
  readonly #request: string;
  readonly #response: string;
  constructor(request: unknown, response: unknown) {
    if (typeof request !== 'string' || typeof response !== 'string') throw new TypeError('WebSocketRequestResponsePair takes two strings');
    this.#request = request;
    this.#response = response;
    freeze(this);
  }
  get request(): string {
    return this.#request;
  }
  get response(): string {
    return this.#response;
  }
}

interface Known {
  ws: WebSocket;
  hibernatable: boolean;
  tags: string[];
  attachment: string | null;
  autoResponseAt: number | null;
}

/** One instance's view of its object's sockets (made with the instance; `key` is the host's object key). */
export function objectSockets(callCap: CapCall, key: string) {
  const handle = `$ows:${key}`;
  const bySid = new Map<string, Known>();
  const sidOf = new WeakMap<WebSocket, string>();

  /**
   * What this instance sent and has not handed over yet: all of a tick's sends go in one call, at the end of
   * the tick (a microtask), or sooner when the batch is large; any other call on the sockets sends it first, so
   * the order is kept. A batch the supervisor refuses (a socket closed meanwhile, its bounds) is the error of
   * the next call on these sockets, as a stream's write error is the next write's.
   */
  let batch: [string, string | Uint8Array][] = [];
  let batchBytes = 0;
  let failed: { error: unknown } | undefined;
  const flushLater = () => {
    try {
      flush();
    } catch (error) {
      failed ??= { error };
    }
  };
  function flush(): void {
    if (batch.length === 0) return;
    const out = batch;
    batch = [];
    batchBytes = 0;
    callCap(handle, 'send', [out]);
  }
  /** A call on the sockets: what was sent before it goes first. */
  const call: CapCall = (h, method, args) => {
    rethrow();
    flush();
    return callCap(h, method, args);
  };
  function rethrow(): void {
    if (!failed) return;
    const { error } = failed;
    failed = undefined;
    throw error;
  }
  function send(sid: string, payload: string | ArrayBuffer): void {
    rethrow();
    // Copied now: the caller may change its buffer once send() has returned.
    const data = typeof payload === 'string' ? payload : new Uint8Array(payload).slice();
    const size = typeof data === 'string' ? (data.length * 3 <= MAX_MESSAGE ? data.length : encoder.encode(data).byteLength) : data.byteLength;
    if (size > MAX_MESSAGE) throw new Error(`a WebSocket message is at most ${MAX_MESSAGE} bytes`);
    if (batch.length >= MAX_SEND_BATCH || batchBytes + size > MAX_SEND_BATCH_BYTES) flush();
    if (batch.length === 0) apply(then, resolved, [flushLater]);
    batch.push([sid, data]);
    batchBytes += size;
  }

  function route(sid: string): SocketRoute {
    return {
      send: (payload) => send(sid, payload),
      // The socket stays known until the client's close comes back (webSocketClose hears it, as on workerd).
      close: (code, reason) => void call(handle, 'close', [sid, code, reason]),
      serializeAttachment(value) {
        const encoded = value === null || value === undefined ? null : encodeValue(value, { instances: 'refuse' });
        const size = encoded === null ? 0 : encoder.encode(encoded).byteLength;
        if (size > MAX_ATTACHMENT_BYTES)
          throw new Error(`A WebSocket 'attachment' cannot be larger than ${MAX_ATTACHMENT_BYTES} bytes.'attachment' was ${size} bytes.`);
        call(handle, 'setAttachment', [sid, encoded]);
        const k = bySid.get(sid);
        if (k) k.attachment = encoded;
      },
      deserializeAttachment() {
        const a = bySid.get(sid)?.attachment ?? null;
        return a === null ? null : decodeValue(a);
      },
    };
  }

  /** This instance's socket object for `info` (the same object for the same socket while the instance lives). */
  function known(info: ObjectSocketInfo): WebSocket {
    const k = bySid.get(info.sid);
    if (k) {
      k.autoResponseAt = info.autoResponseAt;
      return k.ws;
    }
    const ws = socketInternals.revive(route(info.sid));
    sidOf.set(ws, info.sid);
    bySid.set(info.sid, { ws, hibernatable: true, tags: info.tags, attachment: info.attachment, autoResponseAt: info.autoResponseAt });
    return ws;
  }

  function checkTags(tags: unknown): string[] {
    if (tags === undefined) return [];
    if (!Array.isArray(tags)) throw new TypeError('tags are an array of strings');
    if (tags.length > MAX_TAGS) throw new Error(`a Hibernatable WebSocket cannot have more than ${MAX_TAGS} tags`);
    return tags.map((t) => {
      if (typeof t !== 'string' || t.length === 0) throw new TypeError('a tag is a non-empty string');
      if (t.length > MAX_TAG_LENGTH) throw new Error(`"${t}" is longer than the max tag length (${MAX_TAG_LENGTH} characters).`);
      return t;
    });
  }

  const ctx = {
    acceptWebSocket(ws: unknown, tags?: unknown): void {
      if (!(ws instanceof WebSocket) || socketInternals.remoteOfClient(ws)) throw new TypeError('acceptWebSocket() takes the server end of a WebSocketPair');
      if (sidOf.has(ws) || socketInternals.accepted(ws))
        throw new Error('Cannot call `acceptWebSocket()` if the WebSocket was already accepted via `accept()`');
      const list = checkTags(tags);
      const sid = call(handle, 'accept', [list, true]) as string;
      socketInternals.route(ws, route(sid), true);
      sidOf.set(ws, sid);
      bySid.set(sid, { ws, hibernatable: true, tags: list, attachment: null, autoResponseAt: null });
    },
    getWebSockets(tag?: unknown): WebSocket[] {
      if (tag !== undefined && typeof tag !== 'string') throw new TypeError('getWebSockets() takes a tag (a string)');
      return (call(handle, 'list', [tag ?? null]) as ObjectSocketInfo[]).map(known);
    },
    getTags(ws: unknown): string[] {
      const sid = ws instanceof WebSocket ? sidOf.get(ws) : undefined;
      const k = sid === undefined ? undefined : bySid.get(sid);
      if (k && !k.hibernatable) throw new Error('only hibernatable websockets can have tags.');
      if (!k)
        throw new Error(
          ws instanceof WebSocket && socketInternals.accepted(ws)
            ? 'only hibernatable websockets can have tags.'
            : "you must call 'acceptWebSocket()' before attempting to access the tags of a WebSocket.",
        );
      return [...k.tags];
    },
    setWebSocketAutoResponse(pair?: unknown): void {
      if (pair === undefined || pair === null) return void call(handle, 'setAutoResponse', [null, null]);
      if (!(pair instanceof WebSocketRequestResponsePair)) throw new TypeError('setWebSocketAutoResponse() takes a WebSocketRequestResponsePair');
      for (const [what, text] of [
        ['Request', pair.request],
        ['Response', pair.response],
      ] as const) {
        const size = encoder.encode(text).byteLength;
        if (size > MAX_AUTO_BYTES)
          throw new RangeError(`${what} cannot be larger than ${MAX_AUTO_BYTES} bytes. A ${what.toLowerCase()} of size ${size} was provided.`);
      }
      call(handle, 'setAutoResponse', [pair.request, pair.response]);
    },
    getWebSocketAutoResponse(): WebSocketRequestResponsePair | null {
      const pair = call(handle, 'getAutoResponse', []) as [string, string] | null;
      return pair === null ? null : new WebSocketRequestResponsePair(pair[0], pair[1]);
    },
    getWebSocketAutoResponseTimestamp(ws: unknown): Date | null {
      const sid = ws instanceof WebSocket ? sidOf.get(ws) : undefined;
      const at = sid === undefined ? null : (bySid.get(sid)?.autoResponseAt ?? null);
      return at === null ? null : new Date(at);
    },
    setHibernatableWebSocketEventTimeout(ms?: unknown): void {
      // No timeout, or 0 (workerd takes it): the worker's own limits only.
      if (ms !== undefined && ms !== null && !(typeof ms === 'number' && ms >= 0 && ms <= 7 * 24 * 3600 * 1000))
        throw new RangeError('the event timeout is from 0 ms (none) to 7 days');
      call(handle, 'setEventTimeout', [ms ? Math.max(1, Math.round(ms as number)) : null]);
    },
    getHibernatableWebSocketEventTimeout(): number | null {
      return call(handle, 'getEventTimeout', []) as number | null;
    },
  };

  return {
    ctx,
    /**
     * The object answered a fetch() with a 101: the id of the socket whose client end it returned.
     * A socket it accepted plainly (or not yet) is registered now, as a plain one.
     */
    answer101(client: unknown): string {
      // The client end a facet of this object answered with: the facet's socket, passed on as it is.
      const remote = socketInternals.remoteOfClient(client);
      if (remote?.handle === FACET_SOCKET) return remote.sid;
      const server = socketInternals.serverOfClient(client);
      if (!server) throw new TypeError('a 101 response needs webSocket: the client end of a WebSocketPair');
      const existing = sidOf.get(server);
      if (existing !== undefined) return existing;
      const sid = call(handle, 'accept', [[], false]) as string;
      socketInternals.route(server, route(sid), false);
      sidOf.set(server, sid);
      bySid.set(sid, { ws: server, hibernatable: false, tags: [], attachment: null, autoResponseAt: null });
      return sid;
    },
    /** An event from the supervisor: to the handler of the instance (hibernatable) or to the socket object (plain). */
    async deliver(instance: Record<string, unknown>, event: ObjectSocketEvent): Promise<void> {
      const sid = event.socket.sid;
      const data = event.binary ? (b64.decode(event.data ?? '').buffer as ArrayBuffer) : (event.data ?? '');
      if (!event.hibernatable) {
        const k = bySid.get(sid);
        if (!k) {
          // Its instance went (the object was reset or moved): nothing here listens any more.
          if (event.type === 'message') call(handle, 'close', [sid, 1011, 'the Durable Object that accepted this WebSocket was reset']);
          return;
        }
        if (event.type !== 'message') bySid.delete(sid);
        socketInternals.fire(k.ws, event.type, data, event.code, event.reason, event.wasClean);
        return;
      }
      const ws = known(event.socket);
      if (event.type === 'message') {
        const handler = instance.webSocketMessage;
        if (typeof handler === 'function') await Reflect.apply(handler, instance, [ws, data]);
        return;
      }
      // Closed: its attachment stays readable in the handler; the socket is forgotten after it.
      socketInternals.fire(ws, 'close', '', event.code, event.reason, event.wasClean);
      try {
        const handler = event.type === 'error' ? instance.webSocketError : instance.webSocketClose;
        const args =
          event.type === 'error' ? [ws, new Error(event.reason ?? 'WebSocket error')] : [ws, event.code ?? 1005, event.reason ?? '', event.wasClean === true];
        if (typeof handler === 'function') await Reflect.apply(handler, instance, args);
      } finally {
        bySid.delete(sid);
      }
    },
  };
}

export type ObjectSocketsHost = ReturnType<typeof objectSockets>;
