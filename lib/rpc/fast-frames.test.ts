import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import {
  decodeBody,
  decodeFrame,
  encodeCancel,
  encodeChunk,
  encodeCredit,
  encodeEnd,
  encodeFailed,
  encodeRequest,
  encodeRequestMessages,
  encodeResponse,
  FastFrameError,
  isFrameCopy,
  Kind,
} from './fast-frames.ts';
import { BODY_SIZED } from './frames.ts';
import { Rng } from './testing/fuzz.ts';

/** A frame's parts as one message, as a channel delivers it. */
const one = (parts: Uint8Array | Uint8Array[]) => Buffer.concat(parts instanceof Uint8Array ? [parts] : parts);

const SEED = process.env.CORDON_FUZZ_SEED ? Number(process.env.CORDON_FUZZ_SEED) : randomInt(2 ** 31);
/** Fuzz iterations: bounded in count (each is a few microseconds). */
const ROUNDS = 20_000;

const request = {
  id: 7,
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  target: { workerId: 'acme/shop', version: 'f'.repeat(64), codeKey: 'K'.repeat(43) },
  method: 'POST',
  url: 'http://shop.example/cart?x=ü',
  headers: [
    ['content-type', 'text/plain'],
    ['x-latin', 'caf\xe9'],
    ['x-empty', ''],
  ] as [string, string][],
  body: new Uint8Array([0, 1, 2, 255]),
  cf: { httpProtocol: 'HTTP/1.1', tlsCipher: 'AES128-GCM-SHA256', clientAcceptEncoding: 'gzip' },
};

test('every kind of frame decodes to what was encoded', () => {
  assert.deepEqual(decodeFrame(one(encodeRequest(request))), { kind: Kind.Request, ...request });
  // A body given as the pieces it arrived in is the same frame, its pieces sent as they are.
  const pieces = [request.body.subarray(0, 1), new Uint8Array(0), request.body.subarray(1)];
  const parts = encodeRequest({ ...request, body: pieces });
  assert.deepEqual(one(parts), one(encodeRequest(request)));
  assert.deepEqual(parts.slice(1), [pieces[0], pieces[2]]);
  const bare = { ...request, traceparent: '', headers: [], body: null, cf: undefined };
  assert.deepEqual(decodeFrame(one(encodeRequest(bare))), { kind: Kind.Request, ...bare });
  const response = { id: 2 ** 32 - 1, status: 404, statusText: 'Not Found', headers: request.headers, body: new Uint8Array(70_000).fill(9), streamed: false };
  assert.deepEqual(decodeFrame(one(encodeResponse(response))), { kind: Kind.Response, ...response });
  const head = { ...response, body: null, streamed: true };
  assert.deepEqual(decodeFrame(one(encodeResponse(head))), { kind: Kind.Response, ...head });
  assert.deepEqual(decodeFrame(one(encodeFailed(3, 'worker code unavailable'))), { kind: Kind.Failed, id: 3, message: 'worker code unavailable' });
  assert.deepEqual(decodeFrame(one(encodeChunk(4, new Uint8Array([1, 2])))), { kind: Kind.Chunk, id: 4, bytes: new Uint8Array([1, 2]) });
  assert.deepEqual(decodeFrame(one(encodeEnd(5, false, 'boom'))), { kind: Kind.End, id: 5, ok: false, message: 'boom' });
  assert.deepEqual(decodeFrame(one(encodeCredit(6, 65_536))), { kind: Kind.Credit, id: 6, bytes: 65_536 });
  assert.deepEqual(decodeFrame(one(encodeCancel(8))), { kind: Kind.Cancel, id: 8 });
});

test('a body-sized request body follows its frame as a message of its own, handed out whole only when that message is its own memory', () => {
  // Under BODY_SIZED: one message, the body in the frame.
  const small = encodeRequestMessages(request);
  assert.deepEqual(small, [encodeRequest(request)]);
  const pieces = [new Uint8Array(20_000).fill(1), new Uint8Array(0), new Uint8Array(BODY_SIZED - 20_000).fill(2)];
  const [head, body, ...rest] = encodeRequestMessages({ ...request, body: pieces });
  assert.equal(rest.length, 0);
  assert.deepEqual(body, [pieces[0], pieces[2]], 'the pieces as they are, not joined');
  assert.deepEqual(decodeFrame(one(head!)), { kind: Kind.Request, ...request, body: null, follows: true });
  // As the decoder hands it out: in memory of its own (moved into the isolate as it is) …
  const own = Buffer.allocUnsafeSlow(BODY_SIZED);
  one(body!).copy(own);
  const whole = decodeBody(own);
  assert.equal(whole.buffer, own.buffer);
  assert.ok(isFrameCopy(whole));
  // … or a view of a larger buffer (lent, pooled, a joined read): copied, never its buffer handed on.
  const larger = Buffer.concat([one(body!), Buffer.from('the next message')]).subarray(0, BODY_SIZED);
  const copied = decodeBody(larger);
  assert.notEqual(copied.buffer, larger.buffer);
  assert.equal(copied.buffer.byteLength, BODY_SIZED);
  assert.ok(isFrameCopy(copied));
  assert.deepEqual(copied, new Uint8Array(Buffer.concat(pieces)));
  // A response's body never follows its frame.
  const response = one(encodeResponse({ id: 1, status: 200, statusText: '', headers: [], body: null, streamed: false }));
  response[response.length - 1] = 3;
  assert.throws(() => decodeFrame(response), /does not follow/);
});

test('a body is a view only of a frame with memory of its own, else a copy (a shared buffer holds other messages)', () => {
  const shared = one(encodeRequest(request)); // small: from Buffer's shared pool
  assert.notEqual(shared.buffer.byteLength, shared.byteLength);
  const copied = (decodeFrame(shared) as { body: Uint8Array }).body;
  assert.equal(copied.buffer.byteLength, copied.byteLength);
  const own = Buffer.allocUnsafeSlow(shared.length);
  shared.copy(own);
  const view = (decodeFrame(own) as { body: Uint8Array }).body;
  assert.equal(view.buffer, own.buffer);
  assert.deepEqual(view, request.body);
});

test('a string too long for its length field is refused when encoding, not truncated', () => {
  assert.throws(() => encodeRequest({ ...request, method: 'X'.repeat(256) }), RangeError);
  assert.throws(() => encodeResponse({ id: 1, status: 200, statusText: 'x'.repeat(70_000), headers: [], body: null, streamed: false }), RangeError);
});

test('truncations, trailing bytes, unknown kinds and a streamed request body are FastFrameErrors', () => {
  const frame = one(encodeRequest(request));
  for (let n = 0; n < frame.length; n++) assert.throws(() => decodeFrame(frame.subarray(0, n)), FastFrameError, `cut at ${n}`);
  assert.throws(() => decodeFrame(Buffer.concat([frame, Buffer.from([0])])), FastFrameError);
  assert.throws(() => decodeFrame(Buffer.from([99, 0, 0, 0, 1])), FastFrameError);
  const streamed = one(encodeRequest({ ...request, body: null }));
  streamed[streamed.length - 1] = 2; // body kind: streamed
  assert.throws(() => decodeFrame(streamed), /cannot stream/);
  assert.throws(() => decodeFrame(Buffer.from([Kind.End, 0, 0, 0, 1, 2, 0, 0])), /ok must be 0 or 1/);
});

test(`fuzz: random and mutated frames decode or fail with a FastFrameError, never otherwise (seed ${SEED})`, () => {
  const rng = new Rng(SEED);
  const valid = [
    encodeRequest(request),
    encodeRequest({ ...request, body: null, cf: undefined }),
    encodeResponse({ id: 1, status: 200, statusText: '', headers: request.headers, body: new Uint8Array(300), streamed: false }),
    encodeEnd(1, true),
    encodeCredit(1, 10),
  ].map(one);
  let decoded = 0;
  for (let i = 0; i < ROUNDS; i++) {
    let frame: Buffer;
    if (rng.chance(0.2)) frame = rng.bytes(rng.int(64));
    else {
      frame = Buffer.from(valid[rng.int(valid.length)]!);
      for (let m = 1 + rng.int(4); m > 0 && frame.length; m--) {
        const at = rng.int(frame.length);
        const how = rng.int(3);
        if (how === 0) frame[at] = rng.int(256);
        else if (how === 1) frame = frame.subarray(0, at);
        else frame = Buffer.concat([frame.subarray(0, at), rng.bytes(1 + rng.int(8)), frame.subarray(at)]);
      }
    }
    try {
      const f = decodeFrame(frame);
      decoded++;
      assert.ok(f.kind >= Kind.Request && f.kind <= Kind.Cancel);
    } catch (e) {
      if (!(e instanceof FastFrameError)) assert.fail(`seed ${SEED}, round ${i}: ${(e as Error).stack}\nframe: ${frame.toString('hex')}`);
    }
  }
  assert.ok(decoded > 0, 'some mutations still decode (the fuzzer reaches past the first checks)');
});
