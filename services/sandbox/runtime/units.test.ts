/**
 * The lazy units (bootstrap/units.ts): libraries left out of the start-up snapshot and compiled by an
 * isolate on first use. The snapshot must not carry them again, each must load in a locked-down isolate
 * after tenant code has run, and once per isolate.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { WorkerRuntime } from './index.ts';
import { bootstrap } from './bootstrap-bundle.ts';
import { LAZY_UNITS, LIBS_GLOBAL } from './abi.ts';
import { GET, text, worker } from './testing/fixtures.ts';
import { runInNewContext } from 'node:vm';

const rt = new WorkerRuntime();
after(() => rt.dispose());

test('the snapshot keeps of capnweb only RpcTarget and the marks of an RPC error; each unit is a script of its own with a code cache', async () => {
  const boot = await bootstrap();
  const isolate = new ivm.Isolate({ memoryLimit: 64, snapshot: boot.snapshot });
  try {
    const context = await isolate.createContext();
    assert.equal(await context.eval(`Object.keys(globalThis.${LIBS_GLOBAL}.capnweb).join()`), 'RpcTarget,remote,resetBy,retryable');
    // V8 takes the code cache (it refuses one made in an isolate of another snapshot).
    for (const [name, unit] of Object.entries(boot.units)) {
      const script = (await isolate.compileScript(unit.source, { cachedData: unit.cache! })) as ivm.Script & { cachedDataRejected?: boolean };
      assert.equal(script.cachedDataRejected, false, `${name}'s code cache is used`);
      script.release();
    }
  } finally {
    isolate.dispose();
  }
  assert.deepEqual(Object.keys(boot.units).sort(), Object.keys(LAZY_UNITS).sort());
  for (const [name, unit] of Object.entries(boot.units)) {
    assert.match(unit.source, /^\(function \(__cordonLibs\) \{/, name);
    assert.ok(unit.cache, `${name} has a code cache`);
  }
  assert.match(boot.units.rpc.source, /RpcSession/);
});

test("the RPC, streams and url units' code caches, once a worker was made, are the rehearsed ones: they carry the functions a first call, stream or URL runs, and a new isolate takes them", async () => {
  await rt.handle(worker(`export default { fetch() { return new Response('x') } }`), GET, { log: () => {} });
  const boot = await bootstrap();
  const isolate = new ivm.Isolate({ memoryLimit: 64, snapshot: boot.snapshot });
  try {
    for (const name of ['rpc', 'streams', 'url'] as const) {
      const unit = boot.units[name];
      // What compiling alone gives: the unit's top level, its inner functions left to compile lazily.
      const alone = (await isolate.compileScript(unit.source, { filename: `cordon:alone-${name}`, produceCachedData: true })) as ivm.Script &
        ivm.CachedDataResult;
      const aloneBytes = alone.cachedData!.copy().byteLength;
      alone.release();
      const rehearsedBytes = unit.cache!.copy().byteLength;
      assert.ok(rehearsedBytes > 1.5 * aloneBytes, `${name}: rehearsed ${rehearsedBytes} bytes, compiled alone ${aloneBytes}`);
      const script = (await isolate.compileScript(unit.source, { filename: `cordon:${name}`, cachedData: unit.cache! })) as ivm.Script & {
        cachedDataRejected?: boolean;
      };
      assert.equal(script.cachedDataRejected, false, name);
      script.release();
    }
  } finally {
    isolate.dispose();
  }
});

test('units load on first use, after tenant code has run in a locked-down isolate, and once per isolate', async () => {
  const bundle = worker(`export default { async fetch() {
    const out = [];
    for (let i = 0; i < 2; i++) {
      const gz = new Response(new Blob(['hello hello hello']).stream().pipeThrough(new CompressionStream('gzip')));
      const back = await new Response(gz.body.pipeThrough(new DecompressionStream('gzip'))).text();
      const d = new crypto.DigestStream('SHA-256');
      const w = d.getWriter(); await w.write(new TextEncoder().encode('abc')); await w.close();
      const sjis = new TextDecoder('shift_jis').decode(new Uint8Array([0x82, 0xa0]));
      out.push(back + ' ' + [...new Uint8Array(await d.digest)].slice(0, 4).join('.') + ' ' + sjis);
    }
    return new Response(out.join('|'));
  } }`);
  const res = await rt.handle(bundle, GET, { log() {} });
  assert.equal(text(res.body), 'hello hello hello 186.120.22.191 あ|hello hello hello 186.120.22.191 あ');
  // An unknown digest is refused as before, without loading anything it should not.
  const refused = await rt.handle(
    worker(`export default { fetch() { try { new crypto.DigestStream('SHA-3'); return new Response('no') } catch (e) { return new Response(e.name) } } }`),
    GET,
    { log() {} },
  );
  assert.equal(text(refused.body), 'NotSupportedError');
});

test('URLPattern keeps the polyfill’s shape while the polyfill itself loads on first use', async () => {
  // The polyfill's typings leave out compareComponent.
  const Polyfill = (await import('urlpattern-polyfill/urlpattern')).URLPattern as unknown as (new (
    init: object,
  ) => object) & {
    compareComponent(c: string, l: object, r: object): number;
  };
  // Each own property: its key and the kind of descriptor (a value's type and function length; a getter; a setter).
  const shape = (C: { prototype: object }) =>
    [C.prototype, C].map((o) =>
      Reflect.ownKeys(o).map((k) => {
        const d = Object.getOwnPropertyDescriptor(o, k)!;
        const kind =
          'value' in d ? typeof d.value + (typeof d.value === 'function' ? (d.value as () => void).length : '') : (d.get ? 'get' : '') + (d.set ? 'set' : '');
        return [String(k), kind, d.enumerable, d.configurable, d.writable];
      }),
    );
  const expected = JSON.stringify([shape(Polyfill), Polyfill.name, Polyfill.length]);
  const res = await rt.handle(
    worker(`export default { fetch() {
      const shape = ${shape.toString()};
      const before = JSON.stringify([shape(URLPattern), URLPattern.name, URLPattern.length]);
      const p = new URLPattern({ pathname: '/books/:id' });
      const q = new URLPattern({ pathname: '/books/*' });
      return Response.json({ before, tag: Object.prototype.toString.call(p), is: p instanceof URLPattern, id: p.exec('https://x.test/books/12').pathname.groups.id,
        cmp: URLPattern.compareComponent('pathname', p, q), groups: p.hasRegExpGroups, path: p.pathname, bad: (() => { try { URLPattern.prototype.test.call({}) } catch (e) { return e.name } })() });
    } }`),
    GET,
    { log() {} },
  );
  const out = JSON.parse(text(res.body)) as Record<string, unknown>;
  assert.equal(out.before, expected);
  assert.deepEqual(
    { ...out, before: undefined },
    {
      before: undefined,
      tag: '[object URLPattern]',
      is: true,
      id: '12',
      cmp: Polyfill.compareComponent('pathname', new Polyfill({ pathname: '/books/:id' }), new Polyfill({ pathname: '/books/*' })),
      groups: false,
      path: '/books/:id',
      bad: 'TypeError',
    },
  );
});

/**
 * Outside string literals and the unit's first statements (esbuild's helpers, read as its script starts, before
 * any code of it a tenant can reach runs, and used only to wire its modules): the built-ins it names, each a
 * global not after a dot and not a property key, with what it reads off one.
 */
function builtinsNamed(source: string, helpersEnd: string): string[] {
  const builtins = new Set([
    ...runInNewContext('Object.getOwnPropertyNames(globalThis)'),
    ...['TextEncoder', 'TextDecoder', 'SharedArrayBuffer', 'DOMException', 'atob', 'btoa', 'queueMicrotask', 'structuredClone'],
  ]);
  const helpers = source.slice(0, source.indexOf(helpersEnd));
  assert.match(helpers, /^\(function \(__cordonLibs\) \{\n"use strict";\n"use strict";var unit=\(\(\)=>\{var __[a-zA-Z]+=Object\./);
  const code = source.slice(helpers.length).replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`/g, '""');
  const named = [...code.matchAll(/(?<![.\w$])([A-Za-z_$][\w$]*)(?!\s*:)(?:\.([A-Za-z_$][\w$]*))?/g)].filter((m) => builtins.has(m[1]!));
  return [...new Set(named.map((m) => m[0]))];
}

test('the url unit names no built-in but the snapshot’s own (url.ts PINNED)', async () => {
  const { source } = (await bootstrap()).units.url;
  // `Function.convert` is whatwg-url's own module named Function.
  assert.deepEqual(
    builtinsNamed(source, 'var __commonJS=').filter((n) => n !== 'Function.convert'),
    [],
  );
  assert.match(source, /__cordonLibs\.url\.PINNED\.Object_getOwnPropertyDescriptor\(/);
});

test('the streams unit names no built-in but the snapshot’s own (streams.ts PINNED), and the two the init half installs', async () => {
  const { source } = (await bootstrap()).units.streams;
  assert.deepEqual(builtinsNamed(source, 'var __export='), ['queueMicrotask', 'structuredClone']);
  assert.match(source, /__cordonLibs\.streams\.PINNED\.Promise_prototype_then\b/);
  assert.match(source, /typeof __cordonLibs\.streams\.PINNED\?__cordonLibs\.streams\.PINNED:/);
});
