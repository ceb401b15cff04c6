/**
 * Web globals as their standards say, where web-platform-tests found Cordon apart from workerd
 * (bench/wpt.ts): each case follows the WHATWG/W3C text named beside it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';
import { createRequire } from 'node:module';

const rt = new WorkerRuntime();
after(() => rt.dispose());

/** Runs `body` (an async function body returning a JSON value) in a fresh worker. */
async function run(body: string): Promise<unknown> {
  const res = await rt.handle(worker(`export default { async fetch() { const out = await (async () => { ${body} })(); return Response.json(out); } };`), GET, {
    log: () => {},
  });
  const t = text(res.body);
  assert.equal(res.status, 200, t);
  return JSON.parse(t);
}

test('DOMException has the legacy code of its name and the *_ERR constants (WebIDL §3.14.1)', async () => {
  assert.deepEqual(
    await run(`
      const codes = ['InvalidCharacterError', 'AbortError', 'DataCloneError', 'OperationError', 'SyntaxError'].map((n) => new DOMException('m', n).code);
      let atob_;
      try { atob('a'); } catch (e) { atob_ = [e instanceof DOMException, e.name, e.code]; }
      return { codes, atob_, consts: [DOMException.INVALID_CHARACTER_ERR, DOMException.prototype.DATA_CLONE_ERR, DOMException.name] };`),
    { codes: [5, 20, 25, 0, 12], atob_: [true, 'InvalidCharacterError', 5], consts: [5, 25, 'DOMException'] },
  );
});

test('Headers: a record is read as WebIDL converts one, null is refused, iterators are WebIDL iterators (Fetch §5.2)', async () => {
  assert.deepEqual(
    await run(`
      const log = [];
      const handler = {};
      for (const k of Object.getOwnPropertyNames(Reflect)) handler[k] = (...a) => { log.push(k + ':' + String(a[1])); return Reflect[k](...a); };
      const h = new Headers(new Proxy({ a: 'b' }, handler));
      const refused = [null, 1, 'x'].map((v) => { try { new Headers(v); return false; } catch (e) { return e instanceof TypeError; } });
      const it = new Headers([['b', '2'], ['a', '1']]).keys();
      const proto = Object.getPrototypeOf(Object.getPrototypeOf(it)) === Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
      return { log, got: h.get('a'), refused, keys: [...it], tag: Object.prototype.toString.call(it), proto };`),
    {
      log: ['get:Symbol(Symbol.iterator)', 'ownKeys:undefined', 'getOwnPropertyDescriptor:a', 'get:a'],
      got: 'b',
      refused: [true, true, true],
      keys: ['a', 'b'],
      tag: '[object Headers Iterator]',
      proto: true,
    },
  );
});

test('Response.error(), url, bodyUsed, byte-stream bodies and unusable bodies (Fetch §5.3, §5.5)', async () => {
  assert.deepEqual(
    await run(`
      const e = Response.error();
      let immutable = false;
      try { e.headers.set('a', 'b'); } catch (x) { immutable = x instanceof TypeError; }
      const empty = new Response(null);
      await empty.text();
      const byob = new Response('hello').body.getReader({ mode: 'byob' });
      const { value } = await byob.read(new Uint8Array(16));
      const cancelled = new Response('x');
      await cancelled.body.cancel();
      let cancelledRejects = false;
      try { await cancelled.text(); } catch (x) { cancelledRejects = x instanceof TypeError; }
      const read = new Response('x');
      await read.text();
      let readerAfter = false;
      try { read.body.getReader(); } catch (x) { readerAfter = x instanceof TypeError; }
      const locked = new ReadableStream();
      locked.getReader();
      let lockedRefused = false;
      try { new Response(locked); } catch (x) { lockedRefused = x instanceof TypeError; }
      const fd = new FormData();
      fd.append('a', 'b');
      const typed = new Response(fd, { headers: { 'content-type': 'test/only' } });
      return { type: e.type, status: e.status, body: e.body, immutable, url: new Response('').url, emptyUsed: empty.bodyUsed,
        byob: new TextDecoder().decode(value), cancelledUsed: cancelled.bodyUsed, cancelledRejects, readerAfter, lockedRefused,
        formType: typed.headers.get('content-type') };`),
    {
      type: 'error',
      status: 0,
      body: null,
      immutable: true,
      url: '',
      emptyUsed: false,
      byob: 'hello',
      cancelledUsed: true,
      cancelledRejects: true,
      readerAfter: true,
      lockedRefused: true,
      formType: 'test/only',
    },
  );
});

test('Event needs a type, CustomEvent carries detail, a listener signal must be an AbortSignal (DOM §2.2, §2.4, §2.7)', async () => {
  assert.deepEqual(
    await run(`
      const throws = (f) => { try { f(); return false; } catch (e) { return e instanceof TypeError; } };
      const c = new CustomEvent('x', { detail: { n: 1 } });
      const t = new EventTarget();
      let got;
      t.addEventListener('x', (ev) => { got = ev.detail; });
      t.dispatchEvent(c);
      return { noType: throws(() => new Event()), detail: got, plain: new CustomEvent('y').detail, nullSignal: throws(() => t.addEventListener('x', () => {}, { signal: null })) };`),
    { noType: true, detail: { n: 1 }, plain: null, nullSignal: true },
  );
});

test('AbortSignal.any(): dependents aborted before any event fires, the source first; onabort sees its signal (DOM §3.2)', async () => {
  assert.deepEqual(
    await run(`
      const c = new AbortController();
      const order = [];
      const a = AbortSignal.any([c.signal]);
      const b = AbortSignal.any([a]); // follows c.signal, the source, not a
      c.signal.addEventListener('abort', () => order.push('source:' + a.aborted + ',' + b.aborted));
      a.onabort = (e) => order.push('a:' + (e.target === a));
      b.addEventListener('abort', () => order.push('b'));
      c.abort('why');
      return { order, reason: b.reason, names: [AbortSignal.name, AbortController.name, EventTarget.name] };`),
    { order: ['source:true,true', 'a:true', 'b'], reason: 'why', names: ['AbortSignal', 'AbortController', 'EventTarget'] },
  );
});

test('structuredClone keeps wrappers, error kinds, Blobs and array properties, refuses URL, moves transferred buffers (HTML §2.7)', async () => {
  assert.deepEqual(
    await run(`
      const arr = [1]; arr.foo = 'bar';
      const c = structuredClone({ b: Object(false), s: Object('x'), n: Object(2), e: new RangeError('r'), arr });
      const blob = structuredClone(new Blob(['hi'], { type: 'text/plain' }));
      let url;
      try { structuredClone(new URL('http://a.test/')); } catch (e) { url = [e instanceof DOMException, e.name]; }
      const buf = new ArrayBuffer(8);
      const moved = structuredClone(new Uint8Array(buf, 2, 3), { transfer: [buf] });
      return { b: c.b instanceof Boolean && c.b.valueOf() === false, s: c.s instanceof String, n: c.n instanceof Number,
        e: [c.e instanceof RangeError, c.e.message], foo: c.arr.foo, blob: [blob instanceof Blob, blob.type, await blob.text()], url,
        moved: [moved.length, moved.byteOffset, buf.byteLength, buf.detached] };`),
    {
      b: true,
      s: true,
      n: true,
      e: [true, 'r'],
      foo: 'bar',
      blob: [true, 'text/plain', 'hi'],
      url: [true, 'DataCloneError'],
      moved: [3, 2, 0, true],
    },
  );
});

test("the streams' readers and controllers are globals; pipeTo's AbortError is a DOMException (Streams §4, §5)", async () => {
  assert.deepEqual(
    await run(`
      const names = ['ReadableByteStreamController', 'ReadableStreamBYOBReader', 'ReadableStreamDefaultReader', 'WritableStreamDefaultWriter', 'TransformStreamDefaultController'].map((n) => typeof globalThis[n]);
      const c = new AbortController();
      c.abort();
      let err;
      try { await new ReadableStream().pipeTo(new WritableStream(), { signal: c.signal }); } catch (e) { err = [e instanceof DOMException, e.name]; }
      return { names, err };`),
    { names: ['function', 'function', 'function', 'function', 'function'], err: [true, 'AbortError'] },
  );
});

test('DecompressionStream checks the gzip (RFC 1952 CRC-32, ISIZE) and zlib (RFC 1950 Adler-32) trailers', async () => {
  const { gzipSync, deflateSync } = await import('node:zlib');
  const gz = [...gzipSync('hello hello hello')];
  const z = [...deflateSync('hello hello hello')];
  const badCrc = [...gz];
  badCrc[gz.length - 8]! ^= 1;
  const badAdler = [...z];
  badAdler[z.length - 1]! ^= 1;
  const cases = {
    gz: ['gzip', gz],
    gzTruncated: ['gzip', gz.slice(0, -1)],
    gzJunk: ['gzip', [...gz, 0]],
    gzBadCrc: ['gzip', badCrc],
    z: ['deflate', z],
    zBadAdler: ['deflate', badAdler],
  };
  assert.deepEqual(
    await run(`
      const cases = ${JSON.stringify(cases)};
      const out = {};
      for (const [k, [format, bytes]] of Object.entries(cases)) {
        try { out[k] = await new Response(new Blob([new Uint8Array(bytes)]).stream().pipeThrough(new DecompressionStream(format))).text(); }
        catch (e) { out[k] = e instanceof TypeError ? 'TypeError' : String(e); }
      }
      return out;`),
    { gz: 'hello hello hello', gzTruncated: 'TypeError', gzJunk: 'TypeError', gzBadCrc: 'TypeError', z: 'hello hello hello', zBadAdler: 'TypeError' },
  );
});

test('URLPattern canonicalizes hostnames and ports with the URL parser and a state override (URLPattern §4.2)', async () => {
  assert.deepEqual(
    await run(`
      // In pattern syntax a backslash escapes and ':' starts a group, so a literal '\\' is written twice.
      const host = (h) => { try { return new URLPattern({ hostname: h }).hostname; } catch (e) { return e.constructor.name; } };
      const port = new URLPattern({ port: '80' });
      return { hosts: ['bad#hostname', 'bad/x', 'bad\\\\\\\\x', 'bad\\nhost', 'bad hostname', 'bad%x', 'bad<x'].map(host),
        ports: ['8\\t0', '80x', '80?x', '81'].map((p) => port.test({ port: p })), bigPort: (() => { try { new URLPattern({ port: '65536' }); return 'ok'; } catch (e) { return e.constructor.name; } })() };`),
    {
      hosts: ['bad', 'bad', 'bad', 'badhost', 'TypeError', 'TypeError', 'TypeError'],
      ports: [true, true, true, false],
      bigPort: 'TypeError',
    },
  );
});

test("URL: a URL parsed again (the isolate's parse cache) is a URL of its own; bases, relative inputs and setters stay apart (URL §6.1)", async () => {
  assert.deepEqual(
    await run(`
      const a = new URL('https://u:p@a.test:8443/x/y?q=1#f');
      a.pathname = '/changed'; a.search = '?s'; a.hash = 'h'; a.username = 'v'; a.port = '9'; a.searchParams.append('k', 'v');
      const b = new URL('https://u:p@a.test:8443/x/y?q=1#f');
      const v6 = new URL('http://[::1]/p'); v6.hostname = '[::2]';
      const opaque = new URL('mailto:a@b.test'); opaque.search = '?x';
      const viaHref = new URL('http://c.test/'); viaHref.href = 'http://d.test/p'; viaHref.pathname = '/q';
      const alone = (input) => { try { return new URL(input).href; } catch (e) { return e.constructor.name; } };
      const relative = alone('/r');
      const setterInput = alone('/changed');
      const withBases = [new URL('/r', 'http://e.test/').href, new URL('/r', 'http://f.test/').href, new URL('s', 'http://e.test/a/').href];
      const relativeAgain = alone('/r');
      const request = new Request('http://g.test/a?b'); const fromRequest = new URL(request.url); fromRequest.pathname = '/z';
      const long = new URL('http://h.test/' + 'x'.repeat(3000)); long.pathname = '/short';
      return { a: a.href, b: b.href, bQuery: [...b.searchParams], v6: [v6.href, new URL('http://[::1]/p').href], opaque: [opaque.href, new URL('mailto:a@b.test').href],
        viaHref: [viaHref.href, new URL('http://d.test/p').href], relative, setterInput, withBases, relativeAgain, request: [request.url, new Request('http://g.test/a?b').url, fromRequest.href],
        long: new URL('http://h.test/' + 'x'.repeat(3000)).pathname.length, canParse: [URL.canParse('/r'), URL.canParse('/r', 'http://e.test/'), URL.parse('http://i.test') === URL.parse('http://i.test')] };`),
    {
      a: 'https://v:p@a.test:9/changed?s=&k=v#h',
      b: 'https://u:p@a.test:8443/x/y?q=1#f',
      bQuery: [['q', '1']],
      v6: ['http://[::2]/p', 'http://[::1]/p'],
      opaque: ['mailto:a@b.test?x', 'mailto:a@b.test'],
      viaHref: ['http://d.test/q', 'http://d.test/p'],
      relative: 'TypeError',
      setterInput: 'TypeError',
      withBases: ['http://e.test/r', 'http://f.test/r', 'http://e.test/a/s'],
      relativeAgain: 'TypeError',
      request: ['http://g.test/a?b', 'http://g.test/a?b', 'http://g.test/z?b'],
      long: 3001,
      canParse: [false, true, false],
    },
  );
});

test("Request: its url is the URL parser's serialization of the input as URL's constructor converts it, and a URL it cannot parse fails as URL's does (Fetch §5.4)", async () => {
  assert.deepEqual(
    await run(`
      const fail = (f) => { try { return f(); } catch (e) { return [e.constructor.name, e.message]; } };
      const inputs = ['HTTP://A.test:80/a/../b?c d#e', 'http://a.test/\\uD800x', 'http://[::1]:8080', 'mailto:x', ' http://a.test/ ', 'nope', 'http://a b/'];
      return inputs.map((i) => [fail(() => new Request(i).url), fail(() => new URL(i).href), fail(() => new Request(new Request(i)).url)]);`),
    [
      ['http://a.test/b?c%20d#e', 'http://a.test/b?c%20d#e', 'http://a.test/b?c%20d#e'],
      ['http://a.test/%EF%BF%BDx', 'http://a.test/%EF%BF%BDx', 'http://a.test/%EF%BF%BDx'],
      ['http://[::1]:8080/', 'http://[::1]:8080/', 'http://[::1]:8080/'],
      ['mailto:x', 'mailto:x', 'mailto:x'],
      ['http://a.test/', 'http://a.test/', 'http://a.test/'],
      ...[['TypeError', 'Invalid URL: nope']].map((e) => [e, e, e]),
      ...[['TypeError', 'Invalid URL: http://a b/']].map((e) => [e, e, e]),
    ],
  );
});

test('Headers: a value loses its leading and trailing HTTP whitespace, and only that (Fetch §2.2.2)', async () => {
  assert.deepEqual(
    await run(`
      const h = new Headers([['a', ' x '], ['b', '\\t\\r\\nx y\\n'], ['c', 'x'], ['d', ''], ['e', '  '], ['f', '\\u00a0x\\u00a0'], ['g', '\\fx\\v']]);
      return [...h];`),
    [
      ['a', 'x'],
      ['b', 'x y'],
      ['c', 'x'],
      ['d', ''],
      ['e', ''],
      ['f', '\u00a0x\u00a0'],
      ['g', '\fx\v'],
    ],
  );
});

test('a handler that returns Response.error() fails the request with a message that says so', async () => {
  const logs: string[] = [];
  await assert.rejects(
    rt.handle(worker('export default { fetch() { return Response.error(); } };'), GET, { log: (e) => logs.push(...e.map((l) => l.message)) }),
    /invalid response/,
  );
  assert.match(logs.join('\n'), /Response\.error\(\) \(a network error\)/);
});

test('TextEncoder.encodeInto writes whole code points only and reports read/written (Encoding §8.2.2)', async () => {
  assert.deepEqual(
    await run(`
      const enc = new TextEncoder();
      const small = new Uint8Array(5);
      const a = enc.encodeInto('a€😀', small); // 1 + 3 bytes fit; the 4-byte emoji does not
      const b = enc.encodeInto('\\ud800x', new Uint8Array(8)); // a lone surrogate is U+FFFD
      let refused = false;
      try { enc.encodeInto('a', new Uint16Array(2)); } catch (e) { refused = e instanceof TypeError; }
      return { a, bytes: [...small], b, refused };`),
    { a: { read: 2, written: 4 }, bytes: [0x61, 0xe2, 0x82, 0xac, 0], b: { read: 2, written: 4 }, refused: true },
  );
});

test('key usages are KeyUsage enum values, repeats dropped (WebIDL enum conversion; WebCrypto §14.3)', async () => {
  assert.deepEqual(
    await run(`
      const k = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt', 'encrypt', 'decrypt', 'encrypt', 'decrypt', 'encrypt', 'decrypt', 'encrypt', 'decrypt']);
      let bogus;
      try { await crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['encrypt', 'bogus']); } catch (e) { bogus = e.constructor.name; }
      let wrong;
      try { await crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['sign']); } catch (e) { wrong = e.name; }
      return { usages: k.usages, bogus, wrong };`),
    { usages: ['encrypt', 'decrypt'], bogus: 'TypeError', wrong: 'SyntaxError' },
  );
});

test("URL: the isolate's parser (whatwg-url with its host checks as loops, not regular expressions) parses as the package does (URL §4.3)", async () => {
  const inputs = [
    'http://dynamic/',
    'http://a.test/x\ty\nz\r',
    '\thttp://a.test/\n',
    'ht\ntp://a.test/',
    'http://192.168.0.1/',
    'http://0300.0250.0.1/',
    'http://0xc0.0xa8.0.1/',
    'http://0XC0A80001/',
    'http://3232235521/',
    'http://192.168.1/',
    'http://1.2.3.4./',
    'http://1.2.3.08/',
    'http://0x/',
    'http://0x1g/',
    'http://09/',
    'http://08.1/',
    'http://1.2.3.4.5/',
    'http://999999999999/',
    'http://a.1/',
    'http://a.0x1/',
    'http://a.09/',
    'http://123/',
    'http://./',
    'http://../',
    'http://a..b/',
    'http://ex%41mple.test/',
    'http://bücher.test/',
    'http://ＥＸＡＭＰＬＥ.test/',
    'http://a\u00ad.test/',
    'http://[::ffff:1.2.3.4]/',
    'http://[1:2::3]:80/',
    'https://u:p@h.test:8443/p?q#f',
    'file:///etc/x',
    'non-special://a.1/x',
  ];
  const usm = createRequire(import.meta.url)('whatwg-url') as { URL: new (input: string) => { href: string } };
  const expected = inputs.map((input) => {
    try {
      return new usm.URL(input).href;
    } catch (e) {
      return (e as Error).constructor.name;
    }
  });
  assert.deepEqual(
    await run(`return ${JSON.stringify(inputs)}.map((input) => { try { return new URL(input).href; } catch (e) { return e.constructor.name; } });`),
    expected,
  );
});
