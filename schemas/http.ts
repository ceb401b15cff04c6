/** HTTP messages as they cross service boundaries (ingress → sandbox, sandbox → egress). */
import { z } from 'zod';
import { bytes, plainObject, withAcceptor } from '../lib/rpc/validate.ts';

import { MAX_BODY, MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADERS, MAX_METHOD, MAX_URL } from './http-limits.ts';

export { MAX_BODY, MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADERS, MAX_METHOD, MAX_URL };

/** A header name: a token (RFC 9110 §5.6.2) of 1 to 256 characters. */
const HEADER_NAME = new RegExp(`^[!#$%&'*+.^_\`|~0-9A-Za-z-]{1,${MAX_HEADER_NAME}}$`);
// What an HTTP/1.1 field value and reason phrase may hold (RFC 9110 §5.5, RFC 9112 §4): tab, visible
// ASCII, space, obs-text (Latin-1). Node writes exactly these and throws on anything else, so nothing
// else may reach ingress. (The Fetch standard allows other control characters in header values; a
// worker that sets one gets a 500 from its sandbox, not a malformed message.)
const FIELD_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;
/** A response's status text: a reason phrase. */
export const StatusText = z.string().max(256).regex(FIELD_TEXT, 'statusText holds a control character or a character outside Latin-1');

/** The first problem of a header list, naming the header (by position) where it is one, or undefined. */
function headersProblem(input: unknown): string | undefined {
  if (!Array.isArray(input)) return 'expected a list of [name, value] pairs';
  if (input.length > MAX_HEADERS) return `at most ${MAX_HEADERS} headers`;
  for (let i = 0; i < input.length; i++) {
    const pair: unknown = input[i];
    if (!Array.isArray(pair) || pair.length !== 2) return `header ${i}: expected a [name, value] pair`;
    const [name, value] = pair as unknown[];
    if (typeof name !== 'string' || !HEADER_NAME.test(name)) return `header ${i}: not a valid header name`;
    if (typeof value !== 'string') return `header ${i}: the value must be a string`;
    if (value.length > MAX_HEADER_BYTES) return `header ${i}: a header value is at most ${MAX_HEADER_BYTES} characters`;
    if (!FIELD_TEXT.test(value)) return `header ${i}: header value holds a control character or a character outside Latin-1`;
  }
  return undefined;
}

/**
 * Headers as [name, value] pairs, at most MAX_HEADERS, checked in one pass over the list as it is. Not
 * a zod array of tuples: that copied the list and made half a dozen objects per header, and every
 * request's and response's headers are checked at each hop (test/request-path-cost.test.ts counts the
 * bytes a request allocates). The list is not copied: what is checked is always a list its receiver
 * made itself (decoded from a message, or parsed from JSON), which nothing else holds.
 */
export const Headers = z.custom<[string, string][]>((v) => headersProblem(v) === undefined, { error: (issue) => headersProblem(issue.input) });

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

const METHOD = /^[A-Z]+$/;
const ABSOLUTE_HTTP = /^https?:\/\//;

const RequestMeta = z.object({
  method: z.string().min(1).max(MAX_METHOD).regex(METHOD, 'method must be upper-case letters'),
  url: z.string().max(MAX_URL).regex(ABSOLUTE_HTTP, 'url must be absolute http(s)'),
  headers: Headers,
  body: bytes(MAX_BODY).nullable(),
  cf: CfProperties.optional(),
});
export const WireRequest = withAcceptor(RequestMeta, acceptRequest);

const shortString = (v: unknown, max: number): v is string => typeof v === 'string' && v.length <= max;

/** WireRequest's acceptor (lib/rpc/validate.ts withAcceptor): the request as zod would give it back, or undefined. */
function acceptRequest(v: unknown): z.output<typeof RequestMeta> | undefined {
  if (!plainObject(v)) return undefined;
  const { method, url, headers, body, cf } = v;
  if (!shortString(method, MAX_METHOD) || !METHOD.test(method)) return undefined;
  if (!shortString(url, MAX_URL) || !ABSOLUTE_HTTP.test(url)) return undefined;
  if (headersProblem(headers) !== undefined) return undefined;
  if (body !== null && !(body instanceof Uint8Array && body.byteLength <= MAX_BODY)) return undefined;
  const request = { method, url, headers: headers as [string, string][], body: body as Uint8Array | null };
  if (cf === undefined) return 'cf' in v ? undefined : request;
  const props = acceptCf(cf);
  return props && { ...request, cf: props };
}

const CF_MAX: Record<string, number> = { colo: 16, httpProtocol: 16, tlsVersion: 16, tlsCipher: 128, clientAcceptEncoding: 1024 };

function acceptCf(v: unknown): CfProperties | undefined {
  if (!plainObject(v)) return undefined;
  const out: Record<string, string> = {};
  for (const key of Object.keys(v)) {
    const value = v[key]; // read once: a getter may answer differently the next time
    if (!Object.hasOwn(CF_MAX, key) || !shortString(value, CF_MAX[key]!)) return undefined;
    out[key] = value;
  }
  return typeof out.httpProtocol === 'string' ? (out as CfProperties) : undefined;
}

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
/** A response's status line and headers, as ingress checks a sandbox's answer. */
export const WireResponseHead = withAcceptor(WireResponse.pick({ status: true, statusText: true, headers: true }), (v) => acceptHead(v, 101));

/**
 * A response head's acceptor: the head as zod would give it back (status, statusText, headers), or
 * undefined. `minStatus`: the lowest status taken (an isolate's answer is 101 only with a WebSocket, which
 * is zod's to check).
 */
export function acceptHead(v: unknown, minStatus: number): Pick<WireResponse, 'status' | 'statusText' | 'headers'> | undefined {
  if (!plainObject(v)) return undefined;
  const { status, statusText, headers } = v;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < minStatus || status > 599) return undefined;
  if (!shortString(statusText, 256) || !FIELD_TEXT.test(statusText)) return undefined;
  if (headersProblem(headers) !== undefined) return undefined;
  return { status, statusText, headers: headers as [string, string][] };
}
/** A response; its body is `body` (bytes, whole) or, when the worker streams it, `stream`; a 101 carries the worker's socket end. */
export type WireResponse = z.infer<typeof WireResponse> & { stream?: ReadableStream<Uint8Array>; webSocket?: WorkerSocketApi };
