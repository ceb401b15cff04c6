import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeWire, encodeWire, type Base64 } from './wire-codec.ts';

const b64: Base64 = { encode: (b) => Buffer.from(b).toString('base64'), decode: (t) => new Uint8Array(Buffer.from(t, 'base64')) };

test('bytes of every kind cross as bytes, including Node Buffers and views; other values as JSON', () => {
  const pooled = Buffer.from([1, 2, 3]); // a view into Node's pool, with its own toJSON
  const view = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
  const out = decodeWire(encodeWire({ ok: [pooled, view, new Uint8Array([0, 255]).buffer, 'text', 1, null, new Date(0)] }, b64), b64) as { ok: unknown[] };
  assert.deepEqual(
    out.ok.slice(0, 3).map((b) => [...(b as Uint8Array)]),
    [
      [1, 2, 3],
      [8, 7],
      [0, 255],
    ],
  );
  assert.deepEqual(out.ok.slice(3), ['text', 1, null, '1970-01-01T00:00:00.000Z']);
  assert.deepEqual(decodeWire('{"$b":"AQI=","x":1}', b64), { $b: 'AQI=', x: 1 }, 'only a lone $b key means bytes');
});

test("the isolate's base64 (bindings.ts) agrees with Node's for every length, every byte value and across its pieces", async () => {
  const { b64: isolate } = await import('./bindings.ts');
  const data = new Uint8Array(3 * 8192 * 2 + 7);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919 + (i >> 8)) & 255;
  for (const n of [0, 1, 2, 3, 4, 5, 255, 256, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1, data.length]) {
    const bytes = data.subarray(0, n);
    const text = isolate.encode(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64'), `encode ${n}`);
    assert.deepEqual(isolate.decode(text), new Uint8Array(bytes), `decode ${n}`);
  }
  assert.throws(() => isolate.decode('A*=='), /malformed base64/);
});
