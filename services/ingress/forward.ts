/**
 * Turning an incoming HTTP request into a WireRequest for a sandbox, and its WireResponse back.
 * Hop-by-hop headers never cross; the request id is set by us; bodies are bounded.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { CordonError } from '../../lib/errors.ts';
import { FramePool } from '../../lib/rpc/frames.ts';
import { MAX_BODY, WireResponseHead, type CfProperties, type WireRequest, type WireResponse } from '../../schemas/http.ts';
import { safeCheck } from '../../lib/rpc/validate.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'proxy-authorization',
]);
const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;
/** Response bodies up to this size are written with their head as one string (writeWireResponse). */
const STRING_BODY = 2048;

/** A request body over `max` bytes: 413, and a refusal; the message is the client's answer. */
export const bodyTooLarge = (max: number) => new CordonError(`Request body too large: over ${max} bytes.`, { status: 413, refusal: true });

/** The request id: the client's `x-request-id` when well-formed, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * The whole request body, as the pieces the parser gave (each a buffer it does not reuse): sent to the
 * sandbox as they are, one write of many parts, not copied into one buffer first. Read through 'data'
 * events rather than the stream's async iterator, which costs a promise and a few objects per chunk.
 */
export function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Buffer[] | null> {
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  // No length and no chunked encoding: HTTP/1.1 says there is no body (RFC 9112 §6.3). The common
  // case, answered without listening for the body at all.
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    req.resume();
    return Promise.resolve(bodyless ? null : []);
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) return Promise.reject(bodyTooLarge(max));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: Error | undefined) => {
      req.off('data', onData).off('end', onEnd).off('error', settle).off('close', onClose);
      if (error) return reject(error);
      resolve(size === 0 && bodyless ? null : chunks);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) return void chunks.push(chunk);
      settle(bodyTooLarge(max));
      req.destroy(); // the rest is not read (the connection closes, as it did when the body's iterator was left)
    };
    const onEnd = () => settle(undefined);
    // Closed before its end: the client went away mid-body.
    const onClose = () => settle(new Error('the client closed the connection before the request body ended'));
    req.on('data', onData).on('end', onEnd).on('error', settle).on('close', onClose);
  });
}

/** Bodies up to this size (declared) travel whole (and may be retried); bigger or unknown ones stream. */
export const STREAM_ABOVE = 64 * 1024;

export function streamsBody(req: IncomingMessage): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return false;
  const declared = req.headers['content-length'];
  return declared === undefined ? req.headers['transfer-encoding'] !== undefined : Number(declared) > STREAM_ABOVE;
}

/**
 * The request body as a stream the worker pulls from: nothing is read from the client before the
 * worker asks (backpressure), and at most `max` bytes in all; past that the stream fails and
 * `overLimit()` says so (ingress then answers 413 if it still can).
 */
export function bodyStream(req: IncomingMessage, max: number): { stream: ReadableStream<Uint8Array>; overLimit: () => boolean } {
  const declared = Number(req.headers['content-length'] ?? 0);
  let size = 0;
  let over = declared > max;
  const chunks = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (over) return controller.error(bodyTooLarge(max));
        const { done, value } = await chunks.next();
        if (done) return controller.close();
        size += value.length;
        if (size > max) {
          over = true;
          return controller.error(bodyTooLarge(max));
        }
        controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      },
      async cancel() {
        await chunks.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, overLimit: () => over };
}

/**
 * Headers that say who the client is, as Cloudflare's edge sets them: a client may not choose them,
 * so what it sent is dropped and ingress writes its own (`x-forwarded-for` keeps the client's list and
 * appends the address the connection came from, as Cloudflare does).
 */
const CLIENT_IDENTITY = new Set(['cf-connecting-ip', 'x-forwarded-proto']);

/** Headers ingress adds to every request (x-request-id and the three above): room kept for them under MAX_HEADERS. */
export const ADDED_HEADERS = 4;

/** `request.cf` from the connection: the protocol, TLS, the client's Accept-Encoding, and the configured colo. */
export function cfOf(req: IncomingMessage, colo: string | undefined): CfProperties {
  const tls = req.socket as Partial<TLSSocket>;
  const cf: CfProperties = { httpProtocol: `HTTP/${req.httpVersion}` };
  if (colo) cf.colo = colo;
  const version = tls.encrypted ? tls.getProtocol?.() : undefined;
  const cipher = tls.encrypted ? tls.getCipher?.()?.name : undefined;
  if (version) cf.tlsVersion = version;
  if (cipher) cf.tlsCipher = cipher;
  const accept = req.headers['accept-encoding'];
  if (accept !== undefined) cf.clientAcceptEncoding = String(accept).slice(0, 1024);
  return cf;
}

/** `authority` is the checked Host (host.ts); `req.url` a path (origin-form), so the URL's host is exactly it. */
export function toWireRequest(req: IncomingMessage, authority: string, requestId: string, body: Uint8Array | null, colo?: string): WireRequest {
  const headers: [string, string][] = [];
  const raw = req.rawHeaders;
  const client = req.socket.remoteAddress ?? '';
  let forwardedFor: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (CLIENT_IDENTITY.has(lower)) continue;
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? raw[i + 1]! : `${forwardedFor}, ${raw[i + 1]!}`;
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower === 'x-request-id') continue;
    headers.push([lower, raw[i + 1]!]);
  }
  headers.push(['x-request-id', requestId]);
  headers.push(['cf-connecting-ip', client]);
  headers.push(['x-forwarded-for', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`]);
  headers.push(['x-forwarded-proto', (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http']);
  return { method: (req.method ?? 'GET').toUpperCase(), url: `http://${authority}${req.url ?? '/'}`, headers, body, cf: cfOf(req, colo) };
}

/**
 * What makes a sandbox's answer unsendable, or undefined: a sandbox is assumed compromised, and
 * Node would throw half-way through writing a status text or header it cannot carry.
 */
export function responseProblem(response: unknown): string | undefined {
  const head = safeCheck(WireResponseHead, response);
  if (!head.success) {
    const issue = head.error.issues[0];
    return `${issue?.path.join('.') || 'response'}: ${issue?.message ?? 'rejected'}`;
  }
  const { body, stream } = response as { body?: unknown; stream?: unknown };
  if (stream !== undefined ? !(stream instanceof ReadableStream) : !(body === null || (body instanceof Uint8Array && body.byteLength <= MAX_BODY)))
    return 'the body is neither bytes nor a stream';
  return undefined;
}

export async function writeWireResponse(res: ServerResponse, response: WireResponse, requestId: string, method: string): Promise<void> {
  // Node's flat form, [name, value, name, value, …]: one pass, one lower-casing per header.
  const headers: string[] = [];
  let ownId = false;
  for (const [name, value] of response.headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'content-length') continue;
    // A worker that answers with its own request id keeps it: one x-request-id, never two.
    if (lower === 'x-request-id') ownId = true;
    headers.push(name, value);
  }
  if (!ownId) headers.push('x-request-id', requestId);
  if (unfinishedRequest(res)) headers.push('connection', 'close');
  if (response.stream) return streamOut(res, response.status, response.statusText, headers, response.stream, method === 'HEAD');
  const body = response.body ?? new Uint8Array(0);
  const noBody = method === 'HEAD' || response.status === 204 || response.status === 304;
  if (!noBody) headers.push('content-length', String(body.byteLength));
  res.writeHead(response.status, response.statusText || undefined, headers);
  if (noBody) return void res.end();
  // A small body goes as a latin1 string, byte for byte: Node then sends the head and the body as one
  // string in one write (as a bare server answering a string does), not a write of two parts.
  if (body.byteLength <= STRING_BODY) return void res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1'), 'latin1');
  // The body may be a pooled frame's (fast-link.ts): its buffer goes back once the socket has taken it.
  res.end(body, () => FramePool.giveBack(body));
}

/**
 * A body the worker streams: written chunk by chunk (chunked encoding), each chunk only after the
 * client took the previous one (`drain`), so a slow reader slows the worker rather than filling memory.
 * A client that goes away cancels the stream in the worker; a worker that fails mid-stream cuts the
 * connection (the status line has gone; a truncated body must not look complete).
 */
async function streamOut(
  res: ServerResponse,
  status: number,
  statusText: string,
  headers: string[],
  stream: ReadableStream<Uint8Array>,
  head: boolean,
): Promise<void> {
  const reader = stream.getReader();
  res.writeHead(status, statusText || undefined, headers);
  // The status line goes now, not with the first chunk: a client (an event stream, say) learns the
  // response has begun, and a worker cut before its first chunk reads as a truncated body.
  res.flushHeaders();
  const gone = () => void reader.cancel().catch(() => {});
  res.once('close', gone);
  try {
    if (head) return void (await reader.cancel());
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      // A pooled frame's chunk goes back once the socket has taken it (the write's callback), never before.
      if (!res.write(value, () => FramePool.giveBack(value))) await drained(res);
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', gone);
  }
}

/** The client took what was written, or went away; neither listener outlives the wait (a long stream waits many times). */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Whether the client is still sending the request body as the response starts (a 413 cut it off, or
 * the worker did not read it all): the connection then closes after the response, or the unread rest
 * would sit in front of the client's next request on it.
 */
function unfinishedRequest(res: ServerResponse): boolean {
  return !res.req.complete;
}

/** A plain-text error page that says what went wrong and carries the request id. */
export function writeError(res: ServerResponse, status: number, message: string, requestId: string): void {
  if (res.headersSent) return void res.destroy();
  const body = `${message}\nrequest id: ${requestId}\n`;
  // The reason phrase is named: a failed writeHead before this one may have left its own behind.
  res.writeHead(status, STATUS_CODES[status] ?? '', {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    ...(unfinishedRequest(res) ? { connection: 'close' } : {}),
  });
  res.end(body);
}
