/**
 * sole-bytes.ts: written sole bytes are freed (detached) or go back to the stream that made them, within
 * each stream's count and the process's byte budget, and never to another stream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeSole, SPARE_BYTES, soleBytes, spareBytesHeld, StreamSpares } from './sole-bytes.ts';

const KiB = 1024;

test('written sole bytes are freed at once when no stream takes them back; other bytes are left alone', () => {
  const bytes = soleBytes(new ArrayBuffer(64 * KiB));
  freeSole(bytes);
  assert.equal(bytes.buffer.byteLength, 0, 'freed: detached');
  const other = new Uint8Array(64 * KiB);
  freeSole(other);
  assert.equal(other.buffer.byteLength, 64 * KiB, 'not sole bytes: untouched');
});

test("a stream's written buffers come back to it, at most `max`, whole, and to no other stream", () => {
  const mine = new StreamSpares(2);
  const theirs = new StreamSpares(2);
  const written = [0, 1, 2].map(() => soleBytes(new ArrayBuffer(256 * KiB).slice(0), 256 * KiB, mine.reuse));
  for (const b of written) freeSole(b);
  assert.deepEqual(
    written.map((b) => b.buffer.byteLength),
    [256 * KiB, 256 * KiB, 0],
    'the first two kept whole, the third (over max) freed',
  );
  assert.equal(theirs.take(), undefined, "another stream gets none of this stream's buffers");
  assert.equal(mine.take(), written[1]!.buffer);
  assert.equal(mine.take(), written[0]!.buffer);
  assert.equal(mine.take(), undefined);
  assert.equal(spareBytesHeld(), 0);
});

test('all streams together keep at most SPARE_BYTES; a closed stream frees what it kept and keeps nothing more', () => {
  const per = 256 * KiB;
  const streams = Array.from({ length: SPARE_BYTES / per / 4 + 2 }, () => new StreamSpares(4));
  let kept = 0;
  for (const s of streams)
    for (let i = 0; i < 4; i++) {
      const b = soleBytes(new ArrayBuffer(per), per, s.reuse);
      freeSole(b);
      if (b.buffer.byteLength === per) kept++;
    }
  assert.equal(spareBytesHeld(), SPARE_BYTES, 'up to the budget, and no further');
  assert.equal(kept * per, SPARE_BYTES, 'those over the budget were freed');
  const held = streams[0]!.take()!;
  assert.equal(spareBytesHeld(), SPARE_BYTES - per, 'a buffer taken for a pull leaves the budget');
  for (const s of streams) s.close();
  assert.equal(spareBytesHeld(), 0, 'closed streams hold nothing');
  const late = soleBytes(held, per, streams[0]!.reuse);
  freeSole(late);
  assert.equal(late.buffer.byteLength, 0, 'written after its stream ended: freed, not kept');
  assert.equal(spareBytesHeld(), 0);
});
