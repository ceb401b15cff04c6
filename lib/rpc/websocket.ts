/**
 * A Channel over one accepted WebSocket (the `ws` package): how a client outside the mesh reaches an
 * RPC session. Text frames only; `ws` refuses a frame over `maxMessage` itself (close 1009) before
 * buffering it, and before `authenticated()` a message over MAX_HANDSHAKE_MESSAGE closes the channel,
 * so a connection that has not shown a token can make us hold no more than that.
 */
import type { WebSocket } from 'ws';
import { ChannelClosedError, Inbox, MAX_HANDSHAKE_MESSAGE, type Channel } from './channel.ts';
import { FrameTooLargeError } from './frames.ts';

/** Messages read but not yet taken by the session; above this the socket stops reading. */
const HIGH_WATER = 256;

/** WebSocket close codes this side uses (4000–4999 are the application's). */
export const CLOSE = { protocol: 1002, error: 1011, busy: 1013, unauthorized: 4401, revoked: 4403 } as const;

export class WebSocketChannel implements Channel {
  readonly #ws: WebSocket;
  readonly #inbox = new Inbox();
  readonly #closeCallbacks: ((reason: Error) => void)[] = [];
  #closeReason: Error | undefined;
  #limit: number;
  readonly maxMessage: number;
  readonly description: string;

  constructor(ws: WebSocket, maxMessage: number, description: string) {
    this.#ws = ws;
    this.maxMessage = maxMessage;
    this.description = description;
    this.#limit = Math.min(maxMessage, MAX_HANDSHAKE_MESSAGE);
    ws.on('message', (data, isBinary) => {
      if (this.#closeReason) return;
      if (isBinary) return this.close(new Error('binary WebSocket frames are not part of this protocol'), CLOSE.protocol);
      const text = data.toString();
      if (text.length > this.#limit) return this.close(new FrameTooLargeError(text.length, this.#limit), 1009);
      this.#inbox.push(text);
      if (this.#inbox.backlog > HIGH_WATER) ws.pause();
    });
    ws.on('error', (e) => this.close(e, 1009));
    ws.on('close', (code, reason) => this.close(new ChannelClosedError(`${description} closed the WebSocket (${code}${reason.length ? ` ${reason}` : ''})`)));
  }

  get closed(): boolean {
    return this.#closeReason !== undefined;
  }

  authenticated(): void {
    this.#limit = this.maxMessage;
  }

  send(message: string): void {
    if (this.#closeReason) throw this.#closeReason;
    this.#ws.send(message);
  }

  async receive(): Promise<string> {
    const m = await this.#inbox.receive();
    if (this.#inbox.backlog <= HIGH_WATER / 2 && this.#ws.isPaused) this.#ws.resume();
    return m;
  }

  /** Close with a reason the peer sees (a close frame's reason is at most 123 bytes). */
  close(reason: Error = new ChannelClosedError(), code: number = CLOSE.error): void {
    if (this.#closeReason) return;
    this.#closeReason = reason;
    this.#inbox.fail(reason);
    const said = Buffer.from(reason.message)
      .subarray(0, 123)
      .toString()
      .replace(/\uFFFD$/, '');
    try {
      this.#ws.close(code, said);
    } catch {
      this.#ws.terminate();
    }
    // A peer that does not answer the close frame is cut off.
    setTimeout(() => this.#ws.terminate(), 1000).unref();
    for (const cb of this.#closeCallbacks.splice(0)) cb(reason);
  }

  onClose(callback: (reason: Error) => void): void {
    if (this.#closeReason) callback(this.#closeReason);
    else this.#closeCallbacks.push(callback);
  }
}
