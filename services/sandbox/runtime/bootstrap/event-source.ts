/**
 * EventSource (server-sent events), as the HTML standard defines it and Workers offers it: it connects
 * with the worker's own `fetch` (so egress policy, limits and audit apply as to any fetch), parses
 * `text/event-stream` as it arrives, and reconnects after `retry` with `Last-Event-ID`. Workers'
 * `EventSource.from(stream)` reads events from any ReadableStream of bytes.
 */
import { DOMException, TextDecoder } from './encoding.ts';
import type { URL } from 'whatwg-url';
import { url as urlUnit } from './url.ts';
import type { ReadableStream } from 'web-streams-polyfill';
import { Event, EventTarget } from './web-globals.ts';
import { streamClassOrNone } from './streams.ts';

export type Fetch = (
  input: string,
  init: Record<string, unknown>,
) => Promise<{ status: number; headers: { get(n: string): string | null }; body: ReadableStream<Uint8Array> | null }>;
export type SetTimeout = (fn: () => void, ms: number) => unknown;

/** A message event as EventSource dispatches it. */
export class EventSourceMessage extends Event {
  readonly data: string;
  readonly lastEventId: string;
  readonly origin: string;
  constructor(type: string, init: { data: string; lastEventId: string; origin: string }) {
    super(type);
    this.data = init.data;
    this.lastEventId = init.lastEventId;
    this.origin = init.origin;
  }
}

/** The text/event-stream parser: fed text, it calls `dispatch` for each complete event. */
class Parser {
  #buffer = '';
  #data = '';
  #event = '';
  #sawCR = false;
  lastEventId = '';
  readonly dispatch: (type: string, data: string, id: string) => void;
  readonly retry: (ms: number) => void;
  constructor(dispatch: (type: string, data: string, id: string) => void, retry: (ms: number) => void) {
    this.dispatch = dispatch;
    this.retry = retry;
  }
  feed(text: string): void {
    let s = this.#buffer + text;
    if (this.#sawCR && s.startsWith('\n')) s = s.slice(1);
    this.#sawCR = false;
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (c !== '\n' && c !== '\r') continue;
      this.#line(s.slice(start, i));
      if (c === '\r') {
        if (i + 1 === s.length) this.#sawCR = true;
        else if (s[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.#buffer = s.slice(start);
  }
  #line(line: string): void {
    if (line === '') {
      // An event with no data is not dispatched (workerd, measured, also for a bare `data` line).
      const data = this.#data.endsWith('\n') ? this.#data.slice(0, -1) : this.#data;
      if (data !== '') this.dispatch(this.#event || 'message', data, this.lastEventId);
      this.#data = '';
      this.#event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data += `${value}\n`;
    else if (field === 'event') this.#event = value;
    else if (field === 'id') {
      if (!value.includes('\0')) this.lastEventId = value;
    } else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retry(Number(value));
  }
}

export function makeEventSource(fetch: Fetch, setTimeout: SetTimeout) {
  return class EventSource extends EventTarget {
    static readonly CONNECTING = 0;
    static readonly OPEN = 1;
    static readonly CLOSED = 2;
    readonly CONNECTING = 0;
    readonly OPEN = 1;
    readonly CLOSED = 2;
    readonly url: string;
    readonly withCredentials: boolean;
    #state = 0;
    #retryMs = 3000;
    #abort: AbortController | undefined;
    #parser: Parser;
    onopen: ((e: Event) => void) | null = null;
    onmessage: ((e: Event) => void) | null = null;
    onerror: ((e: Event) => void) | null = null;

    constructor(url: unknown, init: { withCredentials?: boolean } = {}) {
      super();
      let parsed: URL;
      try {
        parsed = new (urlUnit().URL)(String(url));
      } catch {
        throw new DOMException(`Failed to construct 'EventSource': The URL '${String(url)}' is invalid.`, 'SyntaxError');
      }
      this.url = parsed.href;
      this.withCredentials = Boolean(init?.withCredentials);
      this.#parser = this.#newParser(parsed.origin);
      if (this.url !== 'about:blank') void this.#connect();
    }

    /** Workers' extension: the events of a stream of bytes already at hand (no reconnection). */
    static from(stream: unknown): EventSource {
      if (!(stream instanceof streamClassOrNone('ReadableStream'))) throw new TypeError('EventSource.from() takes a ReadableStream');
      const es = new EventSource('about:blank');
      es.#state = 1;
      void es.#read(stream as ReadableStream<Uint8Array>, false);
      return es;
    }

    get readyState(): number {
      return this.#state;
    }

    close(): void {
      this.#state = 2;
      this.#abort?.abort();
    }

    #newParser(origin: string): Parser {
      return new Parser(
        (type, data, lastEventId) => {
          if (this.#state === 2) return;
          this.#fire(new EventSourceMessage(type, { data, lastEventId, origin }));
        },
        (ms) => (this.#retryMs = ms),
      );
    }

    #fire(e: Event): void {
      const handler = e.type === 'open' ? this.onopen : e.type === 'message' ? this.onmessage : e.type === 'error' ? this.onerror : null;
      if (typeof handler === 'function') handler.call(this, e);
      this.dispatchEvent(e);
    }

    /** A connection failed for good (a bad status or type): closed, with an error event. */
    #fail(): void {
      if (this.#state === 2) return;
      this.#state = 2;
      this.#fire(new Event('error'));
    }

    async #connect(): Promise<void> {
      this.#abort = new AbortController();
      const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-store' };
      if (this.#parser.lastEventId) headers['last-event-id'] = this.#parser.lastEventId;
      let res: Awaited<ReturnType<Fetch>>;
      try {
        res = await fetch(this.url, { headers, signal: this.#abort.signal });
      } catch {
        return this.#reconnect();
      }
      if (this.#state === 2) return;
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (res.status !== 200 || type !== 'text/event-stream' || res.body === null) return this.#fail();
      this.#state = 1;
      this.#fire(new Event('open'));
      await this.#read(res.body, true);
    }

    async #read(body: ReadableStream<Uint8Array>, reconnect: boolean): Promise<void> {
      const decoder = new TextDecoder();
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done || this.#state === 2) break;
          this.#parser.feed(decoder.decode(value, { stream: true }));
        }
      } catch {
        // the connection dropped: as its end
      }
      if (this.#state === 2) return;
      if (reconnect) this.#reconnect();
      else this.#fail();
    }

    /** The stream ended or the connection failed: back to CONNECTING, an error event, another try after `retry`. */
    #reconnect(): void {
      if (this.#state === 2) return;
      this.#state = 0;
      this.#fire(new Event('error'));
      if (this.#state === 2) return; // closed by the error handler
      try {
        setTimeout(() => {
          if (this.#state !== 2) void this.#connect();
        }, this.#retryMs);
      } catch {
        this.#fail(); // no timers outside a request: nothing more to wait for
      }
    }
  };
}
