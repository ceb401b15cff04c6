/**
 * WebSocket upgrades, proxied to the worker (the `ws` library terminates the protocol here). The
 * upgrade request goes to the worker as a GET carrying the browser's end of the socket; if the worker
 * answers 101 with a WebSocketPair's client end, the handshake is completed and messages are relayed
 * both ways over RPC; any other answer goes back as a plain HTTP response and the socket closes.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { RpcTarget, type RpcStub } from 'capnweb';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../lib/log.ts';
import { SendQueue } from '../../lib/send-queue.ts';
import type { BrowserSocket, WireRequest, WireResponse, WorkerSocketApi } from '../../schemas/http.ts';
import { MAX_SEND_BATCH, MAX_SEND_BATCH_BYTES } from '../../schemas/object-socket-batches.ts';
import { responseProblem } from './forward.ts';

/** The largest message either side may send (bytes). */
export const MAX_MESSAGE = 1024 * 1024;
/** Browser messages on their way into the worker before ingress stops reading the socket. */
const MAX_IN_FLIGHT = 16;

/** Closes from our side; a paused socket is resumed, or it would never read the client's reply to the close frame. */
function shut(ws: WebSocket, code: number, reason: string): void {
  if (ws.isPaused) ws.resume();
  ws.close(code, reason);
}

/** A message's size in bytes, once it is known to be one. */
function checkMessage(data: unknown): number {
  if (typeof data !== 'string' && !(data instanceof Uint8Array)) throw new TypeError('a message is text or bytes');
  const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  if (size > MAX_MESSAGE) throw new RangeError(`a message is at most ${MAX_MESSAGE} bytes`);
  return size;
}

/** The browser's end, given to the worker before the handshake is done: what it sends early waits. */
class BrowserEnd extends RpcTarget implements BrowserSocket {
  #ws: WebSocket | undefined;
  #early: (() => void)[] = [];
  attach(ws: WebSocket): void {
    this.#ws = ws;
    for (const act of this.#early.splice(0)) act();
  }
  #do(act: (ws: WebSocket) => void): void {
    if (this.#ws) act(this.#ws);
    else if (this.#early.length < 1000) this.#early.push(() => act(this.#ws!));
  }
  /** Resolves once the message is handed to the connection: the sandbox counts what has not, and so sees a client that does not read. */
  send(data: unknown): Promise<void> {
    checkMessage(data);
    return new Promise((resolve) => this.#do((ws) => ws.send(data as string | Uint8Array, () => resolve())));
  }
  /** Messages in order, as one call (a Durable Object's, gathered per tick by the supervisor); resolves once the last is handed to the connection. */
  sendMany(messages: unknown): Promise<void> {
    if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_SEND_BATCH)
      throw new TypeError(`messages are a list of 1 to ${MAX_SEND_BATCH}`);
    let bytes = 0;
    for (const data of messages) bytes += checkMessage(data);
    if (bytes > MAX_SEND_BATCH_BYTES) throw new RangeError(`messages sent in one call are at most ${MAX_SEND_BATCH_BYTES} bytes`);
    const sent = messages as (string | Uint8Array)[];
    return new Promise((resolve) =>
      this.#do((ws) => {
        for (const [i, data] of sent.entries()) ws.send(data, i === sent.length - 1 ? () => resolve() : undefined);
      }),
    );
  }
  async close(code: unknown, reason: unknown): Promise<void> {
    const valid = typeof code === 'number' && (code === 1000 || code === 1009 || code === 1011 || (code >= 3000 && code <= 4999));
    this.#do((ws) => shut(ws, valid ? code : 1000, typeof reason === 'string' ? Buffer.from(reason).subarray(0, 123).toString() : ''));
  }
}

function refuse(socket: Duplex, status: number, text: string, headers: [string, string][] = []): void {
  const body = Buffer.from(text);
  const safe = headers.filter(([k]) => !/^(content-length|connection|transfer-encoding|upgrade)$/i.test(k));
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    ...safe.map(([k, v]) => `${k}: ${v}`),
    `content-length: ${body.length}`,
    'connection: close',
    '',
    '',
  ].join('\r\n');
  socket.end(Buffer.concat([Buffer.from(head), body]));
}

/** What RFC 6455 asks of an opening handshake, checked before any worker is woken for it. */
function handshakeProblem(req: IncomingMessage): string | undefined {
  if (req.method !== 'GET') return 'a WebSocket upgrade is a GET';
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return 'only WebSocket upgrades are supported';
  if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers['sec-websocket-key'] ?? '')) return 'Sec-WebSocket-Key is missing or malformed';
  if (req.headers['sec-websocket-version'] !== '13') return 'Sec-WebSocket-Version must be 13';
  return undefined;
}

export interface UpgradeDeps {
  /** The worker and the wire request for this upgrade, or the refusal (400: a bad Host; 404: no route). */
  route(req: IncomingMessage): { handle(wire: WireRequest): Promise<WireResponse>; wire: WireRequest } | { status: number; text: string };
  log: Logger;
  /** Open WebSockets this ingress holds at most (CORDON_MAX_WEBSOCKETS); beyond, upgrades get 503. */
  maxSockets: number;
}

export function webSocketUpgrades(deps: UpgradeDeps): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  // What the worker's 101 said, for the handshake ws completes: its subprotocol and the request id.
  const answered = new WeakMap<IncomingMessage, { protocol: string | undefined; requestId: string }>();
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE,
    perMessageDeflate: false, // a compressed frame is a decompression bomb waiting to be sent
    handleProtocols: (offered, req) => {
      const chosen = answered.get(req)?.protocol;
      return chosen !== undefined && offered.has(chosen) ? chosen : false;
    },
  });
  wss.on('headers', (headers, req) => {
    const requestId = answered.get(req)?.requestId;
    if (requestId) headers.push(`x-request-id: ${requestId}`);
  });
  let open = 0;
  return (req, socket, head) => {
    socket.on('error', () => {}); // a client that vanishes mid-handshake is not an error of ours
    const problem = handshakeProblem(req);
    if (problem) return refuse(socket, 400, `${problem}.\n`);
    const found = deps.route(req);
    if ('status' in found) return refuse(socket, found.status, found.text);
    const requestId = found.wire.headers.find(([k]) => k === 'x-request-id')?.[1] ?? '';
    if (open >= deps.maxSockets)
      return refuse(socket, 503, `This ingress holds its limit of ${deps.maxSockets} WebSockets; try again later.\nrequest id: ${requestId}\n`);
    open++;
    let counted = true;
    const release = () => {
      if (counted) open--;
      counted = false;
    };
    socket.once('close', release);
    const browser = new BrowserEnd();
    void found
      .handle({ ...found.wire, headers: [...found.wire.headers, ['upgrade', 'websocket'], ['connection', 'Upgrade']], socket: browser })
      .then((response) => {
        // Its headers are written here by hand: nothing a compromised sandbox sends may split them.
        const problem = responseProblem(response);
        if (problem) {
          if (response.stream instanceof ReadableStream) void response.stream.cancel().catch(() => {});
          deps.log.warn('the sandbox answered an upgrade with a response that cannot be sent', { requestId, problem });
          return refuse(socket, 502, `The worker's response could not be sent: ${problem}.\nrequest id: ${requestId}\n`);
        }
        const worker = response.webSocket as RpcStub<WorkerSocketApi> | undefined;
        if (response.status !== 101 || !worker) {
          void response.stream?.cancel().catch(() => {});
          const text = response.body ? Buffer.from(response.body).toString() : '';
          const status = response.status === 101 ? 502 : response.status;
          return refuse(socket, status, text, [...response.headers, ['x-request-id', requestId]]);
        }
        if (socket.destroyed)
          return void worker
            .close(1006, 'the client left during the handshake')
            .catch(() => {})
            .finally(() => worker[Symbol.dispose]());
        const protocol = response.headers.find(([k]) => k.toLowerCase() === 'sec-websocket-protocol')?.[1];
        answered.set(req, { protocol, requestId });
        wss.handleUpgrade(req, socket, head, (ws) => relay(ws, browser, worker));
      })
      .catch((e: Error) => {
        deps.log.warn('websocket upgrade failed', { requestId, error: e.message });
        refuse(socket, 502, `The worker's sandbox failed before it answered.\nrequest id: ${requestId}\n`);
      });
  };
}

/** Messages both ways until either end closes; a browser that sends faster than the worker takes them is paused. */
function relay(ws: WebSocket, browser: BrowserEnd, worker: RpcStub<WorkerSocketApi>): void {
  browser.attach(ws);
  let closed = false;
  worker.onRpcBroken(() => {
    closed = true;
    shut(ws, 1011, "the worker's sandbox went away");
  });
  // In order, a few at a time (the close last); past MAX_IN_FLIGHT the socket is not read until the worker catches up.
  type Item = { message: string | Uint8Array } | { close: [number, string] };
  const toWorker = new SendQueue<Item>(
    MAX_IN_FLIGHT,
    (item) => ('close' in item ? worker.close(...item.close) : worker.message(item.message)),
    (item, error) => {
      if ('close' in item) return worker[Symbol.dispose]();
      if (error) return shut(ws, 1011, 'the worker failed');
      if (toWorker.size < MAX_IN_FLIGHT && ws.isPaused) ws.resume();
    },
  );
  ws.on('message', (data, isBinary) => {
    if (closed) return;
    toWorker.push({ message: isBinary ? new Uint8Array(Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[])) : String(data) });
    if (toWorker.size >= MAX_IN_FLIGHT && !ws.isPaused) ws.pause();
  });
  ws.on('close', (code, reason) => {
    if (closed) return worker[Symbol.dispose]();
    closed = true;
    toWorker.push({ close: [code, reason.toString()] });
  });
  ws.on('error', () => ws.terminate());
}
