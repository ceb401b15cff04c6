/**
 * console prints what workerd prints (Node's util.format; the host formats what the isolate describes):
 * a table of values — objects, arrays, Map/Set, class instances, accessors, holes, cycles, errors with
 * stacks and causes, functions and classes, boxed primitives, typed arrays, dates, long strings, strings
 * at top level unquoted, and the %s/%d/%i/%f/%j/%o/%O/%c formats — run on our runtime and on the real
 * workerd, line for line. Getters are never called; a value that throws as it is looked at costs one line.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import { GET, worker } from './testing/fixtures.ts';
import { startWorkerd, workerdMissing } from '../../../test/helpers/workerd.ts';
import { waitFor } from '../../../test/helpers/mesh.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

async function ourLines(code: string): Promise<string[]> {
  const lines: string[] = [];
  await rt.handle(worker(code), GET, { log: (e) => lines.push(...e.map((x) => x.message)) });
  await waitFor('the log lines', () => lines.length > 0 || undefined, 5000, 10);
  return lines;
}

const TABLE = `
class Point { constructor() { this.x = 1; this.y = 2 } }
class MyErr extends Error { constructor(m) { super(m); this.name = 'MyErr'; this.code = 'E_MINE' } }
class Tagged { get [Symbol.toStringTag]() { return 'Tg' } }
class Arr extends Array {}
export default { async fetch() {
  const cyc = { a: 1 }; cyc.self = cyc;
  const L = (...a) => console.log(...a);
  L('top string', 'two', 'a%sb');
  L({ a: 1, b: 'x', c: [1, 2, { d: null }], e: undefined });
  L([1, 'two', [3, [4, [5, [6]]]]], [[[[]]]], { a: { b: { c: {} } } });
  L(new Map([['k', 1], [{ o: 1 }, [1]]]), new Set([1, 'a']), new WeakMap());
  L(new Point(), [new Point()], { p: { q: { r: new Point() } } });
  L(cyc, [cyc, cyc]);
  L('%s is %d years and %o', 'Bob', 42.5, { x: [1] });
  L('%s|%s|%s|%i|%f|%j|%j|%%|%c.', new Point(), { toString() { return 'T' } }, [1, [2, [3]]], '42.5x', '1.5', { a: 1, toJSON() { return 'J' } }, cyc, 'css');
  L('%d %d %d %s %s', 1n, -0, { valueOf() { return 4 } }, -0, Symbol('q'));
  L('%O and %o', { a: { b: { c: { d: {} } } } }, function f(a, b) {});
  L(new TypeError('bad type'), new MyErr('mine'), new Error('with cause', { cause: { code: 42 } }));
  L(null, undefined, 1n, -0, NaN, Symbol('s'), Symbol(), () => 1, function named() {}, class K extends Point {}, async () => {}, function* g() {});
  L(new Uint8Array([1, 2, 3]), new Float64Array(2), new Date(0), new Date(NaN), /re/g);
  L({ get g() { return 1 }, set s(v) {}, get gs() { return 1 }, set gs(v) {} });
  L(Object.assign(Object.create(null), { z: 1 }), new Tagged(), { [Symbol('k')]: 1 });
  const holes = [1, , 3]; holes.extra = 'x'; L(holes, Arr.from([1, 2]));
  L(new Number(3), new String('ab'), new Boolean(false), Object(1n));
  L(new Array(150).fill(7), new Uint8Array(300));
  L({ long: 'ab'.repeat(6000) });
  L([1, 2, 3].map((x) => ({ id: x, name: 'item' + x, tags: ['a', 'b'] })));
  L({ fn: function () {}, arrow: () => {}, date: new Date(86400000), re: /x/i, n: null, big: 10n, sym: Symbol.iterator });
  L({ 'key with space': 1, valid_id: 2, 3: 'three', "quote's": 4 });
  return new Response('ok') } };`;

test("console lines are workerd's, value for value", { skip: workerdMissing() }, async () => {
  // The one difference is the module's name in stack frames (ours: worker:///worker.js), not console's.
  const ours = (await ourLines(TABLE)).join('\n').replaceAll('worker:///worker.js', 'w.js');
  const workerd = await startWorkerd({
    files: { 'w.js': TABLE },
    stdout: true,
    config: (ports) =>
      `const config :Workerd.Config = ( services = [ (name = "main", worker = (modules = [(name = "w.js", esModule = embed "w.js")], compatibilityDate = "2025-06-01")) ], sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );`,
  });
  try {
    let out = '';
    workerd.process.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor('workerd', async () => (await fetch(workerd.url()).catch(() => undefined))?.status === 200 || undefined);
    await waitFor("workerd's last line", () => out.includes("quote's") || undefined, 5000, 20);
    assert.equal(ours, out.trimEnd());
  } finally {
    workerd.stop();
  }
});

test('getters are never called, a throwing proxy costs one line, and plain strings are joined as they are', async () => {
  const lines = await ourLines(`export default { fetch() {
    globalThis.calls = 0;
    console.log({ get g() { calls++; return 1 } });
    console.log(new Proxy({}, { ownKeys() { throw new Error('no keys') } }));
    console.log('%s', { toString() { throw new Error('no string') } });
    console.log('a', 'b%', 'c');
    console.log('calls', calls);
    return new Response('ok') } }`);
  assert.equal(lines.length, 5);
  assert.equal(lines[0], '{ g: [Getter] }');
  assert.deepEqual(lines.slice(3), ['a b% c', 'calls 0']);
  assert.match(lines[1]!, /^\[a console line that could not be printed: Error: no keys/);
  assert.match(lines[2]!, /^\[a console line that could not be printed: Error: no string/);
});
