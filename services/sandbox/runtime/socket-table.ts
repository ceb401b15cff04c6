/**
 * The host's record of an isolate's WebSocketPairs, by pair id: the browser's end once the worker's
 * 101 is out (ingress holds it), what the worker sent before that, and whether the worker accepted.
 * Until its 101 is out a socket is "unbound": what the worker sends waits here, bounded, and only so
 * many may exist — a worker cannot park memory in the host by making pairs it never returns.
 */

/** The browser's end of a WebSocket (ingress holds it): what the worker sends goes there. */
export interface SocketPeer {
  send(data: string | ArrayBuffer): void;
  close(code: number, reason: string): void;
}

/** The worker's end, for ingress: what the browser sends is delivered into the isolate. */
export interface WorkerSocket {
  message(data: string | ArrayBuffer): Promise<void>;
  close(code: number, reason: string): Promise<void>;
}

interface SocketState {
  peer: SocketPeer | undefined;
  accepted: boolean;
  /** Counted as active (accepted and bound): see SocketTableHooks. */
  counted: boolean;
  early: (() => void)[];
  earlyBytes: number;
  createdAt: number;
}
/** What a worker may send on a socket before its 101 is out, and how many such sockets an isolate may have. */
const MAX_EARLY_BYTES = 1024 * 1024;
const MAX_EARLY_BYTES_TOTAL = 8 * 1024 * 1024;
const MAX_UNBOUND_SOCKETS = 64;

export interface SocketTableHooks {
  /** A socket both accepted and handed to a browser keeps the isolate's timers and I/O alive, like a request. */
  activate(): void;
  /** Such a socket closed. */
  deactivate(): void;
  /** An unbound pair older than this was made by a request that ended without returning it. */
  maxUnboundAgeMs(): number;
}

export class SocketTable {
  readonly #sockets = new Map<number, SocketState>();
  readonly #hooks: SocketTableHooks;
  #unbound = 0;
  /** Bytes waiting in all unbound sockets' early queues. */
  #earlyBytes = 0;

  constructor(hooks: SocketTableHooks) {
    this.#hooks = hooks;
  }

  /** A 101 from the worker: pair `id` joined to the browser's end. Returns why it cannot be, if it cannot. */
  bind(id: number, peer: SocketPeer): string | undefined {
    const socket = this.#socket(id);
    if (!socket) return `more than ${MAX_UNBOUND_SOCKETS} WebSocketPairs are waiting to be returned`;
    if (socket.peer) return 'this WebSocketPair was already returned in a 101';
    socket.peer = peer;
    this.#unbound--;
    for (const send of socket.early.splice(0)) send();
    this.#earlyBytes -= socket.earlyBytes;
    socket.earlyBytes = 0;
    this.#activate(socket);
    return undefined;
  }

  /** What the worker's end does (send, close) goes to the browser's end, or waits for the 101. */
  toPeer(id: number, act: (peer: SocketPeer) => void, bytes = 0): void {
    const s = this.#socket(id);
    if (!s) return;
    if (s.peer) return act(s.peer);
    // Beyond the bounds, dropped: as if the socket had never opened.
    if (s.earlyBytes + bytes > MAX_EARLY_BYTES || this.#earlyBytes + bytes > MAX_EARLY_BYTES_TOTAL) return;
    s.earlyBytes += bytes;
    this.#earlyBytes += bytes;
    s.early.push(() => act(s.peer!));
  }

  /** The worker accepted its end. */
  opened(id: number): void {
    const s = this.#socket(id);
    if (!s || s.accepted) return;
    s.accepted = true;
    this.#activate(s);
  }

  /** The browser's end closed (after the close was delivered to the worker). */
  closed(id: number): void {
    const s = this.#sockets.get(id);
    if (!s) return;
    this.#forget(id, s);
    if (s.counted) this.#hooks.deactivate();
  }

  /** The isolate is gone: every browser's end is closed with `code`. */
  closeAll(code: number, reason: string): void {
    for (const s of this.#sockets.values()) s.peer?.close(code, reason);
    this.#sockets.clear();
    this.#unbound = 0;
    this.#earlyBytes = 0;
  }

  /** A pair's record, created on the worker's first send, accept or 101 for it (none beyond the bound). */
  #socket(id: number): SocketState | undefined {
    let s = this.#sockets.get(id);
    if (s) return s;
    if (this.#unbound >= MAX_UNBOUND_SOCKETS) {
      const stale = Date.now() - this.#hooks.maxUnboundAgeMs();
      for (const [k, v] of this.#sockets) if (!v.peer && v.createdAt < stale) this.#forget(k, v);
      if (this.#unbound >= MAX_UNBOUND_SOCKETS) return undefined;
    }
    this.#sockets.set(id, (s = { peer: undefined, accepted: false, counted: false, early: [], earlyBytes: 0, createdAt: Date.now() }));
    this.#unbound++;
    return s;
  }

  #activate(s: SocketState): void {
    if (!s.accepted || !s.peer || s.counted) return;
    s.counted = true;
    this.#hooks.activate();
  }

  #forget(id: number, s: SocketState): void {
    this.#sockets.delete(id);
    if (!s.peer) this.#unbound--;
    this.#earlyBytes -= s.earlyBytes;
  }
}
