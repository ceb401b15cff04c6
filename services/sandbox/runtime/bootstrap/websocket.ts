/**
 * WebSockets in the isolate, as Workers has them: `new WebSocketPair()` gives `[client, server]`; the
 * worker answers `new Response(null, { status: 101, webSocket: client })`, calls `server.accept()`,
 * then `send`/`close` and 'message'/'close' events. The client end stands for the browser: ingress
 * holds the real connection, and the host relays between it and the server end here.
 */
import { Event, EventTarget } from './web-globals.ts';
import { TextEncoder } from './encoding.ts';
import { structuredClone } from './structured-clone.ts';

export interface SocketHost {
  send(id: number, data: string | ArrayBuffer): void;
  close(id: number, code: number, reason: string): void;
  /** The worker accepted: the socket now keeps its isolate busy, like a request, until it closes. */
  opened(id: number): void;
}

/**
 * Where a server end of a Durable Object's socket sends (bootstrap/do-websockets.ts): the supervisor
 * keeps the socket, not this isolate's host, so the object can be evicted while it stays open.
 */
export interface SocketRoute {
  send(payload: string | ArrayBuffer): void;
  close(code: number, reason: string): void;
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): unknown;
}

const MINT = Symbol('mint');

/** A WebSocket's insides, for Durable Objects' sockets only (set by the class's static block). */
export interface ObjectSocketInternals {
  /** A server end leaves the host's table: it sends through `route`; `open` for acceptWebSocket. */
  route(ws: WebSocket, route: SocketRoute, open: boolean): void;
  /** A hibernatable socket, made again in a new instance. */
  revive(route: SocketRoute): WebSocket;
  /** Whether accept() (or acceptWebSocket) was called. */
  accepted(ws: WebSocket): boolean;
  /** An event for an object's socket end, from the supervisor. */
  fire(ws: WebSocket, type: 'message' | 'close' | 'error', data: string | ArrayBuffer, code?: number, reason?: string, wasClean?: boolean): void;
  /** The server end of the pair a client end belongs to. */
  serverOfClient(ws: unknown): WebSocket | undefined;
  /** A client end standing for socket `sid` of an object of namespace `handle` (what its stub's fetch() answered). */
  remoteClient(handle: string, sid: string): WebSocket;
  /** Which object socket a client end stands for, if it is one. */
  remoteOfClient(ws: unknown): { handle: string; sid: string } | undefined;
}
/** Assigned in WebSocket's static block. */
export let sockets: ObjectSocketInternals;
const encoder = new TextEncoder();
const MAX_MESSAGE = 1024 * 1024;
/** Messages kept for a server end not yet accepted; beyond, they are dropped. */
const MAX_PENDING = 64;

export class MessageEvent extends Event {
  readonly data: string | ArrayBuffer;
  constructor(type: 'message', init: { data: string | ArrayBuffer }) {
    super(type);
    this.data = init.data;
  }
}

export class CloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
  constructor(type: 'close', init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type);
    this.code = init.code ?? 1005;
    this.reason = init.reason ?? '';
    this.wasClean = init.wasClean ?? false;
  }
}

/** UTF-8 size, encoding only when the length alone cannot tell (a UTF-16 unit is 1 to 3 bytes). */
function byteLength(payload: string | ArrayBuffer): number {
  if (typeof payload !== 'string') return payload.byteLength;
  if (payload.length > MAX_MESSAGE || payload.length * 3 <= MAX_MESSAGE) return payload.length;
  return encoder.encode(payload).byteLength;
}

let host: SocketHost | undefined;
let nextId = 1;
/** Server ends by pair id, for events from the host. */
const servers = new Map<number, WebSocket>();
const pairOf = new WeakMap<WebSocket, number>();
/** The server end of each client end (a Durable Object's 101 names its socket by it). */
const serverOf = new WeakMap<WebSocket, WebSocket>();
/** Client ends a Durable Object's fetch() answered with: the namespace handle and the socket's id. */
const remoteOf = new WeakMap<WebSocket, { handle: string; sid: string }>();

export class WebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly #id: number;
  readonly #server: boolean;
  #state = 0;
  #accepted = false;
  /** Messages that came before accept(): delivered once it is called, as Workers does. */
  #pending: (string | ArrayBuffer)[] = [];
  #route: SocketRoute | undefined;
  /** serializeAttachment() of a socket that is not an object's: kept here. */
  #attachment: unknown = null;
  constructor(mint: symbol, id: number, server: boolean) {
    if (mint !== MINT) throw new TypeError('Illegal constructor: WebSockets come from new WebSocketPair()');
    super();
    this.#id = id;
    this.#server = server;
  }
  get readyState(): number {
    return this.#state;
  }
  accept(): void {
    if (!this.#server) throw new TypeError('accept() is for the server end of a WebSocketPair');
    if (this.#accepted) throw new TypeError(this.#route ? "Can't accept() WebSocket after enabling hibernation." : 'accept() was already called');
    this.#accepted = true;
    this.#state = WebSocket.OPEN;
    if (!this.#route) host?.opened(this.#id);
    // After the listeners the worker adds right after accept() (the usual order).
    const pending = this.#pending.splice(0);
    if (pending.length)
      queueMicrotask(() => pending.forEach((data) => this.#state === WebSocket.OPEN && this.dispatchEvent(new MessageEvent('message', { data }))));
  }
  send(data: unknown): void {
    if (!this.#server) throw new TypeError('send() here is for the server end; the client end belongs to the browser');
    if (this.#state !== WebSocket.OPEN) throw new TypeError('the WebSocket is not open (call accept() first)');
    let payload: string | ArrayBuffer;
    if (typeof data === 'string') payload = data;
    else if (data instanceof ArrayBuffer) payload = data.slice(0);
    else if (ArrayBuffer.isView(data)) payload = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
    else throw new TypeError('send() takes a string, an ArrayBuffer or a view of one');
    if (byteLength(payload) > MAX_MESSAGE) throw new RangeError(`a WebSocket message is at most ${MAX_MESSAGE} bytes`);
    if (this.#route) this.#route.send(payload);
    else host?.send(this.#id, payload);
  }
  close(code = 1000, reason = ''): void {
    if (!this.#server) throw new TypeError('close() here is for the server end');
    if (this.#state === WebSocket.CLOSED || this.#state === WebSocket.CLOSING) return;
    if (code !== 1000 && (code < 3000 || code > 4999)) throw new RangeError('close code must be 1000 or 3000-4999');
    this.#state = WebSocket.CLOSING;
    if (this.#route) this.#route.close(code, String(reason).slice(0, 123));
    else host?.close(this.#id, code, String(reason).slice(0, 123));
  }
  /** Workers: a value kept with the socket (for an object's hibernatable socket, across hibernation). */
  serializeAttachment(value: unknown): void {
    if (this.#route) this.#route.serializeAttachment(value);
    else this.#attachment = structuredClone(value);
  }
  deserializeAttachment(): unknown {
    return this.#route ? this.#route.deserializeAttachment() : structuredClone(this.#attachment);
  }
  // What Durable Objects' sockets need of a WebSocket's insides (bootstrap/do-websockets.ts): handed
  // out by this block, never on the class, so tenant code (which sees the class) cannot reach them.
  static {
    sockets = {
      route(ws, route, open) {
        servers.delete(ws.#id);
        ws.#route = route;
        if (open) {
          ws.#accepted = true;
          ws.#state = WebSocket.OPEN;
        }
      },
      revive(route) {
        const ws = new WebSocket(MINT, 0, true);
        sockets.route(ws, route, true);
        return ws;
      },
      accepted: (ws) => ws.#accepted,
      fire(ws, type, data, code = 1005, reason = '', wasClean = false) {
        if (type === 'message') {
          if (ws.#state === WebSocket.OPEN) ws.dispatchEvent(new MessageEvent('message', { data }));
          else if (!ws.#accepted && ws.#pending.length < MAX_PENDING) ws.#pending.push(data);
          return;
        }
        ws.#state = WebSocket.CLOSED;
        if (type === 'error') ws.dispatchEvent(new Event('error'));
        ws.dispatchEvent(new CloseEvent('close', { code, reason, wasClean }));
      },
      serverOfClient: (ws) => (ws instanceof WebSocket ? serverOf.get(ws) : undefined),
      remoteClient(handle, sid) {
        const ws = new WebSocket(MINT, 0, false);
        remoteOf.set(ws, { handle, sid });
        return ws;
      },
      remoteOfClient: (ws) => (ws instanceof WebSocket ? remoteOf.get(ws) : undefined),
    };
  }
  /** @internal the host's events for the server end */
  static deliver(id: number, type: string, data: string | ArrayBuffer | null, code: number, reason: string): void {
    const ws = servers.get(id);
    if (!ws) return;
    if (type === 'message') {
      if (ws.#state === WebSocket.OPEN) ws.dispatchEvent(new MessageEvent('message', { data: data ?? '' }));
      else if (!ws.#accepted && ws.#pending.length < MAX_PENDING) ws.#pending.push(data ?? '');
      return;
    }
    servers.delete(id);
    ws.#state = WebSocket.CLOSED;
    ws.dispatchEvent(new CloseEvent('close', { code, reason, wasClean: type === 'close' }));
  }
  /** @internal whether any server end exists (made and not yet closed): it may keep the isolate busy */
  static anyLive(): boolean {
    return servers.size > 0;
  }
  /** @internal which pair a client end belongs to (for a 101 response), if it is one */
  static pairOfClient(ws: unknown): number | undefined {
    return ws instanceof WebSocket && !ws.#server ? pairOf.get(ws) : undefined;
  }
}

export class WebSocketPair {
  [index: number]: WebSocket;
  constructor() {
    const id = nextId++;
    const client = new WebSocket(MINT, id, false);
    const server = new WebSocket(MINT, id, true);
    pairOf.set(client, id);
    servers.set(id, server);
    serverOf.set(client, server);
    this[0] = client;
    this[1] = server;
  }
}

/** Called once per context by the init half with the host's callbacks. */
export function setSocketHost(h: SocketHost): void {
  host ??= h;
}
