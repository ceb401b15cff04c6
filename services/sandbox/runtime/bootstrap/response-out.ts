/**
 * A request's answer as the host takes it (Entry.runBatch): a JSON head and a fresh ArrayBuffer, or a
 * failure; a streamed body's bytes (Entry.pull) in the host's own buffers; never an object the tenant made. What it uses after tenant code has run
 * is captured when the bootstrap is evaluated, so a tenant that patches prototypes changes only what
 * it sees itself.
 */
import { Body, Headers, type Response } from './fetch-api.ts';
import { WebSocket, sockets as socketInternals } from './websocket.ts';
import { show } from './console.ts';
import type { BodyCopy, PulledBytes } from '../abi.ts';

const apply = Reflect.apply;
const JSONstringify = JSON.stringify;
const AB = ArrayBuffer;
const U8 = Uint8Array;
const TypedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as object;
const taByteLength = Object.getOwnPropertyDescriptor(TypedArrayProto, 'byteLength')!.get!;
const taSet = Uint8Array.prototype.set;
const abByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength')!.get!;
const taBuffer = Object.getOwnPropertyDescriptor(TypedArrayProto, 'buffer')!.get!;
const taByteOffset = Object.getOwnPropertyDescriptor(TypedArrayProto, 'byteOffset')!.get!;
const PromiseCtor = Promise;
const promiseThen = Promise.prototype.then;
const MathMin = Math.min;
const checkBody = Body.check;
const readBody = Body.read;
const takeOut = Body.takeOut;
const takeStream = Body.takeStream;
const rawHeaders = Headers.raw;
const StringCtor = String;

/** The bounds on what a response may hand the host (BootOptions). */
export interface Limits {
  /** The most that crosses at once: a larger body streams out. */
  maxBody: number;
  maxHead: number;
}

/** What the log gets for a tenant exception: always a string, whatever the tenant made of its errors. */
export function errorText(e: unknown): string {
  try {
    if (e instanceof Error) {
      const stack = e.stack;
      return typeof stack === 'string' ? stack : `${StringCtor(e.name)}: ${StringCtor(e.message)}`;
    }
    return `uncaught: ${show(e)}`;
  } catch {
    return 'an exception that could not be described';
  }
}

export function fail(kind: string, message: string): [string, null] {
  return ['!' + JSONstringify({ kind, message }), null];
}

/**
 * An exception a loaded Worker's entrypoint threw for its parent's fetch(): logged as any, and its name
 * and message for the parent to throw again, as Workers RPC hands a thrown error to its caller.
 */
export function thrown(e: unknown): [string, null] {
  let pair: [string, string];
  try {
    pair = e instanceof Error ? [StringCtor(e.name), StringCtor(e.message)] : ['Error', show(e)];
  } catch {
    pair = ['Error', 'an exception that could not be described'];
  }
  return ['!' + JSONstringify({ kind: 'exception', message: errorText(e), thrown: pair }), null];
}

/**
 * The response as the host takes it: a JSON string and a fresh ArrayBuffer, nothing the tenant made.
 * A stream body the worker has touched is read to its end here (under the request's watchdogs); a body
 * over maxBody (what crosses to the host at once) then goes out in pieces, as an untouched stream does.
 */
export async function serialize(response: unknown, seq: number, limits: Limits): Promise<[string, ArrayBuffer | null]> {
  try {
    checkBody(response as Response); // a brand check: throws for anything but a real Response
  } catch {
    return fail('not-a-response', `fetch() returned ${response === null ? 'null' : typeof response}, not a Response`);
  }
  const r = response as Response;
  // Workers answers a network error (Response.error()) returned by a handler as a failed request.
  if (r.status === 0) return fail('bad-response', 'the worker returned Response.error() (a network error)');
  let head: string;
  try {
    head = JSONstringify({ status: r.status, statusText: StringCtor(r.statusText), headers: rawHeaders(r.headers) });
    if (typeof head !== 'string') return fail('bad-response', 'the response could not be serialised');
    if (head.length > limits.maxHead) return fail('bad-response', `the status line and headers take ${head.length} characters; the limit is ${limits.maxHead}`);
  } catch (e) {
    return fail('exception', errorText(e));
  }
  if (r.status === 101) {
    // A socket a Durable Object answered with: the sandbox joins it to the browser's end through its binding.
    const remote = socketInternals.remoteOfClient(r.webSocket);
    if (remote) return [JSONstringify({ status: 101, statusText: '', headers: rawHeaders(r.headers), webSocket: remote }), null];
    const pair = WebSocket.pairOfClient(r.webSocket);
    if (pair === undefined) return fail('bad-response', 'a 101 response needs webSocket: the client end of a WebSocketPair');
    return [JSONstringify({ status: 101, statusText: '', headers: rawHeaders(r.headers), webSocket: pair }), null];
  }
  // A stream nobody has read goes out chunk by chunk: the host pulls (pull(seq)) until it ends.
  const stream = takeStream(r);
  if (stream) {
    outgoing.set(seq, stream.getReader());
    return ['~' + head, null];
  }
  let bytes: Uint8Array | null;
  try {
    // Held in full by the worker: its memory limit is the bound, as in Workers (no size cap of its own).
    bytes = await readBody(r);
  } catch (e) {
    return fail('exception', errorText(e));
  }
  try {
    if (bytes === null) return [head, null];
    const own = takeOut(r, bytes);
    const length = apply(taByteLength, bytes, []) as number;
    // Over what crosses to the host at once, the body goes out in pieces as the host pulls them.
    if (length > limits.maxBody) {
      outgoing.set(seq, pieces(bytes, length, limits.maxBody));
      return ['~' + head, null];
    }
    // Bytes the response owned whole (its BodyInit was copied in) go as they are, as does a copy made
    // here: the answer's buffer is the runtime's alone, and leaves the isolate moved, not copied (entry.ts ready).
    if (own) return [head, apply(taBuffer, bytes, []) as ArrayBuffer];
    const out = new AB(length);
    apply(taSet, new U8(out), [bytes]);
    return [head, out];
  } catch (e) {
    return fail('exception', errorText(e));
  }
}

/** A body held in full, read out as a stream of views of at most `size` bytes (pull copies each). */
function pieces(bytes: Uint8Array, length: number, size: number): Reader {
  let at = 0;
  return {
    read: () => {
      if (at >= length) return PromiseCtor.resolve({ done: true });
      const value = new U8(apply(taBuffer, bytes, []) as ArrayBuffer, (apply(taByteOffset, bytes, []) as number) + at, MathMin(size, length - at));
      at += size;
      return PromiseCtor.resolve({ done: false, value });
    },
    cancel: () => {
      at = length;
      return PromiseCtor.resolve();
    },
  };
}

type ReadResult = { done: boolean; value?: unknown };
type Reader = { read(): Promise<ReadResult>; cancel(reason?: unknown): Promise<void> };

/** Response bodies being streamed out, by request. */
const outgoing = new Map<number, Reader>();
/** A read a pull began and did not wait for (its chunk was not made yet): the next pull's first. */
const begun = new Map<number, Promise<ReadResult>>();
/** What is left of a chunk a pull's buffer could not hold: the next pull's first bytes. */
const rests = new Map<number, Uint8Array>();

/** Microtask turns within which a read counts as already made (a pull-based source enqueues within one or two). */
const READY_TURNS = 4;

/**
 * The next bytes of request `seq`'s response body, or null at its end. The host moves `into` in, a
 * zeroed buffer of its own; the chunks the worker has already made are copied into it, as many as it
 * holds (what one does not fit is the next pull's), and it goes back moved out, the bytes copied once:
 * one crossing (and one frame to ingress) for them all. A chunk not made yet is not waited for.
 * The copy's handle travels in an object without a prototype: a `then` a tenant put on
 * Object.prototype never sees it as the pull's promise resolves.
 */
export async function pull(seq: number, into: ArrayBuffer, BodyCopyCtor: BodyCopyClass): Promise<PulledBytes | null> {
  const reader = outgoing.get(seq);
  if (!reader) return null;
  let value: unknown = rests.get(seq);
  if (value !== undefined) rests.delete(seq);
  else {
    const first = begun.get(seq) ?? reader.read();
    begun.delete(seq);
    const read = await first;
    if (read.done) {
      outgoing.delete(seq);
      return null;
    }
    value = read.value;
  }
  if (!(value instanceof U8)) {
    outgoing.delete(seq);
    void reader.cancel();
    throw new TypeError('a response body stream must give Uint8Array chunks');
  }
  const room = apply(abByteLength, into, []) as number;
  const bytes = new U8(into);
  let length = 0;
  for (;;) {
    const n = apply(taByteLength, value, []) as number;
    if (length + n > room) {
      // Its first part fills the buffer; the rest goes first in the next pull (views made here, not by the chunk's species).
      const fits = room - length;
      const buffer = apply(taBuffer, value, []) as ArrayBuffer;
      const offset = apply(taByteOffset, value, []) as number;
      apply(taSet, bytes, [new U8(buffer, offset, fits), length]);
      rests.set(seq, new U8(buffer, offset + fits, n - fits));
      length = room;
      break;
    }
    apply(taSet, bytes, [value, length]);
    length += n;
    if (length === room) break;
    const read = reader.read();
    const next = await readySoon(read);
    // Not made yet, the end, a failure or not bytes: the next pull's to wait for or to answer.
    if (!next || next.done || !(next.value instanceof U8)) {
      begun.set(seq, read);
      break;
    }
    value = next.value;
  }
  return { __proto__: null, bytes: new BodyCopyCtor(new U8(into, 0, length), MOVE_OUT) } as unknown as PulledBytes;
}

/** isolated-vm's ExternalCopy, as pull uses it (abi.ts BodyCopy). */
export type BodyCopyClass = new (bytes: Uint8Array, options: { transferOut: true }) => BodyCopy;
export const MOVE_OUT = Object.freeze({ __proto__: null, transferOut: true }) as { transferOut: true };

/** `read`'s result if it succeeds within READY_TURNS microtask turns, else undefined (it may still settle later). */
async function readySoon(read: Promise<ReadResult>): Promise<ReadResult | undefined> {
  let result: ReadResult | undefined;
  let settled = false;
  apply(promiseThen, read, [
    (r: ReadResult) => {
      result = r;
      settled = true;
    },
    () => {
      settled = true;
    },
  ]);
  for (let turn = 0; turn < READY_TURNS && !settled; turn++) await undefined;
  return result;
}

/** The client went away: the rest of the body is not wanted. */
export function cancelStream(seq: number): void {
  const reader = outgoing.get(seq);
  outgoing.delete(seq);
  begun.delete(seq);
  rests.delete(seq);
  if (reader) void reader.cancel('the client went away').catch(() => {});
}

/** Whether a response body is still streaming out. */
export function streamsOpen(): boolean {
  return outgoing.size > 0;
}

/** Every request has ended (Entry.end): no body streams out any more. */
export function cancelAllStreams(): void {
  for (const seq of [...outgoing.keys()]) cancelStream(seq);
}
