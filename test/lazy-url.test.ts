/**
 * Issue 17 (density): the URL Standard's classes and parser (whatwg-url) are a lazy unit, not part of the
 * start-up snapshot every isolate is made from (services/sandbox/runtime/bootstrap/url.ts). A worker that
 * makes no URL never loads it — a hello-world, a body read or answered whole, forms, Workers RPC to a Dynamic
 * Worker, a request whose URL is already its own href; each way to a first URL loads it once and gives the
 * same classes as before; a worker whose code names them has the unit compiled as it loads. And a worker that
 * replaces the built-ins whatwg-url takes as it loads (globals, their functions, brand-check getters) before
 * its first URL does not steer its URLs, while a neighbour's in the same process are unaffected.
 *
 * The workers below that must reach the unit lazily never write its globals' names in their source (that
 * would have it compiled as they load): they read `globalThis[U]` with U built from two halves.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { scriptsCompiled, syncCompilesDone } from './helpers/isolate-copies.ts';
import type { WorkerInstance } from '../services/sandbox/runtime/instance.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one.
const { WorkerRuntime } = await import('../services/sandbox/runtime/index.ts');
const { GET, answer: answerIn, text, worker } = await import('../services/sandbox/runtime/testing/fixtures.ts');
const { SpareIsolates } = await import('../services/sandbox/runtime/spares.ts');
type Bundle = ReturnType<typeof worker>;

const rt = new WorkerRuntime({ spares: 0 });
after(() => rt.dispose());

const loads = () => scriptsCompiled('cordon:url');

const answer = (bundle: Bundle, req = GET) => answerIn(rt, bundle, req);

/** The two global names, spelled so that the source does not name them. */
const NAMES = `const U = 'U' + 'RL', P = U + 'SearchParams';`;
/** Whether the isolate's URL global is still the accessor that loads the unit. */
const STILL_LAZY = `(typeof Object.getOwnPropertyDescriptor(globalThis, U).get === 'function')`;

test('a worker that makes no URL never loads the url unit', async () => {
  await answer(worker(`export default { fetch() { return new Response('first') } }`));
  const before = loads();
  const hello = worker(`export default { fetch() { return new Response('hello') } }`);
  const echo = worker(`${NAMES} export default { async fetch(req) {
    const body = await req.text();
    const blob = await new Blob([body, '!']).text();
    const form = new FormData(); form.append('a', 'b');
    const parsed = await new Response(form).formData();
    const request = new Request('https://example.test/a/b?c=d', { method: 'POST', body: 'x' });
    return Response.json({ body, blob, form: parsed.get('a'), url: req.url, built: request.url, lazy: ${STILL_LAZY},
      clone: structuredClone({ a: [1], m: new Map([[1, 2]]) }).a });
  } }`);
  const parent = worker(
    `${NAMES} export default { async fetch(req, env) {
      const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
        modules: { 'w.js': "import { WorkerEntrypoint } from 'cloudflare:workers'; export default class extends WorkerEntrypoint { fetch(req) { return new Response('dynamic ' + req.method) } add(o) { return { sum: o.a + o.b, when: o.when } } }" } });
      const res = await w.getEntrypoint().fetch('http://dynamic/', { method: 'POST', body: 'x' });
      const sum = await w.getEntrypoint().add({ a: 1, b: 2, when: new Date(0) });
      return new Response((await res.text()) + ' ' + sum.sum + ' ' + ${STILL_LAZY});
    } }`,
    { bindings: [{ type: 'loader', name: 'LOADER' }] },
  );
  for (let i = 0; i < 2; i++) {
    assert.equal(await answer(hello), 'hello');
    const post = { method: 'POST', url: 'http://example.test/p?q=r', headers: [['content-type', 'text/plain']], body: new TextEncoder().encode('ping') };
    assert.deepEqual(JSON.parse(await answer(echo, post as typeof GET)), {
      body: 'ping',
      blob: 'ping!',
      form: 'b',
      url: 'http://example.test/p?q=r',
      built: 'https://example.test/a/b?c=d',
      lazy: true,
      clone: [1],
    });
    assert.equal(await answer(parent), 'dynamic POST 3 true');
  }
  assert.equal(loads() - before, 0, 'the url unit was compiled for workers that make no URL');
});

test('each way to a first URL loads the unit once, and gives the same classes', async () => {
  const doors: Record<string, string> = {
    global: `new (globalThis[U])('http://example.test/a/./b?c=d').href`,
    'global search params': `new (globalThis[P])({ a: 'b c' }).toString()`,
    'a request URL that is not its own href': `new Request('HTTP://Example.TEST:80/a/../b').url`,
    'Response.redirect': `Response.redirect('http://example.test/a b').headers.get('location')`,
    'an urlencoded form': `(await new Response('a=b+c', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }).formData()).get('a')`,
    URLPattern: `String(new URLPattern({ hostname: 'example.test' }).test('http://example.test/'))`,
    // A worker that names the class: compiled as it loads, and then run at the first URL all the same.
    named: `new URL('http://example.test/n').pathname`,
  };
  const expected: Record<string, string> = {
    global: 'http://example.test/a/b?c=d',
    'global search params': 'a=b+c',
    'a request URL that is not its own href': 'http://example.test/b',
    'Response.redirect': 'http://example.test/a%20b',
    'an urlencoded form': 'b c',
    URLPattern: 'true',
    named: '/n',
  };
  for (const [door, expr] of Object.entries(doors)) {
    const before = loads();
    const syncBefore = syncCompilesDone();
    const w = worker(`${NAMES} export default { async fetch(req) {
      const lazyBefore = ${STILL_LAZY};
      const value = ${expr};
      const C = globalThis[U], S = globalThis[P];
      const u = new C('http://example.test/x?y=z');
      const d = Object.getOwnPropertyDescriptor(globalThis, U);
      return Response.json({ lazyBefore, value, data: 'value' in d && d.writable && d.enumerable && d.configurable,
        names: [C.name, S.name], params: u.searchParams instanceof S, tag: Object.prototype.toString.call(u),
        body: await new Response(new S('k=v')).text(), type: new Request('http://example.test/', { method: 'POST', body: new S('k=v') }).headers.get('content-type'),
        clone: (() => { try { structuredClone(u); return 'cloned' } catch (e) { return e.name } })() });
    } }`);
    assert.deepEqual(
      JSON.parse(await answer(w)),
      {
        lazyBefore: true,
        value: expected[door],
        data: true,
        names: ['URL', 'URLSearchParams'],
        params: true,
        tag: '[object URL]',
        body: 'k=v',
        type: 'application/x-www-form-urlencoded;charset=UTF-8',
        clone: 'DataCloneError',
      },
      door,
    );
    // Its second request uses what the first loaded.
    await answer(w);
    assert.equal(loads() - before, 1, `${door}: the url unit compiled once`);
    // Named in the code (URLPattern's name has it too): compiled as the worker loads, off the main thread.
    // URLPattern's own unit is compiled at its first use.
    const sync = door === 'named' ? 0 : 1;
    assert.equal(syncCompilesDone() - syncBefore, sync, `${door}: synchronous compiles on the main thread`);
  }
});

test('a URL global written or deleted before its first read is the worker’s, and loads nothing', async () => {
  const before = loads();
  const w = worker(`${NAMES} globalThis[U] = 'mine'; delete globalThis[P];
  export default { fetch() {
    return Response.json({ u: globalThis[U], p: P in globalThis, d: Object.getOwnPropertyDescriptor(globalThis, U).writable });
  } }`);
  assert.deepEqual(JSON.parse(await answer(w)), { u: 'mine', p: false, d: true });
  assert.equal(loads() - before, 0);
});

test('a URL crosses Workers RPC both ways as a URL, and a worker that sends none loads nothing for it', async () => {
  const parent = worker(
    `${NAMES} export default { async fetch(req, env) {
      const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
        modules: { 'w.js': "import { WorkerEntrypoint } from 'cloudflare:workers'; export default class extends WorkerEntrypoint { host(u) { return [u.host, new globalThis['U' + 'RL']('http://back.test/r')] } }" } });
      const [host, back] = await w.getEntrypoint().host(new (globalThis[U])('http://there.test:8080/q'));
      return Response.json({ host, back: back.href, isUrl: back instanceof globalThis[U] });
    } }`,
    { bindings: [{ type: 'loader', name: 'LOADER' }] },
  );
  assert.deepEqual(JSON.parse(await answer(parent)), { host: 'there.test:8080', back: 'http://back.test/r', isUrl: true });
});

/** Uses URLs the ways that reach what whatwg-url keeps as it loads; answers with what it saw. */
const USE_URLS = `
  const C = globalThis[U], S = globalThis[P];
  const u = new C('https://user:pw@EXAMPLE.test:8443/a/%7e/../b c?x=1&y=é#frag');
  u.searchParams.append('z', '💡'); u.searchParams.sort(); u.searchParams.delete('x');
  const copy = new C(u); copy.hostname = 'other.test'; copy.port = '443'; copy.pathname = '/p q';
  const params = new S([['a', '1'], ['b', '2']]);
  const ip = [new C('http://0x7f.1/').host, new C('http://[::1]:80/').host, new C('http://xn--nxasmq6b.test/').hostname];
  let failed; try { new C('http://exa mple.test/'); } catch (e) { failed = e instanceof TypeError ? e.message : 'other'; }
  const result = { href: u.href, copy: copy.href, origin: u.origin, search: [...u.searchParams], size: u.searchParams.size,
    params: params.toString(), ip, failed, canParse: C.canParse('/x', 'http://a.test/'), parsed: C.parse('nope'),
    relative: new C('../c?d#e', 'http://a.test/b/c/d').href, file: new C('file:///C:/x/../y').href, opaque: new C('mailto:a@b.test').pathname,
    json: JSON.stringify(new C('http://j.test/')), bytes: [...new Uint8Array(await new Response(new S({ k: 'v w' })).arrayBuffer())].length,
    request: new Request('HTTP://R.test/./s').url, redirect: Response.redirect('http://r.test/t u').headers.get('location') };`;

/**
 * Replaces the built-ins whatwg-url names or keeps as it loads with ones that count their use (\`calls\`):
 * global bindings by counting proxies, the functions on them and the brand-check getters by counting wrappers.
 */
const PATCH = `
  const calls = {};
  const count = (k) => { calls[k] = (calls[k] ?? 0) + 1; };
  const apply = Reflect.apply, construct = Reflect.construct, getOwn = Object.getOwnPropertyDescriptor, define = Object.defineProperty;
  const wrap = (k, f) => function (...a) { count(k); return new.target ? construct(f, a, new.target) : apply(f, this, a); };
  for (const name of ['Object', 'Array', 'String', 'Number', 'Symbol', 'Reflect', 'Math', 'ArrayBuffer', 'BigInt']) {
    const o = globalThis[name];
    for (const k of Object.getOwnPropertyNames(o)) {
      const d = getOwn(o, k);
      if (typeof d.value === 'function' && d.writable && k !== 'prototype') o[k] = wrap(name + '.' + k, d.value);
    }
  }
  for (const [o, k, label] of [[ArrayBuffer.prototype, 'byteLength'], [ArrayBuffer.prototype, 'resizable'], [DataView.prototype, 'byteLength'],
    [Object.getPrototypeOf(Uint8Array).prototype, Symbol.toStringTag, 'toStringTag']]) {
    const get = getOwn(o, k).get;
    define(o, k, { get: wrap(label ?? k, get), configurable: true });
  }
  const call = Function.prototype.call;
  Function.prototype.call = wrap('call', call);
  for (const name of ['Set', 'Map', 'TextEncoder', 'TextDecoder', 'Symbol', 'String', 'Array', 'Object', 'TypeError', 'Promise']) {
    const target = globalThis[name];
    globalThis[name] = new Proxy(target, {
      get: (t, k, r) => (count(name + ' read'), Reflect.get(t, k)),
      apply: (t, self, a) => (count(name + '()'), apply(t, self, a)),
      construct: (t, a, nt) => (count('new ' + name), construct(t, a, nt === globalThis[name] ? t : nt)),
    });
  }`;

test('a worker that replaces the built-ins whatwg-url takes as it loads, before its first URL, does not steer its URLs; a neighbour is unaffected', async () => {
  // The same replacements after the unit is loaded: what it still reaches of them then (run-time reads
  // off prototypes, the runtime's own code), it reached from the snapshot too. Counted from after the load.
  const control = worker(
    `${NAMES} export default { async fetch() { void globalThis[U]; ${PATCH} for (const k in calls) delete calls[k]; ${USE_URLS} return Response.json({ ...result, calls }); } }`,
  );
  const tamper = worker(
    `${NAMES} export default { async fetch() { ${PATCH} void globalThis[U]; for (const k in calls) delete calls[k]; ${USE_URLS} return Response.json({ ...result, calls }); } }`,
  );
  const neighbour = worker(`${NAMES} export default { async fetch() { ${USE_URLS} return Response.json(result); } }`);
  const [seen, a, b] = await Promise.all([answer(control), answer(tamper), answer(neighbour)]);
  const { calls, ...expected } = JSON.parse(seen) as Record<string, unknown>;
  assert.equal(expected.href, 'https://user:pw@example.test:8443/a/b%20c?y=%C3%A9&z=%F0%9F%92%A1#frag');
  assert.ok(Object.keys(calls as object).length > 5, 'the workload reaches the replaced built-ins');
  assert.deepEqual(JSON.parse(a), { ...expected, calls });
  assert.deepEqual(JSON.parse(b), expected);
});

test('URLPattern canonicalizes with the runtime’s URL class, also after the worker replaced the global one', async () => {
  const w = worker(`${NAMES} globalThis[U] = class { constructor() { throw new Error('the worker’s class was used') } };
  export default { fetch() {
    const p = new URLPattern({ protocol: 'http', hostname: 'EXAMPLE.test', port: '80', pathname: '/a/*' });
    return Response.json({ hostname: p.hostname, port: p.port, match: p.test('http://example.test/a/b'), other: p.test('http://example.test/b') });
  } }`);
  assert.deepEqual(JSON.parse(await answer(w)), { hostname: 'example.test', port: '', match: true, other: false });
});

/** A pool of one spare of each kind, once both are ready. */
async function sparesReady(): Promise<InstanceType<typeof SpareIsolates>> {
  const pool = new SpareIsolates({ size: 1, memoryMb: 64, onCatastrophe: (m) => assert.fail(m) });
  const until = Date.now() + 20_000;
  while (pool.ready < 2) {
    if (Date.now() > until) assert.fail('the spares were not made within 20 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  return pool;
}

/** Adopts `bundle` into `spare` and answers a request; with the url unit compiles (all, and on the main thread) it took. */
async function fromSpare(spare: WorkerInstance, bundle: Bundle): Promise<{ body: string; compiles: number; sync: number }> {
  const [before, syncBefore] = [loads(), syncCompilesDone()];
  try {
    await spare.adopt(bundle);
    const body = text((await spare.handle({ ...GET, url: 'http://example.test/a/b?c=d' }, { log: () => {} })).body);
    return { body, compiles: loads() - before, sync: syncCompilesDone() - syncBefore };
  } finally {
    spare.dispose();
  }
}

/** Takes its request's URL apart, naming the class; says whether the global was still the lazy accessor before. */
const TAKES_URL_APART = worker(`export default { fetch(req) {
  const lazyBefore = typeof Object.getOwnPropertyDescriptor(globalThis, 'URL').get === 'function';
  const u = new URL(req.url);
  const d = Object.getOwnPropertyDescriptor(globalThis, 'URL');
  return Response.json({ lazyBefore, path: u.pathname, c: u.searchParams.get('c'), data: 'value' in d && d.writable, names: [URL.name, URLSearchParams.name],
    params: u.searchParams instanceof URLSearchParams, tag: Object.prototype.toString.call(u) });
} }`);

test('a spare made for a worker whose code names URL has the url unit loaded: its first URL compiles nothing, and it sees what a plain spare gives', async () => {
  const answers: string[] = [];
  for (const withUrl of [true, false]) {
    const pool = await sparesReady();
    const spare = pool.take(64, withUrl)!;
    pool.dispose(); // no spare made meanwhile: the counts below are this worker's alone
    const { body, compiles, sync } = await fromSpare(spare, TAKES_URL_APART);
    answers.push(body);
    assert.equal(compiles, withUrl ? 0 : 1, `${withUrl ? 'a url' : 'a plain'} spare: url unit compiles for its worker`);
    assert.equal(sync, 0, 'nothing compiled on the main thread');
  }
  assert.deepEqual(JSON.parse(answers[0]!), {
    lazyBefore: true,
    path: '/a/b',
    c: 'd',
    data: true,
    names: ['URL', 'URLSearchParams'],
    params: true,
    tag: '[object URL]',
  });
  assert.equal(answers[1], answers[0]);
});

test('a worker that names no URL never gets a spare with the url unit; one that does takes a plain spare when no other is ready', async () => {
  const hello = worker(`export default { fetch() { return new Response('hello') } }`);
  let pool = await sparesReady();
  const plain = pool.take(64, false)!;
  assert.equal(pool.take(64, false), undefined, 'the spare with the url unit is kept for a worker that names URL');
  const withUrl = pool.take(64, true)!;
  pool.dispose();
  assert.deepEqual(await fromSpare(plain, hello), { body: 'hello', compiles: 0, sync: 0 });
  assert.deepEqual((await fromSpare(withUrl, TAKES_URL_APART)).compiles, 0);
  // Both kinds asked for by workers that name URL: theirs first, then the plain one.
  pool = await sparesReady();
  const [first, second] = [pool.take(64, true)!, pool.take(64, true)!];
  assert.equal(pool.take(64, true), undefined);
  pool.dispose();
  assert.equal((await fromSpare(first, TAKES_URL_APART)).compiles, 0);
  assert.equal((await fromSpare(second, TAKES_URL_APART)).compiles, 1);
});
