/**
 * The hand-written acceptors tried before zod on the request path (lib/rpc/validate.ts withAcceptor):
 * each held to its schema over valid inputs and their mutations. An acceptor that takes what zod
 * refuses, or gives back other than zod would, fails here; so does one that no longer takes the plain
 * inputs it exists for (those would be left to zod, and the request path slower again).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { z } from 'zod';
import { MAX_BODY, MAX_HEADER_BYTES, MAX_HEADER_NAME, MAX_HEADERS, MAX_METHOD, MAX_URL, WireRequest, WireResponseHead } from '../schemas/http.ts';
import { WorkerTarget } from '../schemas/worker.ts';
import { Head as IsolateHead } from '../services/sandbox/runtime/read-response.ts';
import { check, safeCheck } from '../lib/rpc/validate.ts';

/** Values of every kind, at and past each bound the schemas draw. */
const POOL: unknown[] = [
  undefined,
  null,
  true,
  0,
  -1,
  1.5,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  100,
  101,
  199,
  200,
  204,
  599,
  600,
  1n,
  '',
  'GET',
  'get',
  'G'.repeat(MAX_METHOD),
  'G'.repeat(MAX_METHOD + 1),
  'http://a/',
  'https://a/b?c',
  'HTTP://a/',
  'ftp://a/',
  `http://a/${'p'.repeat(MAX_URL - 9)}`,
  `http://a/${'p'.repeat(MAX_URL - 8)}`,
  'OK',
  'Caf\u00e9',
  '\u20ac',
  'a\r\nx-injected: 1',
  'a\u0001',
  'x'.repeat(256),
  'x'.repeat(257),
  'a'.repeat(64),
  'A'.repeat(64),
  'a'.repeat(63),
  'b'.repeat(43),
  'b'.repeat(42),
  `${'b'.repeat(42)}+`,
  'default/hello',
  'w'.repeat(130),
  'w'.repeat(131),
  'HTTP/1.1',
  'x'.repeat(16),
  'x'.repeat(17),
  'x'.repeat(128),
  'x'.repeat(129),
  'x'.repeat(1024),
  'x'.repeat(1025),
  [],
  {},
  Object.create(null),
  new Uint8Array(0),
  new Uint8Array(3),
  Buffer.from('abc'),
  new ArrayBuffer(1),
  new DataView(new ArrayBuffer(1)),
  { byteLength: 1 },
  new Date(0),
  () => 1,
  [['content-type', 'text/plain']],
  [['a']],
  [['a', 'b', 'c']],
  [['a b', 'c']],
  [['', 'c']],
  [['a', '\u0001']],
  [['a', '\u00e9\t']],
  [['a', '\u20ac']],
  [[1, 'b']],
  [['a', 2]],
  [{ 0: 'a', 1: 'b', length: 2 }],
  [['n'.repeat(MAX_HEADER_NAME), 'v']],
  [['n'.repeat(MAX_HEADER_NAME + 1), 'v']],
  [['a', 'v'.repeat(MAX_HEADER_BYTES)]],
  [['a', 'v'.repeat(MAX_HEADER_BYTES + 1)]],
  Array.from({ length: MAX_HEADERS }, (_, i) => [`h${i}`, 'x']),
  Array.from({ length: MAX_HEADERS + 1 }, (_, i) => [`h${i}`, 'x']),
  { httpProtocol: 'HTTP/1.1' },
  { httpProtocol: 'HTTP/2', colo: 'lhr', tlsVersion: 'TLSv1.3', tlsCipher: 'AEAD', clientAcceptEncoding: 'gzip, br' },
  { httpProtocol: 'HTTP/1.1', other: 'x' },
  { colo: 'lhr' },
  { httpProtocol: 1 },
  { httpProtocol: 'x'.repeat(17) },
  { httpProtocol: 'HTTP/1.1', tlsCipher: 'x'.repeat(129) },
  { httpProtocol: 'HTTP/1.1', colo: undefined },
  { handle: 'ROOM', sid: 'a' },
  7,
];

class Tagged {
  constructor(fields: Record<string, unknown>) {
    Object.assign(this, fields);
  }
}

/** `base` and its variants: each key set to each pooled value, removed, and the whole in other shapes. */
function* variants(base: Record<string, unknown>): Generator<unknown> {
  yield base;
  for (const key of Object.keys(base)) {
    for (const value of POOL) yield { ...base, [key]: value };
    const { [key]: _gone, ...rest } = base;
    yield rest;
  }
  yield { ...base, extra: 'x' };
  yield { ...base, webSocket: 1 };
  yield { ...base, webSocket: undefined };
  yield { ...base, cf: undefined };
  yield Object.assign(Object.create(null), base);
  yield new Tagged(base);
  yield [base];
  yield Object.defineProperty({ ...base }, Object.keys(base)[0]!, { get: () => base[Object.keys(base)[0]!], enumerable: true });
  for (const value of POOL) yield value;
}

/** Every variant of `bases` through safeCheck, against zod alone; what the acceptor took (zod not asked) is counted. */
function holdToSchema(schema: z.ZodType, bases: Record<string, unknown>[]): { taken: number; total: number } {
  const zodParse = schema.safeParse.bind(schema);
  let asked = 0;
  const spied = schema as { safeParse: typeof schema.safeParse };
  spied.safeParse = ((value: unknown) => {
    asked++;
    return zodParse(value);
  }) as typeof schema.safeParse;
  let taken = 0;
  let total = 0;
  try {
    for (const base of bases) {
      const before = asked;
      assert.equal(safeCheck(schema, base).success, true);
      assert.equal(asked, before, `a plain valid input went to zod: ${JSON.stringify(base).slice(0, 200)}`);
      for (const value of variants(base)) {
        total++;
        const before = asked;
        const fast = safeCheck(schema, value);
        if (asked > before) continue; // zod decided
        taken++;
        const slow = zodParse(value);
        const shown = () => JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))?.slice(0, 300);
        assert.equal(slow.success, true, `the acceptor took what zod refuses: ${shown()} (${slow.error?.issues[0]?.message})`);
        assert.deepStrictEqual(fast.data, slow.data, `the acceptor gave back other than zod: ${shown()}`);
      }
    }
  } finally {
    delete (spied as { safeParse?: unknown }).safeParse;
    spied.safeParse = zodParse;
  }
  return { taken, total };
}

const request = { method: 'GET', url: 'http://127.0.0.1:8080/hello', headers: [['host', '127.0.0.1:8080']], body: null };

test("a request's metadata: the acceptor takes only what zod takes, and gives back what zod does", () => {
  const { taken, total } = holdToSchema(WireRequest, [
    request,
    { ...request, method: 'POST', body: new Uint8Array(5), cf: { httpProtocol: 'HTTP/1.1', clientAcceptEncoding: 'gzip' } },
    { ...request, cf: { httpProtocol: 'HTTP/2', colo: 'lhr', tlsVersion: 'TLSv1.3', tlsCipher: 'TLS_AES_128_GCM_SHA256' } },
  ]);
  assert.ok(taken > 50 && taken < total, `${taken} of ${total} taken`);
});

test("a request's target: the acceptor takes only what zod takes, and gives back what zod does", () => {
  const { taken, total } = holdToSchema(WorkerTarget, [{ workerId: 'default/hello', version: 'ab'.repeat(32), codeKey: 'k'.repeat(43) }]);
  assert.ok(taken > 10 && taken < total, `${taken} of ${total} taken`);
});

test("a response's head, as ingress checks a sandbox's answer and the sandbox an isolate's: the same", () => {
  const head = { status: 200, statusText: 'OK', headers: [['content-type', 'text/plain; charset=utf-8']] };
  for (const schema of [WireResponseHead, IsolateHead]) {
    const { taken, total } = holdToSchema(schema, [head, { status: 404, statusText: '', headers: [] }, { ...head, body: new Uint8Array(1) }]);
    assert.ok(taken > 30 && taken < total, `${taken} of ${total} taken`);
  }
  // An isolate's 101 names its WebSocket: zod's to check, both ways.
  assert.equal(safeCheck(IsolateHead, { status: 101, statusText: '', headers: [] }).success, false);
  assert.equal(safeCheck(IsolateHead, { status: 101, statusText: '', headers: [], webSocket: 3 }).success, true);
  assert.equal(safeCheck(IsolateHead, { status: 200, statusText: '', headers: [], webSocket: 3 }).success, false);
});

test("what the acceptors leave still gets zod's error, naming the field", () => {
  assert.throws(() => check(WireRequest, { ...request, method: 'get' }, 'request'), /invalid request at method: method must be upper-case letters/);
  assert.throws(() => check(WireRequest, { ...request, body: new Uint8Array(MAX_BODY + 1) }, 'request'), /invalid request at body/);
  assert.throws(() => check(WorkerTarget, { workerId: 'w', version: 'a'.repeat(64), codeKey: 'short' }, 'worker target'), /at codeKey: malformed code key/);
});
