/**
 * The host's side of console lines: LogValues from the isolate, which may be compromised. A forged
 * description prints a line or says it cannot; it never reaches the host's own prototypes, runs nothing
 * it carries, and is bounded in nodes and bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLog } from './log-format.ts';
import type { LogNode } from './abi.ts';

const node = (k: string, c: string | null, extra: Partial<LogNode> = {}) => ({ k, c, p: [], ...extra }) as LogNode;

test('values print as util.inspect prints their originals', () => {
  const point = node('object', 'Point', {
    p: [
      ['x', 1, 0, false],
      ['g', undefined, 1, false],
    ],
  });
  assert.equal(formatLog(['%s!', 'hi', point]), 'hi! Point { x: 1, g: [Getter] }');
  const cyc = node('object', 'Object');
  cyc.p.push(['self', cyc, 0, false]);
  assert.equal(formatLog([cyc]), '<ref *1> { self: [Circular *1] }');
  assert.equal(formatLog([node('array', 'Array', { v: [1, node('hole', null)], more: 2 })]), '[ 1, <3 empty items> ]');
});

test("a forged description reaches none of the host's prototypes and runs nothing", () => {
  const before = [Error.prototype.name, TypeError.prototype.name, Object.prototype.toString, Array.prototype.map];
  const forged = [
    node('error', 'TypeError', { v: ['TypeError: x\n    at y', 'x', 'Pwned'] }),
    node('object', '__proto__', {
      p: [
        ['__proto__', node('object', 'Object', { p: [['polluted', 1, 0, false]] }), 0, false],
        ['constructor', 1, 0, false],
      ],
    }),
    node('function', 'Function', { v: ['f', 'class', 1, 'Object'], p: [['prototype', 1, 0, false]] }),
    node('json', null, { v: '{"__proto__":{"polluted":2}}' }),
    node('boxed', 'Number', { v: node('object', 'Object') }),
    node('regexp', 'RegExp', { v: ['(', 'zz'] }),
    node('date', 'Date', { v: 'not a number' }),
    node('nonsense' as never, 7 as never, { p: 'x' as never, v: 3 }),
  ];
  const line = formatLog(['%j', forged[3], ...forged]);
  assert.equal(typeof line, 'string');
  assert.deepEqual([Error.prototype.name, TypeError.prototype.name, Object.prototype.toString, Array.prototype.map], before);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  assert.match(
    line,
    /^\{"__proto__":\{"polluted":2\}\} TypeError: x\n {4}at y __proto__ \{ \['__proto__'\]: \{ polluted: 1 \}, constructor: 1 \} \[class f extends Object\]/,
  );
});

test('a forged description is bounded: too many nodes, too many bytes, too deep, not even an array', () => {
  const wide = node('array', 'Array', { v: Array.from({ length: 100 }, () => node('object', 'Object')) });
  const many = Array.from({ length: 60 }, () => wide);
  assert.equal(
    formatLog(many.map(() => node('array', 'Array', { v: Array.from({ length: 100 }, () => node('object', 'Object')) }))),
    '[a console line that could not be printed]',
  );
  assert.equal(
    formatLog([node('typed', 'Float64Array', { v: [], more: 2 ** 40 }), node('typed', 'Float64Array', { v: [], more: 2 ** 40 })]),
    '[a console line that could not be printed]',
  );
  assert.equal(formatLog([node('string', null, { v: 'x', more: 2 ** 40 })]), '[a console line that could not be printed]');
  let deep = node('object', 'Object');
  for (let i = 0; i < 100_000; i++) deep = node('object', 'Object', { p: [['d', deep, 0, false]] });
  assert.equal(formatLog([deep]), '[a console line that could not be printed]');
  assert.equal(formatLog('not a list'), '[a console line that could not be printed]');
  assert.ok(formatLog(['x'.repeat(200_000)]).length <= 64 * 1024);
  assert.match(formatLog([node('typed', 'Uint8Array', { v: [1], more: 5 })]), /^Uint8Array\(6\) \[ 1, 0, 0, 0, 0, 0 \]$/);
});
