/** The `v8` content type's encoding alone: what structured clone keeps comes back, tags cannot be forged, what cannot be cloned is refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeValue, encodeValue } from './tagged-values.ts';

test('queue codec: dates, maps, sets, bytes, typed arrays, bigints, special numbers, errors, shared parts and cycles round-trip', () => {
  const shared = { n: 1 };
  const value: Record<string, unknown> = {
    when: new Date(1_700_000_000_123),
    tags: new Map<unknown, unknown>([
      ['a', 1],
      [2, new Set(['x', undefined])],
    ]),
    bytes: new Uint8Array([0, 1, 255]).buffer,
    floats: new Float64Array([1.5, -0]),
    big: 12345678901234567890n,
    special: [Number.NaN, Number.POSITIVE_INFINITY, -0, undefined, null],
    re: /a+b/gi,
    err: Object.assign(new TypeError('bad'), { extra: 1 }),
    left: shared,
    right: shared,
    $t: 'Date',
  };
  value.self = value;
  const out = decodeValue(encodeValue(value)) as Record<string, any>;
  assert.ok(out.when instanceof Date);
  assert.equal(out.when.getTime(), 1_700_000_000_123);
  assert.ok(out.tags instanceof Map);
  assert.equal(out.tags.get('a'), 1);
  assert.deepEqual([...out.tags.get(2)], ['x', undefined]);
  assert.deepEqual([...new Uint8Array(out.bytes)], [0, 1, 255]);
  assert.ok(out.floats instanceof Float64Array);
  assert.ok(Object.is(out.floats[1], -0));
  assert.equal(out.big, 12345678901234567890n);
  assert.ok(Number.isNaN(out.special[0]));
  assert.equal(out.special[1], Number.POSITIVE_INFINITY);
  assert.ok(Object.is(out.special[2], -0));
  assert.equal(out.special.length, 5);
  assert.equal(out.special[3], undefined);
  assert.ok(out.re instanceof RegExp && out.re.flags === 'gi' && out.re.source === 'a+b');
  assert.ok(out.err instanceof Error);
  assert.equal(out.err.name, 'TypeError');
  assert.equal(out.err.message, 'bad');
  assert.equal(out.left, out.right, 'a shared object stays shared');
  assert.equal(out.self, out, 'a cycle stays a cycle');
  assert.equal(out.$t, 'Date', "the sender's own $t key is data, not a tag");
});

test('queue codec: functions and symbols are refused as structured clone refuses them; a forged tag is refused on decode', () => {
  assert.throws(() => encodeValue({ f() {} }), /could not be cloned/);
  assert.throws(() => encodeValue([Symbol('s')]), /could not be cloned/);
  assert.throws(() => decodeValue('{"$t":"Process","v":1}'), /unknown tag/);
  assert.equal(decodeValue(encodeValue('text')), 'text');
  const proto = decodeValue(encodeValue(JSON.parse('{"__proto__": {"polluted": true}}'))) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, 'a __proto__ key is a key');
  assert.deepEqual(Object.getOwnPropertyDescriptor(proto, '__proto__')?.value, { polluted: true });
  assert.equal(decodeValue(encodeValue(undefined)), undefined);
});

test('tagged values: Error subclasses come back as themselves; nesting is bounded; class instances refused where RPC refuses them', () => {
  const e = decodeValue(encodeValue(new RangeError('far'))) as Error;
  assert.ok(e instanceof RangeError && e.message === 'far');
  const custom = decodeValue(encodeValue(Object.assign(new Error('x'), { name: 'AppError' }))) as Error;
  assert.equal(custom.name, 'AppError');
  let deep: unknown[] = [];
  const root = deep;
  for (let i = 0; i < 300; i++) deep = deep[0] = [] as unknown[];
  assert.throws(() => encodeValue(root), /nested this deep/);
  class Point {
    x = 1;
  }
  assert.deepEqual(decodeValue(encodeValue(new Point())), { x: 1 }, "V8's serializer keeps an instance's own properties");
  assert.throws(() => encodeValue(new Point(), { instances: 'refuse' }), /Could not serialize object of type "Point"/);
  assert.deepEqual(decodeValue(encodeValue({ p: Object.create(null) }, { instances: 'refuse' })), { p: {} });
});

test('tagged values: boxed primitives round-trip; holes carry what the caller carries by other means, and a forged hole or long BigInt is refused', () => {
  const [b, n, str] = decodeValue(encodeValue([new Boolean(false), new Number(-0), new String('s')])) as [object, object, object];
  assert.ok(b instanceof Boolean && b.valueOf() === false);
  assert.ok(n instanceof Number && Object.is(n.valueOf(), -0));
  assert.ok(str instanceof String && str.valueOf() === 's');
  const fn = () => 1;
  const holes: unknown[] = [];
  const text = encodeValue(new Map([['f', fn]]), { holes, byReference: (v) => typeof v === 'function' });
  assert.deepEqual(holes, [fn]);
  assert.equal((decodeValue(text, { holes: ['stand-in'] }) as Map<string, unknown>).get('f'), 'stand-in');
  assert.throws(() => decodeValue(text), /reference it was not sent/);
  assert.throws(() => decodeValue('{"$t":"Hole","v":1}', { holes: ['only one'] }), /reference it was not sent/);
  assert.throws(() => decodeValue(encodeValue(10n ** 100n), { maxBigIntDigits: 50 }), /BigInt too long/);
  assert.throws(() => decodeValue('{"$t":"Boxed","v":{"$t":"Array","v":[]}}'), /boxed primitive/);
  assert.throws(() => decodeValue('{"$t":"Array","v":['.repeat(300) + ']}'.repeat(300)), /nested too deep/);
});
