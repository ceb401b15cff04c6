/**
 * The Unix-socket transport: length-prefixed frames on a stream socket. The default inside one
 * machine. Sockets are created in a 0700 directory with mode 0600, and every connection must pass
 * the handshake before any RPC message is read.
 */
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { ChannelClosedError, Inbox, MAX_HANDSHAKE_MESSAGE, type BinaryChannel, type Channel } from './channel.ts';
import { BINARY, encodeFrame, FrameDecoder, FramePool, FrameTooLargeError } from './frames.ts';

/** Messages queued unread before we stop reading the socket (back-pressure on the peer). */
const HIGH_WATER = 64;

export class SocketChannel implements BinaryChannel {
  readonly #inbox = new Inbox();
  #binary: ((message: Buffer) => void) | undefined;
  readonly #decoder: FrameDecoder;
  readonly #closeCallbacks: ((e: Error) => void)[] = [];
  #closeReason: Error | undefined;

  readonly #socket: Socket;
  readonly maxMessage: number;
  readonly description: string;

  /**
   * `readsInto`: the socket reads into this one buffer (net's `onread`), and received() is called with
   * each read; otherwise it gets 'data' events, each read in a buffer of its own.
   */
  constructor(socket: Socket, maxMessage: number, description: string, readsInto?: Buffer) {
    this.#socket = socket;
    this.maxMessage = maxMessage;
    this.description = description;
    this.#decoder = new FrameDecoder(Math.min(maxMessage, MAX_HANDSHAKE_MESSAGE));
    this.#reused = readsInto !== undefined;
    socket.setNoDelay?.(true);
    if (!readsInto) socket.on('data', (data: Buffer) => this.received(data));
    socket.on('error', (e) => this.close(e));
    socket.on('close', () => this.close(new ChannelClosedError(`connection to ${description} closed`)));
  }

  readonly #reused: boolean;
  #paused = false;

  /** Bytes read from the socket (with `readsInto`, a view of that buffer, overwritten by the next read). */
  received(data: Buffer): void {
    if (this.#closeReason) return; // read after close (until the socket is paused): not ours to keep
    try {
      for (const f of this.#decoder.push(data, this.#reused)) {
        if (typeof f === 'string') this.#inbox.push(f);
        else if (this.#binary) this.#binary(f);
        else throw new Error('a binary message before the session began');
        if (this.#closeReason) return; // the handler found the peer broke the protocol
      }
    } catch (e) {
      this.close(e as Error);
      return;
    }
    // A read in a buffer of its own (the accepting end: net gives each its own ArrayBuffer) that nothing
    // kept, the decoder having copied out what it keeps: freed now rather than at a major collection (a
    // 64 KiB body arrives in a read or two). Detached, it would read as 0 bytes, never as other bytes.
    if (!this.#reused && !this.#decoder.keepsReads && data.length > 0 && data.byteOffset === 0 && data.buffer.byteLength === data.length) {
      try {
        (data.buffer as ArrayBuffer).transfer(0);
      } catch {
        // not detachable (a buffer Node marked so): the collector's, as before — never a reason to drop the channel
      }
    }
    if (this.#inbox.backlog > HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
  }

  get closed(): boolean {
    return this.#closeReason !== undefined;
  }

  authenticated(): void {
    this.#decoder.maxFrame = this.maxMessage;
  }

  #corked = false;

  send(message: string): void {
    if (this.#closeReason) throw this.#closeReason;
    this.#cork();
    this.#socket.write(encodeFrame(message, this.maxMessage));
  }

  sendBinary(message: Uint8Array | readonly Uint8Array[], written?: () => void): void {
    if (this.#closeReason) throw this.#closeReason;
    const parts = message instanceof Uint8Array ? [message] : message;
    let length = 0;
    for (const p of parts) length += p.byteLength;
    if (length > this.maxMessage) throw new FrameTooLargeError(length, this.maxMessage);
    this.#cork();
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE((BINARY | length) >>> 0, 0);
    this.#socket.write(header);
    // The socket writes in order: the last part's callback comes after every part is written (or failed).
    for (let i = 0; i < parts.length; i++) this.#socket.write(parts[i]!, i === parts.length - 1 ? written : undefined);
  }

  onBinary(handler: (message: Buffer) => void): void {
    this.#binary = handler;
  }

  /**
   * Only where the socket reads into one buffer (the connecting end): there every frame is copied out
   * of the read anyway, and a pool spares the allocation. Elsewhere a read's buffer is its own, and the
   * pool is not offered (undefined).
   */
  framePool(): FramePool | undefined {
    if (!this.#reused) return undefined;
    this.#decoder.pool ??= new FramePool();
    return this.#decoder.pool;
  }

  /**
   * The frames of one turn of the event loop leave in one write: flushed in its check phase
   * (setImmediate), after every socket read and timer of the turn, so requests that arrived on many
   * connections at once cost one write and one wake-up of the peer, not one each (a tick would flush
   * after each connection's read). A workflow run or a busy mesh sends many small frames.
   */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    setImmediate(this.#uncork);
  }

  readonly #uncork = () => {
    this.#corked = false;
    this.#socket.uncork();
  };

  async receive(): Promise<string> {
    const m = await this.#inbox.receive();
    if (this.#inbox.backlog <= HIGH_WATER / 2 && this.#paused && !this.#closeReason) {
      this.#paused = false;
      this.#socket.resume();
    }
    return m;
  }

  close(reason: Error = new ChannelClosedError()): void {
    if (this.#closeReason) return;
    this.#closeReason = reason;
    this.#inbox.fail(reason);
    // end() lets queued frames (such as a handshake refusal) reach the peer; destroy soon after. Nothing
    // more is read meanwhile: a peer that broke the protocol may be sending megabytes.
    this.#socket.pause();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 200).unref();
    for (const cb of this.#closeCallbacks.splice(0)) cb(reason);
  }

  onClose(callback: (reason: Error) => void): void {
    if (this.#closeReason) callback(this.#closeReason);
    else this.#closeCallbacks.push(callback);
  }
}

export interface UnixListener {
  readonly path: string;
  close(): Promise<void>;
}

/** Listen on a Unix socket; each accepted connection becomes a Channel handed to `onChannel`. */
export async function listenUnix(path: string, maxMessage: number, onChannel: (channel: Channel) => void): Promise<UnixListener> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  rmSync(path, { force: true }); // a stale socket from a killed process
  const server: Server = createServer((socket) => onChannel(new SocketChannel(socket, maxMessage, `unix:${path}`)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * What a connecting end reads into, per connection: reads go into it and the decoder copies out only
 * what it keeps (a buffer per read otherwise; a large message arrives in many). net offers this
 * (`onread`) to connecting sockets only, so the accepting end keeps a buffer per read.
 */
const READ_BUFFER = 256 * 1024;

export function connectUnix(path: string, maxMessage: number): Promise<Channel> {
  return new Promise((resolve, reject) => {
    const buffer = Buffer.allocUnsafeSlow(READ_BUFFER);
    const socket: Socket = createConnection({ path, onread: { buffer, callback: (n: number): boolean => (channel.received(buffer.subarray(0, n)), true) } });
    const channel: SocketChannel = new SocketChannel(socket, maxMessage, `unix:${path}`, buffer);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(channel);
    });
  });
}
