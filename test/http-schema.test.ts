/**
 * schemas/http.ts's header lists, checked at every hop (a sandbox's request, an isolate's answer,
 * ingress's check of a sandbox's answer, egress): each rule at its bound, and the first problem named.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Headers, MAX_HEADER_BYTES, MAX_HEADERS, WireRequest } from '../schemas/http.ts';

const problem = (headers: unknown) => {
  const r = Headers.safeParse(headers);
  return r.success ? undefined : r.error.issues[0]!.message;
};

test('a header list within every bound passes as it is', () => {
  const list: [string, string][] = [
    ['content-type', 'text/plain; charset=utf-8'],
    ["!#$%&'*+.^_`|~0aZ-", ''],
    ['x'.repeat(256), `\t visible ~ and obs-text \xa0\xff`],
    ['long', 'v'.repeat(MAX_HEADER_BYTES)],
  ];
  const r = Headers.safeParse(list);
  assert.ok(r.success);
  assert.deepEqual(r.data, list);
  assert.equal(problem(Array.from({ length: MAX_HEADERS }, (_, i) => [`h${i}`, 'x'])), undefined);
  assert.equal(problem([]), undefined);
});

test('each rule refuses just past its bound, naming the header', () => {
  assert.equal(problem(Array.from({ length: MAX_HEADERS + 1 }, (_, i) => [`h${i}`, 'x'])), `at most ${MAX_HEADERS} headers`);
  assert.equal(
    problem([
      ['ok', 'x'],
      ['', 'x'],
    ]),
    'header 1: not a valid header name',
  );
  assert.equal(problem([['x'.repeat(257), 'x']]), 'header 0: not a valid header name');
  for (const name of ['a b', 'a:b', 'a\n', 'é', '(x)', 'a"b'] as const) assert.equal(problem([[name, 'x']]), 'header 0: not a valid header name', name);
  assert.equal(problem([['a', 'v'.repeat(MAX_HEADER_BYTES + 1)]]), `header 0: a header value is at most ${MAX_HEADER_BYTES} characters`);
  for (const value of ['a\rb', 'a\nb', '\0', '\x7f', '\u0100', '😀'])
    assert.equal(problem([['a', value]]), 'header 0: header value holds a control character or a character outside Latin-1', JSON.stringify(value));
});

test('anything but a list of [string, string] pairs is refused', () => {
  for (const bad of [undefined, null, 'a: b', { a: 'b' }, 7]) assert.equal(problem(bad), 'expected a list of [name, value] pairs');
  for (const bad of [[['a']], [['a', 'b', 'c']], ['ab'], [null], [{ 0: 'a', 1: 'b', length: 2 }]])
    assert.equal(problem(bad), 'header 0: expected a [name, value] pair');
  assert.equal(problem([[1, 'b']]), 'header 0: not a valid header name');
  assert.equal(problem([['a', 1]]), 'header 0: the value must be a string');
  assert.equal(problem([['a', null]]), 'header 0: the value must be a string');
});

test('a request names where its headers went wrong', () => {
  const r = WireRequest.safeParse({
    method: 'GET',
    url: 'http://example.test/',
    headers: [
      ['host', 'example.test'],
      ['bad name', 'x'],
    ],
    body: null,
  });
  assert.ok(!r.success);
  assert.deepEqual(
    r.error.issues.map((i) => [i.path.join('.'), i.message]),
    [['headers', 'header 1: not a valid header name']],
  );
});
