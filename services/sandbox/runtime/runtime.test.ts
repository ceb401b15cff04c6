/** The isolate host on its own: Workers API basics, limits, and the lockdown. */
import { after, test } from 'node:test';
import { webcrypto } from 'node:crypto';
import assert from 'node:assert/strict';
import { WorkerRuntime, type WorkerError } from './index.ts';
import { LOG_BYTES_PER_SECOND } from './log-buffer.ts';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import type { WireRequest } from '../../../schemas/http.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

async function run(bundle: WorkerBundle, req: WireRequest = GET) {
  const logs: LogEntry[] = [];
  try {
    const res = await rt.handle(bundle, req, { log: (e) => logs.push(...e) });
    await new Promise((r) => setImmediate(r));
    return { res, logs };
  } catch (e) {
    await new Promise((r) => setImmediate(r));
    return { error: e as WorkerError, logs };
  }
}

test('hello world, env vars, console captured', async () => {
  const { res, logs } = await run(
    worker(`export default { fetch(req, env) { console.log('seen', env.WHO); return new Response('hi ' + env.WHO) } }`, { vars: { WHO: 'there' } }),
  );
  assert.equal(res!.status, 200);
  assert.equal(text(res!.body), 'hi there');
  assert.deepEqual(
    logs.map((l) => [l.level, l.message]),
    [['log', 'seen there']],
  );
});

test('bodies are bytes both ways: every byte value survives', async () => {
  const body = new Uint8Array(256).map((_, i) => i);
  const { res } = await run(
    worker(
      `export default { async fetch(req) { return new Response(await req.arrayBuffer(), { status: 201, statusText: 'Made', headers: { 'x-m': req.method } }) } }`,
    ),
    { ...GET, method: 'POST', body },
  );
  assert.equal(res!.status, 201);
  assert.equal(res!.statusText, 'Made');
  assert.deepEqual(res!.body, body);
  assert.deepEqual(
    res!.headers.find(([k]) => k === 'x-m'),
    ['x-m', 'POST'],
  );
});

test("a body's bytes handed on uncopied stay each holder's own: clones, a buffer the worker changes, a response read after it is returned", async () => {
  // arrayBuffer() and the response's way out hand a body's own buffer on rather than copy it; what
  // shares it (a clone, the worker holding it, the answer already on its way) must not see changes.
  const body = new Uint8Array(70_000).map((_, i) => i % 251);
  const { res, logs } = await run(
    worker(`export default { async fetch(req, env, ctx) {
      const copy = req.clone();
      const mine = new Uint8Array(await req.arrayBuffer());
      mine.fill(1);
      const theirs = new Uint8Array(await copy.arrayBuffer());
      const again = await req.arrayBuffer().then(() => 'read twice', (e) => e.name);
      const out = new Response(theirs);
      theirs.fill(2);
      const twin = out.clone();
      const read = new Uint8Array(await twin.arrayBuffer());
      read.fill(3);
      ctx.waitUntil(out.arrayBuffer().then((b) => { new Uint8Array(b).fill(4); console.log('after', new Uint8Array(b)[0]); }));
      out.headers.set('x-seen', [mine[0], theirs[0], read[0], again].join(','));
      return out;
    } }`),
    { ...GET, method: 'POST', body },
  );
  assert.equal(res!.status, 200);
  assert.deepEqual(res!.body, body, "the worker's changes to buffers it was given reach no other holder");
  assert.deepEqual(
    res!.headers.find(([k]) => k === 'x-seen'),
    ['x-seen', '1,2,3,TypeError'],
  );
  assert.deepEqual(
    logs.map((l) => l.message),
    ['after 4'],
  );
});

test('status text and header values as the Fetch standard has them: a TypeError the worker can catch', async () => {
  const { res } = await run(
    worker(`export default { fetch() {
      const out = {};
      const t = (name, f) => { try { f(); out[name] = 'ok'; } catch (e) { out[name] = e.constructor.name; } };
      t('latin1 status', () => new Response('x', { statusText: 'caf\\u00e9 ok' }));
      t('euro status', () => new Response('x', { statusText: '\\u20ac' }));
      t('emoji status', () => new Response('x', { statusText: '\\ud83d\\ude00' }));
      t('control status', () => new Response('x', { statusText: 'a\\u0001b' }));
      t('CR status', () => new Response('x', { statusText: 'a\\rb' }));
      t('latin1 value', () => new Headers({ a: 'caf\\u00e9' }));
      t('euro value', () => new Headers({ a: '\\u20ac' }));
      t('euro set', () => new Headers().set('a', '\\u20ac'));
      t('euro in response', () => new Response('x', { headers: { a: '\\u20ac' } }));
      t('NUL value', () => new Headers({ a: 'a\\u0000b' }));
      t('bad name', () => new Headers({ 'a b': 'x' }));
      return Response.json(out);
    } }`),
  );
  assert.deepEqual(JSON.parse(text(res!.body)), {
    'latin1 status': 'ok',
    'euro status': 'TypeError',
    'emoji status': 'TypeError',
    'control status': 'TypeError',
    'CR status': 'TypeError',
    'latin1 value': 'ok',
    'euro value': 'TypeError',
    'euro set': 'TypeError',
    'euro in response': 'TypeError',
    'NUL value': 'TypeError',
    'bad name': 'TypeError',
  });
});

test('a status text or header value made unsendable after the checks is a 500 from the sandbox, never passed on', async () => {
  for (const body of [
    `const r = new Response('x'); r.statusText = '\\u20ac'; return r;`,
    `const r = new Response('x'); Object.defineProperty(r, 'statusText', { value: 'a\\u0001' }); return r;`,
    `return new Response('x', { headers: { a: 'a\\u0001b' } });`,
  ]) {
    const { error } = await run(worker(`export default { fetch() { ${body} } }`));
    assert.equal(error?.message, 'worker returned an invalid response', body);
  }
});

test('headers: case-insensitive, multiple set-cookie kept apart, Response.json and redirect', async () => {
  const { res } = await run(
    worker(`export default { fetch(req) {
      const h = new Headers({ 'X-A': '1' }); h.append('set-cookie', 'a=1'); h.append('Set-Cookie', 'b=2'); h.set('x-in', req.headers.get('X-IN'));
      if (new URL(req.url).searchParams.get('q') !== '1') throw new Error('bad url');
      return new Response(JSON.stringify([...h]), { headers: h }) } }`),
  );
  const names = res!.headers.filter(([k]) => k === 'set-cookie').map(([, v]) => v);
  assert.deepEqual(names, ['a=1', 'b=2']);
  assert.deepEqual(JSON.parse(text(res!.body)), [
    ['set-cookie', 'a=1'],
    ['set-cookie', 'b=2'],
    ['x-a', '1'],
    ['x-in', 'v'],
  ]);
  const j = await run(worker(`export default { fetch() { return Response.json({ ok: true }, { status: 202 }) } }`));
  assert.equal(j.res!.status, 202);
  assert.deepEqual(j.res!.headers, [['content-type', 'application/json']]);
  const r = await run(worker(`export default { fetch() { return Response.redirect('https://example.com/x', 301) } }`));
  assert.equal(r.res!.status, 301);
  assert.deepEqual(r.res!.headers, [['location', 'https://example.com/x']]);
});

test('several modules: esm importing esm, text, json, data; cloudflare:workers and cloudflare:workflows', async () => {
  const { res, error } = await run(
    worker(
      `import { two } from './lib/two.js'; import t from './t.txt'; import j from './j.json'; import d from './d.bin';
       import { WorkerEntrypoint } from 'cloudflare:workers'; import { NonRetryableError } from 'cloudflare:workflows';
       export default { fetch() { return Response.json([two(), t, j.k, new Uint8Array(d)[1], typeof WorkerEntrypoint, new NonRetryableError('x').name]) } }`,
      {
        modules: [
          { name: 'lib/two.js', type: 'esm', content: `import { one } from '../one.js'; export const two = () => one() + 1;` },
          { name: 'one.js', type: 'esm', content: `export const one = () => 1;` },
          { name: 't.txt', type: 'text', content: 'text!' },
          { name: 'j.json', type: 'json', content: '{"k":"json!"}' },
          { name: 'd.bin', type: 'data', content: Buffer.from([7, 9]).toString('base64') },
        ],
      },
    ),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [2, 'text!', 'json!', 9, 'function', 'NonRetryableError']);
});

test('import() (as deploy rewrites it): a module of the bundle by a computed name, the same instance a static import gets, built-ins; errors clear and sticky', async () => {
  const { res, error } = await run(
    worker(
      `import { count } from './lang/counter.js';
       const load = (spec) => __cordonImport('worker.js', spec);
       export default { async fetch() {
         const lang = ['f', 'r'].join('');
         const fr = await load('./lang/' + lang + '.js');
         const counter = await load('./lang/counter.js');
         const again = await __cordonImport('lang/fr.js', './counter.js');
         const { RpcTarget } = await load('cloudflare:workers');
         const failures = [];
         for (const spec of ['./lang/xx.js', '../../etc/passwd', './lang/boom.js', './lang/boom.js']) failures.push(await load(spec).then(() => 'loaded', (e) => e.message));
         return Response.json([fr.default, counter === again, counter.count === count, count(), count(), typeof RpcTarget, Object.prototype.toString.call(fr), failures]);
       } }`,
      {
        modules: [
          { name: 'lang/fr.js', type: 'esm', content: `import { count } from './counter.js'; count(); export default 'bonjour';` },
          { name: 'lang/counter.js', type: 'esm', content: `let n = 0; export const count = () => ++n;` },
          { name: 'lang/boom.js', type: 'esm', content: `throw new Error('boom at load');` },
        ],
      },
    ),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [
    'bonjour',
    true,
    true,
    2,
    3,
    'function',
    '[object Module]',
    [
      'cannot resolve import "./lang/xx.js" from worker.js: no module lang/xx.js in the bundle',
      'import ../../etc/passwd from worker.js leaves the bundle',
      'boom at load',
      'boom at load',
    ],
  ]);
});

test('an import that leaves the bundle or names nothing fails to load, clearly', async () => {
  const { error } = await run(worker(`import x from '../../etc/passwd'; export default { fetch() { return new Response(x) } }`));
  assert.equal(error!.status, 500);
  assert.match(error!.detail, /leaves the bundle|cannot resolve/);
});

test('a worker that throws: 500, its own stack in the log and no host paths; the next request works', async () => {
  const b = worker(`let i = 0; export default { fetch() { if (i++ === 0) throw new Error('boom'); return new Response('ok') } }`);
  const first = await run(b);
  assert.equal(first.error!.status, 500);
  assert.equal(first.error!.message, 'worker threw an exception');
  const logged = first.logs.map((l) => l.message).join('\n');
  assert.match(logged, /Error: boom/);
  assert.doesNotMatch(logged, /\/work\/|node:internal|file:\/\//);
  assert.equal(text((await run(b)).res!.body), 'ok');
});

test('an endless loop hits the CPU limit (503) while another worker keeps serving; then it recovers', async () => {
  const looping = worker(`export default { fetch(req) { if (req.url.endsWith('loop')) while (true) {} return new Response('recovered') } }`, {
    limits: { cpuMs: 200 },
  });
  const other = worker(`export default { fetch() { return new Response('other') } }`);
  const ticks: number[] = [];
  const ticker = setInterval(() => ticks.push(Date.now()), 20);
  const [loop, fine] = await Promise.all([run(looping, { ...GET, url: 'http://x.test/loop' }), new Promise((r) => setTimeout(r, 50)).then(() => run(other))]);
  clearInterval(ticker);
  assert.equal(loop.error!.status, 503);
  assert.match(loop.error!.message, /CPU time limit of 200 ms/);
  assert.equal(text(fine.res!.body), 'other');
  // Had the getters run on the host's thread, no tick could fire until they were stopped; on a loaded
  // machine the ticks are late and few, so two are asked for, not one per 20 ms.
  assert.ok(ticks.length >= 2, `the host event loop kept running (${ticks.length} ticks)`);
  assert.equal(text((await run(looping)).res!.body), 'recovered');
});

test('a promise that never settles hits the wall-time limit', async () => {
  const { error } = await run(worker(`export default { fetch() { return new Promise(() => {}) } }`, { limits: { wallMs: 300 } }));
  assert.equal(error!.status, 503);
  assert.match(error!.message, /wall time limit of 300 ms/);
});

test('a memory bomb hits the memory limit; the isolate is recreated', async () => {
  const b = worker(
    `export default { fetch(req) { if (req.url.endsWith('bomb')) { const a = []; while (true) a.push('x'.repeat(1024) + a.length); } return new Response('fresh') } }`,
    { limits: { memoryMb: 32, cpuMs: 10_000 } },
  );
  const { error } = await run(b, { ...GET, url: 'http://x.test/bomb' });
  assert.equal(error!.status, 503);
  assert.match(error!.message, /memory limit of 32 MB/);
  assert.equal(text((await run(b)).res!.body), 'fresh');
});

test('a getter on the returned object cannot stall the host: it runs inside the isolate, under the CPU limit', async () => {
  const plain = await run(worker(`export default { fetch() { return { get status() { while (true) {} } } } }`, { limits: { cpuMs: 200 } }));
  assert.match(plain.error!.detail, /not a Response/, 'a look-alike object is refused without touching its getters');
  const ticks: number[] = [];
  const ticker = setInterval(() => ticks.push(Date.now()), 20);
  const evil = await run(
    worker(
      `export default { fetch() { const r = new Response('x'); for (const k of ['status', 'statusText', 'headers']) Object.defineProperty(r, k, { get() { while (true) {} } }); return r } }`,
      { limits: { cpuMs: 200 } },
    ),
  );
  clearInterval(ticker);
  assert.equal(evil.error!.status, 503);
  // Had the getters run on the host's thread, no tick could fire until they were stopped; on a loaded
  // machine the ticks are late and few, so two are asked for, not one per 20 ms.
  assert.ok(ticks.length >= 2, `the host event loop kept running (${ticks.length} ticks)`);
});

test('the clock does not move while code runs; Date() forms and Intl agree', async () => {
  const { res } = await run(
    worker(
      `export default { fetch() {
      const a = Date.now(), p = performance.now(); let x = 0; for (let i = 0; i < 3e7; i++) x += i;
      class D extends Date {}
      return Response.json([a === Date.now(), p === performance.now(), new Date().getTime() === a, Date() === new Date(a).toString(),
        new D().getTime() === a, new Intl.DateTimeFormat('en', { timeZone: 'UTC' }).format() === new Intl.DateTimeFormat('en', { timeZone: 'UTC' }).format(a), x > 0]) } }`,
      { limits: { cpuMs: 2000 } },
    ),
  );
  assert.deepEqual(JSON.parse(text(res!.body)), [true, true, true, true, true, true, true]);
});

test('code generation, shared memory and weak references are gone', async () => {
  const probes = [
    `eval('1')`,
    `new Function('return 1')()`,
    `(function(){}).constructor('return 1')()`,
    `(async function(){}).constructor('return 1')`,
    `(function*(){}).constructor('return 1')`,
    `Object.getPrototypeOf(async function*(){}).constructor('return 1')`,
    `({}).constructor.constructor('return 1')()`,
    `WebAssembly.compile(new Uint8Array([0,97,115,109,1,0,0,0]))`,
    `new WebAssembly.Module(new Uint8Array([0,97,115,109,1,0,0,0]))`,
    `WebAssembly.Module.prototype.constructor(new Uint8Array([0,97,115,109,1,0,0,0]))`,
    `new SharedArrayBuffer(8)`,
    `Atomics.wait`,
    `new WeakRef({})`,
    `new FinalizationRegistry(() => {})`,
    `setTimeout('1', 0)`,
  ];
  for (const p of probes) {
    const { res, error } = await run(
      worker(
        `export default { fetch() { try { const r = ${p}; return new Response('allowed: ' + typeof r) } catch (e) { return new Response('refused: ' + e.name) } } }`,
      ),
    );
    assert.equal(error, undefined, `${p}: ${error?.detail}`);
    assert.match(text(res!.body), /^refused: /, p);
  }
  const types = await run(
    worker(`export default { fetch() { return Response.json([typeof SharedArrayBuffer, typeof Atomics, typeof WeakRef, typeof FinalizationRegistry]) } }`),
  );
  assert.deepEqual(JSON.parse(text(types.res!.body)), ['undefined', 'undefined', 'undefined', 'undefined']);
});

test('--allow-eval opts a worker into eval and new Function (and nothing else)', async () => {
  const b = {
    ...worker(`export default { fetch() { return Response.json([eval('1 + 1'), new Function('return 3')(), typeof SharedArrayBuffer]) } }`),
    allowEval: true,
  };
  const { res, error } = await run(b);
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [2, 3, 'undefined']);
});

test('no host object is reachable: globals hold no ivm handles, and host callbacks are gone', async () => {
  const { res } = await run(
    worker(`export default { fetch() {
      const names = Object.getOwnPropertyNames(globalThis).filter((n) => /cordon|ivm|host|require|process/i.test(n));
      return Response.json({ names, process: typeof process, require: typeof require }) } }`),
  );
  assert.deepEqual(JSON.parse(text(res!.body)), { names: [], process: 'undefined', require: 'undefined' });
});

test('crypto: getRandomValues and randomUUID; timers fire and advance the clock', async () => {
  const { res } = await run(
    worker(`export default { async fetch() {
      const a = crypto.getRandomValues(new Uint8Array(32)); const u = crypto.randomUUID();
      const t0 = Date.now(); await new Promise((r) => setTimeout(r, 30)); const t1 = Date.now();
      return Response.json([a.some((x) => x !== 0), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), t1 - t0 >= 25]) } }`),
  );
  assert.deepEqual(JSON.parse(text(res!.body)), [true, true, true]);
});

test("URL hosts: international names through the host's tr46 (same results as whatwg-url alone, no tables per isolate)", async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const out = [];
      for (const u of ['http://EXAMPLE.com/a', 'http://bücher.de/', 'http://ÉXAMPLE.COM', 'http://faß.de', 'http://0x7f.1/', 'http://XN--BCHER-KVA.de', 'http://xn--a.com/', 'http://x\\u200d.com/', 'http://a%2520b/']) {
        try { out.push(new URL(u).host) } catch (e) { out.push(e.name) }
      }
      return Response.json(out) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [
    'example.com',
    'xn--bcher-kva.de',
    'xn--xample-9ua.com',
    'xn--fa-hia.de',
    '127.0.0.1',
    'xn--bcher-kva.de',
    'xn--a.com',
    'TypeError',
    'TypeError',
  ]);
});

test('URL queries and URLSearchParams encode UTF-8 (the legacy document encodings are left out of the snapshot)', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const u = new URL('http://x.test/p?q=café €&\u{1F600}');
      const p = new URLSearchParams({ k: 'naïve ✓' });
      return Response.json([u.search, p.toString(), new URLSearchParams(u.search).get('q'), decodeURIComponent(u.search.slice(3).split('&')[0])]) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), ['?q=caf%C3%A9%20%E2%82%AC&%F0%9F%98%80', 'k=na%C3%AFve+%E2%9C%93', 'café €', 'café €']);
});

test('crypto.subtle.digest: SHA-1/256/384/512 and MD5 (as Workers) by the host, with clear errors for anything else', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
      const data = new TextEncoder().encode('abc');
      const out = [];
      for (const alg of ['SHA-1', 'sha-256', { name: 'SHA-384' }, 'SHA-512']) out.push(hex(await crypto.subtle.digest(alg, data)).slice(0, 16));
      out.push(hex(await crypto.subtle.digest('MD5', data)));
      let err = '';
      try { await crypto.subtle.digest('SHA-224', data) } catch (e) { err = e.name }
      return Response.json([out, err]) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [
    ['a9993e364706816a', 'ba7816bf8f01cfea', 'cb00753f45a35e8b', 'ddaf35a193617aba', '900150983cd24fb0d6963f7d28e17f72'],
    'NotSupportedError',
  ]);
});

test('crypto.subtle HMAC (RFC 4231 vector) and AES-GCM: roundtrip, tamper refused, non-extractable keys stay inside', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
      const enc = new TextEncoder();
      const out = [];
      const hk = await crypto.subtle.importKey('raw', enc.encode('Jefe'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
      const mac = await crypto.subtle.sign('HMAC', hk, enc.encode('what do ya want for nothing?'));
      out.push(hex(mac));
      out.push(await crypto.subtle.verify('HMAC', hk, mac, enc.encode('what do ya want for nothing?')));
      out.push(await crypto.subtle.verify('HMAC', hk, mac, enc.encode('what do ya want for nothing!')));
      const ak = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode('hdr') }, ak, enc.encode('secret')));
      out.push(new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: enc.encode('hdr') }, ak, ct)));
      ct[0] ^= 1;
      try { await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: enc.encode('hdr') }, ak, ct); out.push('tampered accepted') } catch (e) { out.push(e.name) }
      try { await crypto.subtle.exportKey('raw', ak); out.push('exported') } catch (e) { out.push(e.name) }
      out.push(Object.getOwnPropertySymbols(ak).length + Object.getOwnPropertyNames(ak).filter((n) => !['type', 'algorithm', 'extractable', 'usages'].includes(n)).length);
      try { await crypto.subtle.sign('HMAC', ak, enc.encode('x')); out.push('wrong key accepted') } catch (e) { out.push(e.name) }
      try { await crypto.subtle.sign('RSASSA-PKCS1-v1_5', hk, enc.encode('x')); out.push('HMAC key used for RSA') } catch (e) { out.push(e.name) }
      try { new CryptoKey(); out.push('constructed') } catch (e) { out.push(e.name) }
      const xk = await crypto.subtle.importKey('jwk', { kty: 'oct', k: 'AAECAwQFBgcICQoLDA0ODw' }, 'AES-GCM', true, ['encrypt']);
      out.push(hex(await crypto.subtle.exportKey('raw', xk)));
      return Response.json(out) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    true,
    false,
    'secret',
    'OperationError',
    'InvalidAccessError',
    0,
    'InvalidAccessError',
    'InvalidAccessError',
    'TypeError',
    '000102030405060708090a0b0c0d0e0f',
  ]);
});

test("crypto.subtle Ed25519 (RFC 8032 test 1) and ECDSA P-256/P-384: sign, verify, import/export in every format; checked against Node's WebCrypto", async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
      const unhex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
      const out = {};
      const seed = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
      const priv = await crypto.subtle.importKey('pkcs8', unhex('302e020100300506032b657004220420' + seed), 'Ed25519', false, ['sign']);
      out.edSig = hex(await crypto.subtle.sign('Ed25519', priv, new Uint8Array(0)));
      const pub = await crypto.subtle.importKey('raw', unhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'), { name: 'Ed25519' }, true, ['verify']);
      out.edOk = await crypto.subtle.verify('Ed25519', pub, unhex(out.edSig), new Uint8Array(0));
      out.edBad = await crypto.subtle.verify('Ed25519', pub, unhex(out.edSig), new Uint8Array(1));
      out.edJwk = (await crypto.subtle.exportKey('jwk', pub)).x;
      for (const curve of ['P-256', 'P-384']) {
        const { publicKey, privateKey } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify']);
        const data = new TextEncoder().encode('signed by ' + curve);
        const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data);
        const raw = await crypto.subtle.exportKey('raw', publicKey);
        const again = await crypto.subtle.importKey('raw', raw, { name: 'ECDSA', namedCurve: curve }, true, ['verify']);
        const jwk = await crypto.subtle.exportKey('jwk', privateKey);
        const fromJwk = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: curve }, false, ['sign']);
        const sig2 = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, fromJwk, data);
        out[curve] = {
          sigLength: sig.byteLength,
          rawLength: raw.byteLength,
          ok: await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, again, sig, data),
          okJwk: await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-384' }, publicKey, sig2, data),
          tampered: await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, sig, new TextEncoder().encode('other')),
          jwkHasD: typeof jwk.d === 'string',
          spki: hex(await crypto.subtle.exportKey('spki', publicKey)),
          sig: hex(sig),
          data: hex(data),
        };
      }
      const errs = [];
      const { privateKey: p2 } = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
      for (const f of [
        () => crypto.subtle.exportKey('pkcs8', p2),
        () => crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, p2, new Uint8Array(64), new Uint8Array(1)),
        () => crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-192' }, true, ['sign']),
        () => crypto.subtle.importKey('raw', new Uint8Array(10), { name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']),
        () => crypto.subtle.importKey('spki', new Uint8Array(91), 'Ed25519', true, ['verify']),
        () => crypto.subtle.importKey('raw', unhex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a'), 'Ed25519', true, ['sign']),
      ]) { try { await f(); errs.push('accepted') } catch (e) { errs.push(e.name) } }
      out.errs = errs;
      return Response.json(out) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  const out = JSON.parse(text(res!.body));
  assert.equal(out.edSig, 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b');
  assert.equal(out.edOk, true);
  assert.equal(out.edBad, false);
  assert.equal(out.edJwk, '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo');
  for (const [curve, size] of [
    ['P-256', 32],
    ['P-384', 48],
  ] as const) {
    const c = out[curve];
    assert.deepEqual([c.sigLength, c.rawLength, c.ok, c.okJwk, c.tampered, c.jwkHasD], [2 * size, 1 + 2 * size, true, true, false, true], curve);
    // What the isolate signed verifies with Node's own WebCrypto and the key the isolate exported.
    const key = await webcrypto.subtle.importKey('spki', Buffer.from(c.spki, 'hex'), { name: 'ECDSA', namedCurve: curve }, false, ['verify']);
    assert.equal(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, Buffer.from(c.sig, 'hex'), Buffer.from(c.data, 'hex')), true, curve);
  }
  assert.deepEqual(out.errs, ['InvalidAccessError', 'InvalidAccessError', 'NotSupportedError', 'DataError', 'DataError', 'SyntaxError']);
});

test('bodies are ReadableStreams: request.body, new Response(stream) written over time, clone of a stream, used-body rules, bounds', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch(request) {
      const out = [];
      out.push(request.body instanceof ReadableStream, request.bodyUsed);
      const reader = request.body.getReader();
      let got = '';
      for (let r = await reader.read(); !r.done; r = await reader.read()) got += new TextDecoder().decode(r.value);
      out.push(got, request.bodyUsed);
      try { await request.text(); out.push('read twice') } catch (e) { out.push(e.name) }
      const piped = new Response(new Response('abc').body);
      out.push(await piped.text());
      const twin = new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('tee')); c.close() } }));
      const copy = twin.clone();
      out.push(await twin.text(), await copy.text());
      try { await new Response(new ReadableStream({ start(c) { c.enqueue('not bytes'); c.close() } })).text(); out.push('accepted') } catch (e) { out.push(e.name) }
      const { readable, writable } = new TransformStream();
      const w = writable.getWriter();
      (async () => { for (const part of ['one ', 'two ', 'three']) { await new Promise((r) => setTimeout(r, 5)); await w.write(new TextEncoder().encode(part)) } await w.close() })();
      return new Response(readable, { headers: { 'x-out': JSON.stringify(out) } });
    } }`),
    { ...GET, method: 'POST', body: new TextEncoder().encode('posted body') },
  );
  assert.equal(error, undefined, error?.detail);
  assert.equal(res!.body, null, 'a stream nobody read is not buffered: it streams out');
  const chunks: string[] = [];
  for await (const chunk of res!.stream!) chunks.push(new TextDecoder().decode(chunk));
  assert.deepEqual(chunks, ['one ', 'two ', 'three'], 'chunk by chunk, as the worker wrote them');
  assert.deepEqual(JSON.parse(res!.headers.find(([k]) => k === 'x-out')![1]), [
    true,
    false,
    'posted body',
    true,
    'TypeError',
    'abc',
    'tee',
    'tee',
    'TypeError',
  ]);
  // A worker streaming forever is cut at its wall-time limit; a stream of non-bytes is an error.
  const endless = await run(
    worker(
      `export default { fetch() { return new Response(new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 10)); c.enqueue(new Uint8Array(1024)) } })) } }`,
      { limits: { wallMs: 300 } },
    ),
  );
  let got = 0;
  await assert.rejects(
    (async () => {
      for await (const chunk of endless.res!.stream!) got += chunk.byteLength;
    })(),
    /wall time limit of 300 ms/,
  );
  assert.ok(got > 0, 'some of it arrived before the cut');
  const wrong = await run(worker(`export default { fetch() { return new Response(new ReadableStream({ start(c) { c.enqueue('text'); c.close() } })) } }`));
  await assert.rejects(
    (async () => {
      for await (const _ of wrong.res!.stream!);
    })(),
    (e: WorkerError) => /must give Uint8Array chunks/.test(e.detail),
  );
});

test('Event/EventTarget, AbortController/AbortSignal and web streams', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() {
      const out = [];
      const t = new EventTarget();
      t.addEventListener('ping', (e) => out.push('got ' + e.type));
      t.dispatchEvent(new Event('ping'));
      const c = new AbortController();
      c.signal.addEventListener('abort', () => out.push('aborted ' + c.signal.reason.name));
      c.abort();
      out.push(c.signal.aborted, AbortSignal.abort('why').reason);
      try { new AbortSignal() } catch (e) { out.push(e.name) }
      const rs = new ReadableStream({ start(ctl) { ctl.enqueue('a'); ctl.enqueue('b'); ctl.close(); } });
      const upper = rs.pipeThrough(new TransformStream({ transform(chunk, ctl) { ctl.enqueue(chunk.toUpperCase()) } }));
      const reader = upper.getReader();
      for (let r = await reader.read(); !r.done; r = await reader.read()) out.push(r.value);
      const seen = [];
      const ws = new WritableStream({ write(chunk) { seen.push(chunk) } });
      const w = ws.getWriter(); await w.write(1); await w.close(); out.push(seen[0]);
      return Response.json(out) } }`),
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), ['got ping', 'aborted AbortError', true, 'why', 'TypeError', 'A', 'B', 1]);
});

test('Blob, File and FormData: as bodies (multipart, urlencoded) and parsed back by formData()', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch(request) {
      const out = [];
      const b = new Blob(['ab', new Uint8Array([99]), new Blob(['d'])], { type: 'Text/Plain' });
      out.push(b.size, b.type, await b.text(), await b.slice(1, 3).text());
      const form = new FormData();
      form.append('a', '1');
      form.append('a', '2');
      form.append('f', new Blob([new Uint8Array([0, 255, 10])], { type: 'application/x-bin' }), 'x.bin');
      const req = new Request('http://x/', { method: 'POST', body: form });
      out.push(req.headers.get('content-type').startsWith('multipart/form-data; boundary='));
      const back = await req.formData();
      const f = back.get('f');
      out.push(back.getAll('a'), f.name, f.type, [...new Uint8Array(await f.arrayBuffer())]);
      const posted = await request.formData();
      out.push(posted.get('q'));
      return Response.json(out) } }`),
    {
      method: 'POST',
      url: 'http://example.test/',
      headers: [['content-type', 'application/x-www-form-urlencoded']],
      body: new TextEncoder().encode('q=hello+world'),
    },
  );
  assert.equal(error, undefined, error?.detail);
  assert.deepEqual(JSON.parse(text(res!.body)), [4, 'text/plain', 'abcd', 'bc', true, ['1', '2'], 'x.bin', 'application/x-bin', [0, 255, 10], 'hello world']);
});

test('a body held in full over 8 MiB streams out in pieces (the memory limit is the bound, as in Workers)', async () => {
  const { res, error } = await run(
    worker(`export default { async fetch() { const b = new Uint8Array(20 * 1024 * 1024 + 3); b[b.length - 1] = 7; await null; return new Response(b) } }`, {
      limits: { memoryMb: 128, cpuMs: 5000 },
    }),
  );
  assert.equal(error, undefined, error?.detail);
  const body = new Uint8Array(await new Response(res!.stream ?? null).arrayBuffer());
  assert.equal(body.byteLength, 20 * 1024 * 1024 + 3);
  assert.equal(body[body.length - 1], 7);
  const big = await run(
    worker(`export default { fetch() { return new Response(new Uint8Array(200 * 1024 * 1024)) } }`, { limits: { memoryMb: 64, cpuMs: 5000 } }),
  );
  assert.match(String(big.error?.detail), /RangeError: Array buffer allocation failed/, 'what the worker cannot hold stops at its memory limit');
});

test('returning something that is not a Response is a clear 500', async () => {
  const { error } = await run(worker(`export default { fetch() { return 'nope' } }`));
  assert.match(error!.detail, /not a Response/);
  const none = await run(worker(`export const x = 1;`));
  assert.match(none.error!.detail, /default/);
});

test('a log burst is cut at the per-second volume: the rest is counted in a marker line, never lost silently', async () => {
  const started = Date.now();
  const { res, logs } = await run(
    worker(`export default { fetch() { const line = 'x'.repeat(65536); for (let i = 0; i < 1000; i++) console.log(line); return new Response('ok') } }`),
  );
  // The volume is per second: a loaded machine may take more than one to log the burst (each second it spans allows its own).
  const windows = Math.ceil((Date.now() - started) / 1000) + 1;
  assert.equal(res!.status, 200);
  const kept = logs.filter((l) => l.message.startsWith('x'));
  const bytes = kept.reduce((n, l) => n + l.message.length, 0);
  assert.ok(bytes <= LOG_BYTES_PER_SECOND * windows, `${bytes} bytes of log delivered over ${windows} one-second windows at most`);
  assert.ok(kept.length < 1000, 'a burst of 64 MB is cut');
  const markers = logs.filter((l) => /log lines dropped/.test(l.message));
  assert.ok(markers.length, 'a marker line says how many were dropped');
  const dropped = markers.reduce((n, l) => n + Number(/^(\d+) log lines dropped/.exec(l.message)![1]), 0);
  assert.equal(kept.length + dropped, 1000, 'every line is delivered or counted');
});
