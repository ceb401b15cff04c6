/**
 * A response as it comes out of the isolate (bootstrap/response-out.ts wrote it): a JSON head or a
 * failure, and an ArrayBuffer body, checked here like any input from tenant code.
 */
import { z } from 'zod';
import { acceptHead, Headers as WireHeaders, MAX_BODY, StatusText, type WireResponse } from '../../../schemas/http.ts';
import { plainObject, safeCheck, withAcceptor } from '../../../lib/rpc/validate.ts';
import { SocketId } from '../../../schemas/durable-objects.ts';
import { tenantStack, WorkerError } from './errors.ts';
import { soleBytes } from './sole-bytes.ts';

/** Serialised status line and headers; more is refused inside the isolate. */
export const MAX_HEAD = 256 * 1024;
const MiB = 1024 * 1024;
/** What of an exception a loaded Worker threw reaches its parent (bootstrap/response-out.ts thrown). */
const MAX_THROWN_NAME = 64;
const MAX_THROWN_MESSAGE = 16 * 1024;

/** A Durable Object's socket a worker returned in its 101: its namespace binding and the socket's id. */
export interface ObjectSocketRef {
  handle: string;
  sid: string;
}
/** A response as read from the isolate (a 101 names its WebSocketPair, or a Durable Object's socket). */
export type ReadResponse = Omit<WireResponse, 'webSocket' | 'stream'> & { webSocketId?: number; objectSocket?: ObjectSocketRef };

export const Head = withAcceptor(
  z
    .object({
      status: z.number().int().min(101).max(599),
      statusText: StatusText,
      headers: WireHeaders,
      /** With status 101: the WebSocketPair whose client end the worker returned. */
      webSocket: z.union([z.number().int().positive(), z.object({ handle: z.string().min(1).max(64), sid: SocketId }).strict()]).optional(),
    })
    .refine(
      (h) => (h.status === 101) === (h.webSocket !== undefined) && (h.status >= 200 || h.status === 101),
      'status 101 comes with a webSocket, and only then',
    ),
  // A head without a WebSocket; one with is zod's to check.
  (v) => (plainObject(v) && !('webSocket' in v) ? acceptHead(v, 200) : undefined),
);

/** The head and body of an answer ('!' + a failure, or a head), as a response or a WorkerError. */
export function readResponse(result: [string, ArrayBuffer | null]): ReadResponse {
  try {
    return parse(result);
  } catch (e) {
    if (e instanceof WorkerError) throw e;
    throw new WorkerError(500, 'worker returned an invalid response', 'the response could not be read');
  }
}

function parse([head, out]: [string, ArrayBuffer | null]): ReadResponse {
  if (typeof head !== 'string') throw new WorkerError(500, 'worker returned an invalid response', 'the response could not be serialised');
  if (head.startsWith('!')) {
    const parsed = JSON.parse(head.slice(1)) as { kind: unknown; message: unknown; thrown?: unknown };
    const kind = String(parsed.kind);
    const message = String(parsed.message);
    if (kind === 'exception') {
      const err = new WorkerError(500, 'worker threw an exception', tenantStack(message));
      const t = parsed.thrown;
      if (Array.isArray(t) && t.length === 2 && typeof t[0] === 'string' && typeof t[1] === 'string')
        err.thrown = [t[0].slice(0, MAX_THROWN_NAME), t[1].slice(0, MAX_THROWN_MESSAGE)];
      throw err;
    }
    if (kind === 'too-large') throw new WorkerError(500, `worker response body exceeds the ${MAX_BODY / MiB} MiB limit`, message);
    if (kind === 'bad-response') throw new WorkerError(500, 'worker returned an invalid response', message);
    throw new WorkerError(500, 'worker did not return a Response', message);
  }
  if (head.length > MAX_HEAD)
    throw new WorkerError(500, 'worker returned an invalid response', `the status line and headers take ${head.length} characters; the limit is ${MAX_HEAD}`);
  const parsed = safeCheck(Head, JSON.parse(head));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WorkerError(500, 'worker returned an invalid response', `${issue?.path.join('.') || 'response'}: ${issue?.message ?? 'rejected'}`);
  }
  if (out !== null && !(out instanceof ArrayBuffer)) throw new WorkerError(500, 'worker returned an invalid response', 'the body did not arrive as bytes');
  if (out && out.byteLength > MAX_BODY)
    throw new WorkerError(500, `worker response body exceeds the ${MAX_BODY / MiB} MiB limit`, `the response body is ${out.byteLength} bytes`);
  const nullBody = parsed.data.status === 204 || parsed.data.status === 205 || parsed.data.status === 304;
  const response = {
    status: parsed.data.status,
    statusText: parsed.data.statusText,
    headers: parsed.data.headers,
    body: out && !nullBody ? soleBytes(out) : null,
  };
  const ws = parsed.data.webSocket;
  if (ws === undefined) return response;
  return typeof ws === 'number' ? { ...response, webSocketId: ws } : { ...response, objectSocket: ws };
}
