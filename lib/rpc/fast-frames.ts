/**
 * The HTTP fast path's binary frames: a request from ingress to a sandbox and its response, carried
 * as binary messages on the same authenticated channel as the capnweb session (BinaryChannel), beside
 * it. capnweb sends JSON text with bodies in base64 and a handful of messages a call; a frame is one
 * message each way with headers as length-prefixed strings and bodies as raw bytes.
 *
 * This module only encodes and decodes; it trusts nothing it decodes. Every length is checked against
 * what is left of the frame, so a malformed frame is a FastFrameError, never an over-read or a large
 * allocation (a frame is at most the channel's message limit, and nothing is allocated beyond it).
 * What a frame carries is checked afterwards exactly as a capnweb call's arguments are (WireRequest,
 * WorkerTarget, WireResponse).
 *
 * Layout (integers big-endian; strN is an N-bit byte length and that many bytes of UTF-8):
 *   request   1 | id u32 | traceparent str8 | workerId str16 | version str16 | codeKey str16 | method str8
 *               | url str32 | cf: presence u8, then str16 per present key of CF_KEYS | headers | body
 *   response  2 | id u32 | status u16 | statusText str16 | headers | body (kind 2: the body streams)
 *   failed    3 | id u32 | message str16             the call failed before a response (a capnweb reject)
 *   chunk     4 | id u32 | bytes to the frame's end    one piece of a streamed response body
 *   end       5 | id u32 | ok u8 | message str16      the streamed body ended (ok 0: it failed)
 *   credit    6 | id u32 | bytes u32                  the reader takes that many more body bytes
 *   cancel    7 | id u32                              the reader went away
 *   headers:  count u16, then (name str16, value str32) each
 *   body:     kind u8 (0 none, 1 bytes, 2 streamed, 3 follows); kind 1 is followed by length u32 and the bytes
 *
 * A request body of BODY_SIZED or more follows its request frame (kind 3) as the next binary message on
 * the channel, alone: the receiving decoder then reads it into memory of its own (frames.ts), which the
 * sandbox moves into the isolate as it is — one copy out of the socket's reads, not two (assembled with
 * the request's head, then copied out of it).
 */
import type { CfProperties } from '../../schemas/http.ts';
import { BODY_SIZED, type FramePool } from './frames.ts';

export const Kind = { Request: 1, Response: 2, Failed: 3, Chunk: 4, End: 5, Credit: 6, Cancel: 7 } as const;
type KindOf = typeof Kind;

/**
 * Body bytes a streamed response may send before its reader grants more (credit frames grant what it
 * took): at most this much of one response waits unread in ingress.
 */
export const INITIAL_CREDIT = 1024 * 1024;
/** The largest chunk frame's body: a worker's bigger chunk goes as several. */
export const MAX_CHUNK = 256 * 1024;

/** `request.cf`'s fields, in the order of the presence bits. */
const CF_KEYS = ['colo', 'httpProtocol', 'tlsVersion', 'tlsCipher', 'clientAcceptEncoding'] as const satisfies readonly (keyof CfProperties)[];

const BodyKind = { None: 0, Bytes: 1, Streamed: 2, Follows: 3 } as const;

export interface FastTarget {
  workerId: string;
  version: string;
  codeKey: string;
}

export interface FastRequest {
  kind: KindOf['Request'];
  id: number;
  traceparent: string;
  target: FastTarget;
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  cf: CfProperties | undefined;
  /** The body is the next binary message (decodeBody), not in this frame. */
  follows?: true;
}

export interface FastResponse {
  kind: KindOf['Response'];
  id: number;
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** The body follows as chunk frames, ended by an end frame. */
  streamed: boolean;
}

export type FastFrame =
  | FastRequest
  | FastResponse
  | { kind: KindOf['Failed']; id: number; message: string }
  | { kind: KindOf['Chunk']; id: number; bytes: Uint8Array }
  | { kind: KindOf['End']; id: number; ok: boolean; message: string }
  | { kind: KindOf['Credit']; id: number; bytes: number }
  | { kind: KindOf['Cancel']; id: number };

/** A frame that does not parse: the peer broke the protocol (the link is closed). */
export class FastFrameError extends Error {
  constructor(message: string) {
    super(`malformed fast-path frame: ${message}`);
    this.name = 'FastFrameError';
  }
}

/** The first length a 1-, 2- or 4-byte length field cannot hold. */
const LENGTH_LIMIT = { 1: 0x100, 2: 0x1_0000, 4: 0x1_0000_0000 } as const;

/** Writes into one buffer sized up front from the strings' UTF-16 lengths (at most 3 bytes a unit). */
class Writer {
  readonly buf: Buffer;
  pos = 0;
  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }
  u8(n: number): void {
    this.buf[this.pos++] = n;
  }
  u16(n: number): void {
    this.buf.writeUInt16BE(n, this.pos);
    this.pos += 2;
  }
  u32(n: number): void {
    this.buf.writeUInt32BE(n >>> 0, this.pos);
    this.pos += 4;
  }
  /** A string behind a `bytes`-byte length: written first, its length filled in after. */
  str(s: string, bytes: 1 | 2 | 4): void {
    const at = this.pos;
    this.pos += bytes;
    const n = s.length ? this.buf.write(s, this.pos, 'utf8') : 0;
    if (n >= LENGTH_LIMIT[bytes]) throw new RangeError(`a string of ${n} bytes does not fit the frame's ${8 * bytes}-bit length`);
    if (bytes === 1) this.buf[at] = n;
    else if (bytes === 2) this.buf.writeUInt16BE(n, at);
    else this.buf.writeUInt32BE(n, at);
    this.pos += n;
  }
  done(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

const capacity = (strings: number, headers: [string, string][]) => {
  let n = strings;
  for (const [name, value] of headers) n += name.length + value.length;
  return n * 3 + 6 * headers.length;
};

function writeHeaders(w: Writer, headers: [string, string][]): void {
  w.u16(headers.length);
  for (const [name, value] of headers) {
    w.str(name, 2);
    w.str(value, 4);
  }
}

/** The body's kind and length: the bytes follow as parts of their own (sent as they are, not copied). */
function writeBody(w: Writer, body: Uint8Array | readonly Uint8Array[] | null, streamed = false): Uint8Array[] {
  if (streamed) return (w.u8(BodyKind.Streamed), [w.done()]);
  if (!body) return (w.u8(BodyKind.None), [w.done()]);
  const parts = body instanceof Uint8Array ? [body] : body;
  let length = 0;
  for (const p of parts) length += p.byteLength;
  w.u8(BodyKind.Bytes);
  w.u32(length);
  return [w.done(), ...parts.filter((p) => p.byteLength)];
}

type RequestToEncode = Omit<FastRequest, 'kind' | 'body' | 'follows'> & { body: Uint8Array | readonly Uint8Array[] | null };

/** A request frame with its body in it, as parts to be sent one after the other (the body's pieces among them, not copied). */
export function encodeRequest(r: RequestToEncode): Uint8Array[] {
  return writeBody(requestHead(r), r.body);
}

/**
 * A request as the binary messages to send, in order and together: its frame, and for a body of
 * BODY_SIZED or more, the body alone after a frame that says it follows (each message as parts, the
 * body's pieces not copied).
 */
export function encodeRequestMessages(r: RequestToEncode): Uint8Array[][] {
  const parts = r.body === null ? [] : r.body instanceof Uint8Array ? [r.body] : r.body;
  let length = 0;
  for (const p of parts) length += p.byteLength;
  if (length < BODY_SIZED) return [encodeRequest(r)];
  const w = requestHead(r);
  w.u8(BodyKind.Follows);
  return [[w.done()], parts.filter((p) => p.byteLength)];
}

/** A request frame up to its body. */
function requestHead(r: RequestToEncode): Writer {
  let cfChars = 0;
  for (const key of CF_KEYS) cfChars += r.cf?.[key]?.length ?? 0;
  const strings =
    r.traceparent.length + r.target.workerId.length + r.target.version.length + r.target.codeKey.length + r.method.length + r.url.length + cfChars;
  const w = new Writer(64 + capacity(strings, r.headers) + 2 * CF_KEYS.length);
  w.u8(Kind.Request);
  w.u32(r.id);
  w.str(r.traceparent, 1);
  w.str(r.target.workerId, 2);
  w.str(r.target.version, 2);
  w.str(r.target.codeKey, 2);
  w.str(r.method, 1);
  w.str(r.url, 4);
  let present = 0;
  CF_KEYS.forEach((key, i) => {
    if (r.cf?.[key] !== undefined) present |= 1 << i;
  });
  w.u8(present);
  for (const key of CF_KEYS) if (r.cf?.[key] !== undefined) w.str(r.cf[key]!, 2);
  writeHeaders(w, r.headers);
  return w;
}

/** A response frame, as parts (see encodeRequest). */
export function encodeResponse(r: Omit<FastResponse, 'kind'>): Uint8Array[] {
  const w = new Writer(32 + capacity(r.statusText.length, r.headers));
  w.u8(Kind.Response);
  w.u32(r.id);
  w.u16(r.status);
  w.str(r.statusText, 2);
  writeHeaders(w, r.headers);
  return writeBody(w, r.body, r.streamed);
}

export function encodeFailed(id: number, message: string): Buffer {
  const w = new Writer(8 + Math.min(message.length, 16_384) * 3);
  w.u8(Kind.Failed);
  w.u32(id);
  w.str(message.slice(0, 16_384), 2);
  return w.done();
}

export function encodeChunk(id: number, bytes: Uint8Array): Uint8Array[] {
  const w = new Writer(5);
  w.u8(Kind.Chunk);
  w.u32(id);
  return [w.done(), bytes];
}

export function encodeEnd(id: number, ok: boolean, message = ''): Buffer {
  const w = new Writer(8 + Math.min(message.length, 16_384) * 3);
  w.u8(Kind.End);
  w.u32(id);
  w.u8(ok ? 1 : 0);
  w.str(message.slice(0, 16_384), 2);
  return w.done();
}

export function encodeCredit(id: number, bytes: number): Buffer {
  const w = new Writer(9);
  w.u8(Kind.Credit);
  w.u32(id);
  w.u32(bytes);
  return w.done();
}

export function encodeCancel(id: number): Buffer {
  const w = new Writer(5);
  w.u8(Kind.Cancel);
  w.u32(id);
  return w.done();
}

/** Bytes the Reader copied out of a frame, each the whole of a buffer nothing else holds (isFrameCopy). */
const frameCopies = new WeakSet<Uint8Array>();

/**
 * Whether `bytes` is a decoded frame's copy: the whole of its own buffer, held by nothing but the frame's
 * reader, so the sandbox may move that buffer into an isolate as it is rather than copy it once more.
 */
export const isFrameCopy = (bytes: Uint8Array): boolean => frameCopies.has(bytes);

/**
 * The body that followed a request frame (`follows`), from its message: the whole of the message's
 * memory when the decoder gave it memory of its own (a body-sized message spanning reads, or copied
 * out of one), else a copy (a lent or pooled view, or a larger buffer's) — a frame copy either way.
 */
export function decodeBody(message: Buffer): Uint8Array {
  return new Reader(message, undefined).whole();
}

/** Reads a frame front to back; every read checks that the frame holds it. */
class Reader {
  readonly #buf: Buffer;
  readonly #own: boolean;
  /** The pool the frame is in, if it is: its bytes are read in place and lent (FramePool.lend). */
  readonly #pool: FramePool | undefined;
  #pos = 0;
  constructor(buf: Buffer, pool: FramePool | undefined) {
    this.#buf = buf;
    this.#pool = pool?.holds(buf) ? pool : undefined;
    this.#own = this.#pool !== undefined || (buf.byteOffset === 0 && buf.buffer.byteLength === buf.byteLength);
  }
  #need(n: number, what: string): void {
    if (this.#pos + n > this.#buf.length) throw new FastFrameError(`truncated at ${what}`);
  }
  u8(what: string): number {
    this.#need(1, what);
    return this.#buf[this.#pos++]!;
  }
  u16(what: string): number {
    this.#need(2, what);
    const n = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return n;
  }
  u32(what: string): number {
    this.#need(4, what);
    const n = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return n;
  }
  str(bytes: 1 | 2 | 4, what: string): string {
    const n = bytes === 1 ? this.u8(what) : bytes === 2 ? this.u16(what) : this.u32(what);
    this.#need(n, what);
    const s = this.#buf.toString('utf8', this.#pos, this.#pos + n);
    this.#pos += n;
    return s;
  }
  /**
   * Bytes of the frame: a view when the frame has its memory to itself, else (a frame the decoder
   * lent, or a view of a larger buffer) a copy in a buffer of exactly its bytes. Code that hands a body's whole `.buffer` on (into an
   * isolate, say) must never hand on another message with it: at most this frame's own head. A pooled
   * frame's bytes are a view too, lent: its buffer is larger than the frame, and never handed on whole.
   */
  bytes(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const at = this.#pos;
    this.#pos += n;
    if (this.#own) {
      const view = new Uint8Array(this.#buf.buffer, this.#buf.byteOffset + at, n);
      this.#pool?.lend(view);
      return view;
    }
    const b = Buffer.allocUnsafeSlow(n);
    this.#buf.copy(b, 0, at, at + n);
    const copy = new Uint8Array(b.buffer, 0, n);
    frameCopies.add(copy);
    return copy;
  }
  rest(): Uint8Array {
    return this.bytes(this.#buf.length - this.#pos, 'rest');
  }
  /** All of a frame that is nothing but bytes, as a frame copy: its own memory as it is, else copied. */
  whole(): Uint8Array {
    if (!this.#own) return this.bytes(this.#buf.length, 'body');
    const bytes = new Uint8Array(this.#buf.buffer, 0, this.#buf.length);
    frameCopies.add(bytes);
    return bytes;
  }
  end(): void {
    if (this.#pos !== this.#buf.length) throw new FastFrameError(`${this.#buf.length - this.#pos} bytes after the end`);
  }
}

function readHeaders(r: Reader): [string, string][] {
  const count = r.u16('header count');
  const headers: [string, string][] = [];
  for (let i = 0; i < count; i++) headers.push([r.str(2, 'header name'), r.str(4, 'header value')]);
  return headers;
}

function readBody(r: Reader): { body: Uint8Array | null; streamed: boolean; follows?: true } {
  const kind = r.u8('body kind');
  if (kind === BodyKind.None) return { body: null, streamed: false };
  if (kind === BodyKind.Streamed) return { body: null, streamed: true };
  if (kind === BodyKind.Follows) return { body: null, streamed: false, follows: true };
  if (kind !== BodyKind.Bytes) throw new FastFrameError(`unknown body kind ${kind}`);
  return { body: r.bytes(r.u32('body length'), 'body'), streamed: false };
}

/** `pool`: the channel's FramePool; a frame in it has its bytes read in place and lent, for the caller to give back. */
export function decodeFrame(frame: Buffer, pool?: FramePool): FastFrame {
  const r = new Reader(frame, pool);
  const kind = r.u8('kind');
  const id = r.u32('id');
  let out: FastFrame;
  switch (kind) {
    case Kind.Request: {
      const traceparent = r.str(1, 'traceparent');
      const target = { workerId: r.str(2, 'worker id'), version: r.str(2, 'version'), codeKey: r.str(2, 'code key') };
      const method = r.str(1, 'method');
      const url = r.str(4, 'url');
      const present = r.u8('cf');
      if (present >> CF_KEYS.length) throw new FastFrameError('unknown cf field');
      let cf: CfProperties | undefined;
      if (present) {
        const fields: Partial<Record<(typeof CF_KEYS)[number], string>> = {};
        CF_KEYS.forEach((key, i) => {
          if (present & (1 << i)) fields[key] = r.str(2, `cf.${key}`);
        });
        cf = fields as CfProperties;
      }
      const headers = readHeaders(r);
      const { body, streamed, follows } = readBody(r);
      if (streamed) throw new FastFrameError('a request body cannot stream on the fast path');
      out = follows
        ? { kind, id, traceparent, target, method, url, headers, body, cf, follows }
        : { kind, id, traceparent, target, method, url, headers, body, cf };
      break;
    }
    case Kind.Response: {
      const status = r.u16('status');
      const statusText = r.str(2, 'status text');
      const headers = readHeaders(r);
      const { body, streamed, follows } = readBody(r);
      if (follows) throw new FastFrameError('a response body does not follow its frame');
      out = { kind, id, status, statusText, headers, body, streamed };
      break;
    }
    case Kind.Failed:
      out = { kind, id, message: r.str(2, 'message') };
      break;
    case Kind.Chunk:
      out = { kind, id, bytes: r.rest() };
      break;
    case Kind.End: {
      const ok = r.u8('ok');
      if (ok > 1) throw new FastFrameError('end: ok must be 0 or 1');
      out = { kind, id, ok: ok === 1, message: r.str(2, 'message') };
      break;
    }
    case Kind.Credit:
      out = { kind, id, bytes: r.u32('credit') };
      break;
    case Kind.Cancel:
      out = { kind, id };
      break;
    default:
      throw new FastFrameError(`unknown kind ${kind}`);
  }
  r.end();
  return out;
}
