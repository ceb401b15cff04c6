import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BINARY, encodeFrame, FrameDecoder, FrameTooLargeError } from './frames.ts';

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
    out.push(...decoder.push(read, reused));
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

test('a header over the limit is refused as soon as its 4 bytes arrive', () => {
  const decoder = new FrameDecoder(1000);
  const header = Buffer.alloc(4);
  header.writeUInt32BE((BINARY | 1001) >>> 0, 0);
  assert.deepEqual(decoder.push(header.subarray(0, 3)), []);
  assert.throws(() => decoder.push(header.subarray(3)), FrameTooLargeError);
});
