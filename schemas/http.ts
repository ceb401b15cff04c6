/** HTTP messages as they cross service boundaries (ingress → sandbox, sandbox → egress). */
import { z } from 'zod';
import { bytes } from '../lib/rpc/validate.ts';

export const MAX_URL = 16 * 1024;
export const MAX_HEADERS = 128;
export const MAX_HEADER_BYTES = 64 * 1024;
/** A body that travels whole (bytes) is at most this big; bigger ones stream (see `stream` below). */
export const MAX_BODY = 8 * 1024 * 1024;

const headerName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name');
// What an HTTP/1.1 field value and reason phrase may hold (RFC 9110 §5.5, RFC 9112 §4): tab, visible
// ASCII, space, obs-text (Latin-1). Node writes exactly these and throws on anything else, so nothing
// else may reach ingress. (The Fetch standard allows other control characters in header values; a
// worker that sets one gets a 500 from its sandbox, not a malformed message.)
const FIELD_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;
const headerValue = z.string().max(MAX_HEADER_BYTES).regex(FIELD_TEXT, 'header value holds a control character or a character outside Latin-1');
/** A response's status text: a reason phrase. */
export const StatusText = z.string().max(256).regex(FIELD_TEXT, 'statusText holds a control character or a character outside Latin-1');
export const Headers = z.array(z.tuple([headerName, headerValue])).max(MAX_HEADERS);

/**
 * `request.cf`: what a self-hosted edge knows of the connection (ingress sets it; no geolocation). The
 * sandbox checks it like the rest of the request, and the isolate freezes it.
 */
export const CfProperties = z.strictObject({
  colo: z.string().max(16).optional(),
  httpProtocol: z.string().max(16),
  tlsVersion: z.string().max(16).optional(),
  tlsCipher: z.string().max(128).optional(),
  clientAcceptEncoding: z.string().max(1024).optional(),
});
export type CfProperties = z.infer<typeof CfProperties>;

export const WireRequest = z.object({
  method: z
    .string()
    .min(1)
    .max(32)
    .regex(/^[A-Z]+$/, 'method must be upper-case letters'),
  url: z
    .string()
    .max(MAX_URL)
    .regex(/^https?:\/\//, 'url must be absolute http(s)'),
  headers: Headers,
  body: bytes(MAX_BODY).nullable(),
  cf: CfProperties.optional(),
});
/** The browser's end of a WebSocket, held by ingress: what the worker sends or does goes there. */
export interface BrowserSocket {
  send(data: string | Uint8Array): Promise<void>;
  /** Several messages in order, in one call: a Durable Object's sockets (the supervisor gathers each tick's, bounded as schemas/object-socket-batches.ts says). */
  sendMany(messages: (string | Uint8Array)[]): Promise<void>;
  close(code: number, reason: string): Promise<void>;
}

/** The worker's end of a WebSocket, for ingress: what the browser sends or does goes into the isolate. */
export interface WorkerSocketApi {
  message(data: string | Uint8Array): Promise<void>;
  close(code: number, reason: string): Promise<void>;
}

/**
 * A request; its body is `body` (bytes, whole) or, when the client's body streams in, `stream` (body
 * then null). A WebSocket upgrade carries the browser's end as `socket`. Ingress may hold a body it
 * read whole as `bodyParts`, the pieces it arrived in (body then null): the fast path sends them as
 * they are, a capnweb call gets them joined as `body` (callSandbox).
 */
export type WireRequest = z.infer<typeof WireRequest> & { stream?: ReadableStream<Uint8Array>; socket?: BrowserSocket; bodyParts?: readonly Uint8Array[] };

export const WireResponse = z.object({
  status: z.number().int().min(101).max(599),
  statusText: StatusText,
  headers: Headers,
  body: bytes(MAX_BODY).nullable(),
});
/** A response; its body is `body` (bytes, whole) or, when the worker streams it, `stream`; a 101 carries the worker's socket end. */
export type WireResponse = z.infer<typeof WireResponse> & { stream?: ReadableStream<Uint8Array>; webSocket?: WorkerSocketApi };
