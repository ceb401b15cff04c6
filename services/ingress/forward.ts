/**
 * Turning an incoming HTTP request into a WireRequest for a sandbox, and its WireResponse back.
 * Hop-by-hop headers never cross; the request id is set by us; bodies are bounded.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { MAX_BODY, type WireRequest, type WireResponse } from '../../schemas/http.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'proxy-authenticate', 'proxy-authorization']);
const REQUEST_ID = /^[A-Za-z0-9._-]{8,128}$/;

export class BodyTooLargeError extends Error {}

/** The request id: the client's `x-request-id` when well-formed, else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

export async function readBody(req: IncomingMessage, max = MAX_BODY): Promise<Uint8Array | null> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw new BodyTooLargeError(`request body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new BodyTooLargeError(`request body over ${max} bytes`);
    chunks.push(chunk);
  }
  if (size === 0 && (req.method === 'GET' || req.method === 'HEAD')) return null;
  return new Uint8Array(Buffer.concat(chunks, size));
}

export function toWireRequest(req: IncomingMessage, host: string, requestId: string, body: Uint8Array | null): WireRequest {
  const headers: [string, string][] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
    headers.push([name, raw[i + 1]!]);
  }
  headers.push(['x-request-id', requestId]);
  return { method: (req.method ?? 'GET').toUpperCase(), url: `http://${host}${req.url ?? '/'}`, headers, body };
}

export function writeWireResponse(res: ServerResponse, response: WireResponse, requestId: string, method: string): void {
  const headers: [string, string][] = response.headers.filter(([n]) => !HOP_BY_HOP.has(n.toLowerCase()) && n.toLowerCase() !== 'content-length');
  headers.push(['x-request-id', requestId]);
  const body = response.body ?? new Uint8Array(0);
  const noBody = method === 'HEAD' || response.status === 204 || response.status === 304;
  if (!noBody) headers.push(['content-length', String(body.byteLength)]);
  res.writeHead(response.status, response.statusText || undefined, headers.flat());
  res.end(noBody ? undefined : body);
}

/** A plain-text error page that says what went wrong and carries the request id. */
export function writeError(res: ServerResponse, status: number, message: string, requestId: string): void {
  if (res.headersSent) return void res.destroy();
  const body = `${message}\nrequest id: ${requestId}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-request-id': requestId });
  res.end(body);
}
