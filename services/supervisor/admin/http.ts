/**
 * The HTTP plumbing every admin route shares: JSON answers, request bodies read under a cap (and the
 * refusal of an over-long one that still reaches the client), path segments percent-decoded.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { CordonError } from '../../../lib/errors.ts';
import { adminMaxBodyBytes } from '../../../lib/config.ts';

/** CORDON_ADMIN_MAX_BODY_MB: a body is counted as it streams in and refused past this, before any parsing. */
const MAX_REQUEST_BODY = adminMaxBodyBytes();
/** How long a refused request's unread body is still taken in (and dropped) before its connection is cut. */
const LINGER_MS = 2000;

/** An admin request refused with `status`; a 403 is audited by the server. */
export class HttpError extends CordonError {
  constructor(status: number, message: string) {
    super(message, { status, refusal: status === 403 });
  }
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Answers a request whose body was refused unread. Closing a socket that still has unread input makes
 * the kernel reset the connection, and a client still uploading then sees the reset, not our answer:
 * so the answer is written at once, the rest of the body is read and dropped (nothing is kept), and the
 * connection ends when the body does or after LINGER_MS, whichever comes first.
 */
export function lingeringRefusal(req: IncomingMessage, res: ServerResponse, status: number, message: string): void {
  const text = JSON.stringify({ error: message }, null, 2) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.write(text);
  const timer = setTimeout(() => res.end(), LINGER_MS);
  req.on('end', () => {
    clearTimeout(timer);
    res.end();
  });
  req.on('error', () => res.destroy());
  req.resume();
}

/** A request body, counted as it streams in and refused with 413 past `max` bytes. */
export async function readBytes(req: IncomingMessage, max = MAX_REQUEST_BODY): Promise<Buffer> {
  const tooLarge = () =>
    new HttpError(413, max === MAX_REQUEST_BODY ? `request body over ${max} bytes (CORDON_ADMIN_MAX_BODY_MB)` : `request body over ${max} bytes`);
  if (Number(req.headers['content-length'] ?? 0) > max) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  // Not destroyed on overflow, so the 413 still reaches the client (the connection closes after it).
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** A request body as text, under the same cap. */
export async function readText(req: IncomingMessage, max = MAX_REQUEST_BODY): Promise<string> {
  return (await readBytes(req, max)).toString('utf8');
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readText(req);
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

export function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `malformed percent-encoding in the path segment ${JSON.stringify(segment)}`);
  }
}
