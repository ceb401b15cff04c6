/**
 * Ingress's end of the fast path against a sandbox that breaks the protocol (a sandbox is assumed
 * compromised): whatever it sends, ingress does not crash, holds no more of a streamed body than it
 * granted, and closes that link (its pending calls fail, to be retried or answered 502 by ingress).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame, encodeChunk, encodeEnd, encodeRequest, encodeResponse, INITIAL_CREDIT, Kind, type FastFrame } from '../../lib/rpc/fast-frames.ts';
import { FrameTooLargeError } from '../../lib/rpc/frames.ts';
import type { MeshSession } from '../../lib/rpc/index.ts';
import { FastLink } from './fast-link.ts';

const target = { workerId: 't/w', version: 'a'.repeat(64), codeKey: 'k'.repeat(43) };
const wire = { method: 'GET', url: 'http://x.test/', headers: [] as [string, string][], body: null };

/** A channel as SocketChannel behaves: a handler that throws closes it. */
function fakeSession() {
  const sent: FastFrame[] = [];
  let handler: (b: Buffer) => void = () => {};
  let close!: (e: Error) => void;
  const closed = new Promise<Error>((r) => (close = r));
  let isClosed = false;
  const channel = {
    closed: false,
    sendBinary: (b: Uint8Array | Uint8Array[]) => void sent.push(decodeFrame(Buffer.concat(b instanceof Uint8Array ? [b] : b))),
    onBinary: (h: (b: Buffer) => void) => void (handler = h),
    send() {},
  };
  const deliver = (parts: Uint8Array | Uint8Array[]) => {
    const b = Buffer.concat(parts instanceof Uint8Array ? [parts] : parts);
    if (isClosed) return;
    try {
      handler(b);
    } catch (e) {
      isClosed = channel.closed = true;
      close(e as Error);
    }
  };
  const link = FastLink.of({ channel, closed } as unknown as MeshSession<any>)!;
  return { link, sent, deliver, closed, isClosed: () => isClosed };
}

test('an answer to a request that is not waiting closes the link and fails the calls in flight', async () => {
  const s = fakeSession();
  const call = s.link.call(target, wire);
  s.deliver(encodeResponse({ id: 999, status: 200, statusText: '', headers: [], body: null, streamed: false }));
  assert.equal(s.isClosed(), true);
  await assert.rejects(call, /not waiting for an answer/);
  await assert.rejects(s.link.call(target, wire), /not waiting for an answer/, 'no call goes on a closed link');
});

test('a body-sized request body goes after its frame as a message of its own, or neither goes: a body the channel cannot carry is not sent after its frame', async () => {
  const raw: Buffer[] = [];
  const channel = { closed: false, maxMessage: 100_000, sendBinary: (b: Uint8Array[]) => void raw.push(Buffer.concat(b)), onBinary() {}, send() {} };
  const link = FastLink.of({ channel, closed: new Promise(() => {}) } as unknown as MeshSession<any>)!;
  const body = [Buffer.alloc(40_000, 1), Buffer.alloc(40_000, 2)];
  void link.call(target, { ...wire, method: 'POST', body: null, bodyParts: body });
  assert.equal(raw.length, 2);
  assert.deepEqual(decodeFrame(raw[0]!), { kind: Kind.Request, id: 1, traceparent: '', target, ...wire, method: 'POST', cf: undefined, follows: true });
  assert.deepEqual(raw[1], Buffer.concat(body));
  // Over the limit: refused before the frame is sent (else the sandbox would take the next request's frame for its body).
  await assert.rejects(link.call(target, { ...wire, method: 'POST', body: null, bodyParts: [...body, Buffer.alloc(40_000)] }), FrameTooLargeError);
  assert.equal(raw.length, 2);
});

test('a request-kind frame or a malformed one from the sandbox closes the link', async () => {
  const a = fakeSession();
  a.deliver(encodeRequest({ id: 1, traceparent: '', target, ...wire, cf: undefined }));
  assert.match((await a.closed).message, /kind 1/);
  const b = fakeSession();
  b.deliver(Buffer.from([Kind.Response, 0, 0]));
  assert.match((await b.closed).message, /malformed fast-path frame/);
});

test('a streamed body: never more unread than granted; credit as the reader takes; cancel when it goes', async () => {
  const s = fakeSession();
  const call = s.link.call(target, wire);
  const id = s.sent[0]!.id;
  s.deliver(encodeResponse({ id, status: 200, statusText: '', headers: [], body: null, streamed: true }));
  const response = await call;
  const reader = response.stream!.getReader();
  const quarter = INITIAL_CREDIT / 4;
  s.deliver(encodeChunk(id, new Uint8Array(1000)));
  assert.equal((await reader.read()).value!.byteLength, 1000);
  assert.equal(s.sent.length, 1, 'no credit for less than a quarter window');
  s.deliver(encodeChunk(id, new Uint8Array(quarter)));
  assert.equal((await reader.read()).value!.byteLength, quarter);
  assert.deepEqual(s.sent.at(-1), { kind: Kind.Credit, id, bytes: quarter + 1000 });
  // The whole window, and then one byte more than it: the link closes, and the body fails.
  s.deliver(encodeChunk(id, new Uint8Array(INITIAL_CREDIT)));
  s.deliver(encodeChunk(id, new Uint8Array(1)));
  assert.match((await s.closed).message, /more of a streamed body than it was granted/);
  assert.equal((await reader.read()).value!.byteLength, INITIAL_CREDIT);
  await assert.rejects(reader.read(), /streamed body failed/);

  const t = fakeSession();
  const second = t.link.call(target, wire);
  const id2 = t.sent[0]!.id;
  t.deliver(encodeResponse({ id: id2, status: 200, statusText: '', headers: [], body: null, streamed: true }));
  await (await second).stream!.cancel();
  assert.deepEqual(t.sent.at(-1), { kind: Kind.Cancel, id: id2 });
  t.deliver(encodeChunk(id2, new Uint8Array(10))); // already on its way: dropped
  t.deliver(encodeEnd(id2, true));
  assert.equal(t.isClosed(), false);
});
