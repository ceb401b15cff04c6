import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BINARY, BODY_SIZED, encodeFrame, FrameDecoder, FramePool, FrameTooLargeError } from './frames.ts';

function binaryFrame(bytes: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE((BINARY | bytes.length) >>> 0, 0);
  return Buffer.concat([header, bytes]);
}

/** A deterministic byte stream of frames: text and binary, empty, small, and over the in-place size. */
function frames(sizes: number[]): { wire: Buffer; expected: (string | Buffer)[] } {
  const expected: (string | Buffer)[] = [];
  const parts: Buffer[] = [];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  for (const size of sizes) {
    for (const binary of [false, true]) {
      if (binary) {
        const bytes = Buffer.alloc(size);
        for (let i = 0; i < size; i += 997) bytes[i] = next() & 0xff;
        expected.push(bytes);
        parts.push(binaryFrame(bytes));
      } else {
        const text = 'é'.repeat(size >> 1) + 'x'.repeat(size & 1);
        expected.push(text);
        parts.push(encodeFrame(text, 4 * 1024 * 1024));
      }
    }
  }
  return { wire: Buffer.concat(parts), expected };
}

const copyOf = (f: Buffer) => {
  const own = Buffer.allocUnsafeSlow(f.length);
  f.copy(own);
  return own;
};

/** Feeds `wire` in reads of the given sizes, as a socket would: each read a buffer of its own, or one buffer reused (overwritten after each push). */
function decode(wire: Buffer, sizes: number[], reused: boolean): (string | Buffer)[] {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  const out: (string | Buffer)[] = [];
  const shared = Buffer.alloc(Math.max(...sizes));
  let at = 0;
  for (let i = 0; at < wire.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, wire.length - at);
    let read: Buffer;
    if (reused) {
      wire.copy(shared, 0, at, at + n);
      read = shared.subarray(0, n);
    } else read = Buffer.from(wire.subarray(at, at + n));
    // A binary frame not wholly its own is lent (the decoder's assembly buffer): read during the push's turn, as a channel's handler does.
    for (const f of decoder.push(read, reused)) out.push(typeof f === 'string' || f.buffer.byteLength === f.length ? f : copyOf(f));
    if (reused) shared.fill(0xee); // what the next read would do to anything still pointing into it
    at += n;
  }
  return out;
}

test('frames split across reads of any size come out whole, and binary ones in memory of their own', () => {
  const small = frames([0, 1, 3, 4, 5, 100, 2, 70_000]);
  const large = frames([0, 65_536, 65_545, 300_000, 1_048_576, 1_500_000, 2]);
  const cases = [
    ...[[1], [3, 5], [4], [7, 65_536, 2]].map((sizes) => ({ ...small, sizes })),
    ...[[65_536], [262_144], [7, 65_536, 2], [large.wire.length]].map((sizes) => ({ ...large, sizes })),
  ];
  for (const reused of [false, true]) {
    for (const { wire, expected, sizes } of cases) {
      const out = decode(wire, sizes, reused);
      assert.equal(out.length, expected.length, `reads of ${sizes}, reused ${reused}`);
      out.forEach((f, i) => {
        assert.deepEqual(f, expected[i], `frame ${i}, reads of ${sizes}, reused ${reused}`);
        if (typeof f !== 'string') assert.equal(f.buffer.byteLength, f.length, `binary frame ${i} shares its memory`);
      });
    }
  }
});

test('a binary frame under BODY_SIZED assembled from reads is lent: never the whole of its buffer, and reused by the next frame after the push', () => {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  const lent = (fill: number) => {
    const wire = binaryFrame(Buffer.alloc(20_000, fill));
    const [first] = [decoder.push(wire.subarray(0, 1000)), decoder.push(wire.subarray(1000))][1] as Buffer[];
    return first!;
  };
  const a = lent(0xaa);
  assert.notEqual(a.buffer.byteLength, a.length); // so fast-frames' Reader copies what it keeps of it
  assert.equal(a[0], 0xaa);
  const b = lent(0xbb);
  assert.equal(b.buffer, a.buffer); // one assembly buffer, no allocation per frame …
  assert.equal(a[0], 0xbb); // … so the first frame's bytes are gone: a handler copies what it keeps
  // A push that finishes a lent frame and begins another: the second is not assembled over the first,
  // which its handler reads after the push.
  const two = Buffer.concat([binaryFrame(Buffer.alloc(20_000, 1)), binaryFrame(Buffer.alloc(20_000, 2))]);
  assert.deepEqual(decoder.push(two.subarray(0, 1000)), []);
  const [first] = decoder.push(two.subarray(1000, 22_000)) as Buffer[];
  assert.deepEqual([first!.length, first!.indexOf(2)], [20_000, -1]);
  const [second] = decoder.push(two.subarray(22_000)) as Buffer[];
  assert.deepEqual([second!.length, second!.indexOf(1)], [20_000, -1]);
  // A body-sized frame is never lent: assembled from its reads in memory of exactly its own bytes (a
  // request body the sandbox moves into an isolate as it is).
  const body = binaryFrame(Buffer.alloc(BODY_SIZED, 3));
  assert.deepEqual(decoder.push(body.subarray(0, 1000)), []);
  const [own] = decoder.push(body.subarray(1000)) as Buffer[];
  assert.deepEqual([own!.byteOffset, own!.buffer.byteLength, own!.length, own!.indexOf(0)], [0, BODY_SIZED, BODY_SIZED, -1]);
});

test('with a pool, a body-sized binary frame is read into a pooled buffer, reused only once its one lent view is given back', () => {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  decoder.pool = new FramePool();
  const bodies = [40_000, 40_000, 60_000, 1000, 300_000].map((n, i) => Buffer.alloc(n, i + 1));
  const wire = Buffer.concat(bodies.map(binaryFrame));
  // In reads of one reused buffer, frames whole in a read and frames spanning reads alike.
  const shared = Buffer.alloc(50_000);
  const out: Buffer[] = [];
  for (let at = 0; at < wire.length; at += shared.length) {
    const n = wire.copy(shared, 0, at, at + shared.length);
    out.push(...(decoder.push(shared.subarray(0, n), true) as Buffer[]));
    shared.fill(0xee);
  }
  const [a, b, c, small, large] = out as [Buffer, Buffer, Buffer, Buffer, Buffer];
  out.forEach((f, i) => assert.deepEqual(f, bodies[i], `frame ${i} intact while held`));
  for (const f of [a, b, c]) assert.ok(decoder.pool.holds(f), 'body-sized: pooled');
  for (const f of [small, large]) assert.ok(!decoder.pool.holds(f), 'under or over the size classes: a buffer of its own');
  assert.equal(new Set([a.buffer, b.buffer, c.buffer]).size, 3, 'frames held at once never share a buffer');

  // What a reader keeps of a frame is one view, lent; giving it back (once) frees the buffer for the next frame of its size class.
  const view = new Uint8Array(a.buffer, a.byteOffset, a.length);
  decoder.pool.lend(view);
  FramePool.giveBack(view);
  FramePool.giveBack(view); // a second give-back of the same view is nothing
  FramePool.giveBack(new Uint8Array(b.buffer, b.byteOffset, b.length)); // nor is a view never lent
  const again = decoder.push(binaryFrame(Buffer.alloc(40_000, 9)), true) as Buffer[];
  const twice = decoder.push(binaryFrame(Buffer.alloc(40_000, 10)), true) as Buffer[];
  assert.equal(again[0]!.buffer, a.buffer, 'the given-back buffer carries the next frame');
  assert.notEqual(twice[0]!.buffer, a.buffer, 'given back twice, it is still lent out only once');
  assert.notEqual(twice[0]!.buffer, b.buffer, 'a buffer whose frame was never given back is not reused');
  assert.deepEqual(b, bodies[1]);
});

test('a header over the limit is refused as soon as its 4 bytes arrive', () => {
  const decoder = new FrameDecoder(1000);
  const header = Buffer.alloc(4);
  header.writeUInt32BE((BINARY | 1001) >>> 0, 0);
  assert.deepEqual(decoder.push(header.subarray(0, 3)), []);
  assert.throws(() => decoder.push(header.subarray(3)), FrameTooLargeError);
});
