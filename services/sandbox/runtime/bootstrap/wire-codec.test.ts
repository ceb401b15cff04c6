import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeWire, encodeWire, fromMessage, inText, toMessage } from './wire-codec.ts';

const b64 = inText({ encode: (b) => Buffer.from(b).toString('base64'), decode: (t) => new Uint8Array(Buffer.from(t, 'base64')) });

test('bytes of every kind cross as bytes in text, including Node Buffers and views; other values as JSON', () => {
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

test('a WireMessage carries bytes beside its text as ArrayBuffers of exactly their bytes, never as base64', () => {
  const pooled = Buffer.from([1, 2, 3]);
  const whole = new Uint8Array([5, 6]);
  const m = toMessage({ ok: [pooled, new Uint8Array([9, 8, 7, 6]).subarray(1, 3), whole, new DataView(new Uint8Array([4, 4, 4]).buffer, 1, 1), 'text'] });
  assert.equal(m.text, '{"ok":[{"$b":0},{"$b":1},{"$b":2},{"$b":3},"text"]}');
  assert.ok(m.bytes.every((b) => b instanceof ArrayBuffer));
  assert.deepEqual(
    m.bytes.map((b) => [...new Uint8Array(b)]),
    [[1, 2, 3], [8, 7], [5, 6], [4]],
  );
  assert.equal(m.bytes[2], whole.buffer, 'a view of a whole buffer sends that buffer (the crossing copies it)');
  const back = fromMessage(structuredClone(m)) as { ok: unknown[] };
  assert.deepEqual(
    back.ok.slice(0, 4).map((b) => [...(b as Uint8Array)]),
    [[1, 2, 3], [8, 7], [5, 6], [4]],
  );
});

test('forged or broken bytes are refused with a TypeError: detached, proxied, a subclass lying about its buffer, a bad index', () => {
  const detached = new ArrayBuffer(8);
  structuredClone(detached, { transfer: [detached] });
  assert.throws(() => toMessage([detached]), TypeError);
  assert.throws(() => toMessage([new Uint8Array(detached)]), TypeError);
  assert.deepEqual(toMessage([new Proxy(new Uint8Array(2), {})]), { text: '[{"0":0,"1":0}]', bytes: [] }, 'a proxy of a view is not a view: no bytes');
  assert.throws(() => toMessage([new Proxy(new ArrayBuffer(4), {})]), TypeError);
  class Liar extends Uint8Array {
    override get buffer(): ArrayBuffer {
      return new ArrayBuffer(1 << 20);
    }
    override get byteLength(): number {
      return 1 << 20;
    }
  }
  const liar = toMessage([new Liar([1, 2])]);
  assert.deepEqual(
    liar.bytes.map((b) => b.byteLength),
    [2],
    "a subclass's getters are not asked",
  );
  for (const bad of [
    { text: '[{"$b":1}]', bytes: [new ArrayBuffer(1)] },
    { text: '[{"$b":"AQI="}]', bytes: [] },
    { text: '[{"$b":0}]', bytes: [new Uint8Array(2)] },
    { text: '[]' },
    null,
    'x',
  ])
    assert.throws(() => fromMessage(bad), TypeError, JSON.stringify(bad));
});
