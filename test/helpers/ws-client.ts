/** A `ws` client whose messages are read one at a time, in order, each wait bounded. */
import { WebSocket, type ClientOptions, type RawData } from 'ws';

export class WsClient {
  readonly ws: WebSocket;
  readonly #inbox: (string | Buffer)[] = [];
  #wake: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  constructor(url: string, options: ClientOptions = {}) {
    this.ws = new WebSocket(url, options);
    this.ws.on('message', (data: RawData, isBinary) => {
      this.#inbox.push(isBinary ? (data as Buffer) : String(data));
      this.#wake?.();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      // The answer's body (its first 2 KB) in the error: what a failed upgrade says is what to look at.
      this.ws.once('unexpected-response', (_req, res) => {
        let body = '';
        const fail = () => reject(Object.assign(new Error(`status ${res.statusCode}: ${body.slice(0, 2048)}`), { status: res.statusCode }));
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
          if (body.length >= 2048) res.destroy(); // enough to say why: a body that never ends does not hold the failure back
        });
        res.once('close', fail);
      });
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }
  /** The next message, or a rejection after `ms`. */
  async next(ms = 10_000): Promise<string | Buffer> {
    const deadline = Date.now() + ms;
    while (!this.#inbox.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message came');
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
    return this.#inbox.shift()!;
  }
  /** The next JSON message whose `type` is `type` (others are skipped). */
  async nextOf<T = Record<string, unknown>>(type: string, ms = 10_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (let i = 0; i < 1000; i++) {
      const m = JSON.parse(String(await this.next(Math.max(1, deadline - Date.now())))) as { type?: string };
      if (m.type === type) return m as T;
    }
    throw new Error(`no ${type} message came`);
  }
}
