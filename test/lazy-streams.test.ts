/**
 * Issue 17 (density): the Streams standard (web-streams-polyfill) is a lazy unit, not part of the start-up
 * snapshot every isolate is made from (services/sandbox/runtime/bootstrap/streams.ts). A worker that never
 * makes a stream never loads it — a hello-world, a body read whole or answered whole, Workers RPC to a
 * Dynamic Worker; each way to a first stream loads it once and gives the same classes as before; the
 * globals are plain data properties once read. And a worker that replaces the built-ins the polyfill names
 * (Promise's `then`, Number.isFinite, TypeError, …), before its first stream or after, does not steer its
 * streams, while a neighbour's streams in the same process are unaffected either way.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { scriptsCompiled } from './helpers/isolate-copies.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one.
const { WorkerRuntime } = await import('../services/sandbox/runtime/index.ts');
const { GET, answer: answerIn, worker } = await import('../services/sandbox/runtime/testing/fixtures.ts');
type Bundle = ReturnType<typeof worker>;

const rt = new WorkerRuntime({ spares: 0 });
after(() => rt.dispose());

const loads = () => scriptsCompiled('cordon:streams');

const answer = (bundle: Bundle, req = GET) => answerIn(rt, bundle, req);

/** Whether the isolate's ReadableStream global is still the accessor that loads the streams. */
const STILL_LAZY = `(typeof Object.getOwnPropertyDescriptor(globalThis, 'ReadableStream').get === 'function')`;

test('a worker that makes no stream never loads the streams', async () => {
  // The process's first worker also makes the code caches, in an isolate of their own that rehearses Workers
  // RPC with a request body (a stream): once per process, not per worker.
  await answer(worker(`export default { fetch() { return new Response('first') } }`));
  const before = loads();
  const hello = worker(`export default { fetch() { return new Response('hello') } }`);
  const echo = worker(`export default { async fetch(req) {
    const body = await req.text();
    const blob = await new Blob([body, '!']).text();
    const form = new FormData(); form.append('a', 'b');
    const parsed = await new Response(form).formData();
    return Response.json({ body, blob, form: parsed.get('a'), lazy: ${STILL_LAZY}, clone: structuredClone({ a: [1] }) });
  } }`);
  const parent = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
        modules: { 'w.js': 'export default { fetch(req) { return new Response("dynamic " + req.method) } }' } });
      const res = await w.getEntrypoint().fetch('http://dynamic/', { method: 'POST', body: 'x' });
      return new Response((await res.text()) + ' ' + ${STILL_LAZY});
    } }`,
    { bindings: [{ type: 'loader', name: 'LOADER' }] },
  );
  for (let i = 0; i < 2; i++) {
    assert.equal(await answer(hello), 'hello');
    const post = { method: 'POST', url: 'http://example.test/', headers: [['content-type', 'text/plain']], body: new TextEncoder().encode('ping') };
    assert.deepEqual(JSON.parse(await answer(echo, post as typeof GET)), { body: 'ping', blob: 'ping!', form: 'b', lazy: true, clone: { a: [1] } });
    assert.equal(await answer(parent), 'dynamic POST true');
  }
  assert.equal(loads() - before, 0, 'the streams unit was compiled for workers that make no stream');
});

test('each way to a first stream loads the streams once, and gives the same classes', async () => {
  const doors: Record<string, string> = {
    global: `new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('ok')); c.close(); } })`,
    'request body': `req.body`,
    'blob stream': `new Blob(['ok']).stream()`,
    compression: `new Blob(['ok']).stream().pipeThrough(new CompressionStream('gzip')).pipeThrough(new DecompressionStream('gzip'))`,
    'text encoder stream': `new Blob(['ok']).stream().pipeThrough(new TextDecoderStream()).pipeThrough(new TextEncoderStream())`,
    'identity transform': `new Blob(['ok']).stream().pipeThrough(new IdentityTransformStream())`,
    'response body': `new Response('ok').body`,
  };
  for (const [door, expr] of Object.entries(doors)) {
    const before = loads();
    const w = worker(`export default { async fetch(req) {
      const lazyBefore = ${STILL_LAZY};
      const stream = ${expr};
      const text = await new Response(stream).text();
      const isStream = stream instanceof ReadableStream;
      const d = Object.getOwnPropertyDescriptor(globalThis, 'ReadableStream');
      return Response.json({ lazyBefore, text, isStream, data: 'value' in d && d.writable && d.enumerable && d.configurable,
        names: [ReadableStream, WritableStream, TransformStream, ReadableStreamDefaultReader, WritableStreamDefaultWriter].map((c) => c.name),
        reader: new Response('x').body.getReader() instanceof ReadableStreamDefaultReader, tag: Object.prototype.toString.call(stream) });
    } }`);
    const post = { method: 'POST', url: 'http://example.test/', headers: [], body: new TextEncoder().encode('ok') };
    assert.deepEqual(
      JSON.parse(await answer(w, post as typeof GET)),
      {
        lazyBefore: true,
        text: 'ok',
        isStream: true,
        data: true,
        names: ['ReadableStream', 'WritableStream', 'TransformStream', 'ReadableStreamDefaultReader', 'WritableStreamDefaultWriter'],
        reader: true,
        tag: '[object ReadableStream]',
      },
      door,
    );
    // Its second request uses what the first loaded.
    await answer(w, post as typeof GET);
    assert.equal(loads() - before, 1, `${door}: the streams unit compiled once`);
  }
});

test('crypto.DigestStream is a WritableStream once made, subclassable, and needs `new`', async () => {
  const w = worker(`export default { async fetch() {
    const lazyBefore = ${STILL_LAZY};
    const noNew = (() => { try { crypto.DigestStream('SHA-256'); return 'called' } catch (e) { return e.name } })();
    class Mine extends crypto.DigestStream { mine() { return 'mine' } }
    const d = new Mine('SHA-256');
    const w = d.getWriter(); await w.write(new TextEncoder().encode('abc')); await w.close();
    return Response.json({ lazyBefore, noNew, mine: d.mine(), isWritable: d instanceof WritableStream, isDigest: d instanceof crypto.DigestStream,
      parent: Object.getPrototypeOf(crypto.DigestStream) === WritableStream, digest: [...new Uint8Array(await d.digest)].slice(0, 4).join('.'),
      unknown: (() => { try { new crypto.DigestStream('SHA-3'); return 'made' } catch (e) { return e.name } })() });
  } }`);
  assert.deepEqual(JSON.parse(await answer(w)), {
    lazyBefore: true,
    noNew: 'TypeError',
    mine: 'mine',
    isWritable: true,
    isDigest: true,
    parent: true,
    digest: '186.120.22.191',
    unknown: 'NotSupportedError',
  });
});

test('a stream global written or deleted before its first read is the worker’s, and loads nothing', async () => {
  const before = loads();
  const w = worker(`globalThis.ReadableStream = 'mine'; delete globalThis.WritableStream;
  export default { fetch() {
    return Response.json({ rs: ReadableStream, ws: 'WritableStream' in globalThis, d: Object.getOwnPropertyDescriptor(globalThis, 'ReadableStream').writable });
  } }`);
  assert.deepEqual(JSON.parse(await answer(w)), { rs: 'mine', ws: false, d: true });
  assert.equal(loads() - before, 0);
});

/** Uses streams the ways that reach what the polyfill keeps as it loads; answers with what it saw. */
const USE_STREAMS = `
  const rs = new ReadableStream({ type: 'bytes', autoAllocateChunkSize: 16, pull(c) { c.byobRequest.view[0] = 7; c.byobRequest.respond(1); c.close(); } });
  const bytes = [...new Uint8Array(await new Response(rs).arrayBuffer())];
  const counted = new ReadableStream({ start(c) { c.enqueue('a'); c.enqueue('b'); c.close(); } }, new CountQueuingStrategy({ highWaterMark: 4 }));
  const chunks = []; for await (const x of counted) chunks.push(x);
  const ac = new AbortController(); ac.abort();
  const aborted = await new ReadableStream().pipeTo(new WritableStream(), { signal: ac.signal }).then(() => 'piped', (e) => e);
  const locked = new ReadableStream(); locked.getReader();
  let second; try { locked.getReader(); } catch (e) { second = e; }
  const result = { bytes, chunks, abortName: aborted.name, abortIsDomException: aborted instanceof OriginalDOMException,
    locked: Object.prototype.toString.call(second) + ' ' + (Object.getPrototypeOf(second) === OriginalTypeError.prototype) };`;

/**
 * Replaces built-ins the polyfill names with wrappers that count their use (`calls`): those it keeps as it loads
 * (Promise's `then`, Number.isFinite, …) and one it reads each time it throws (TypeError).
 */
const PATCH = `
  const calls = {};
  const count = (k) => { calls[k] = (calls[k] ?? 0) + 1; };
  const then = Promise.prototype.then;
  Promise.prototype.then = function (...a) { count('then'); return then.apply(this, a); };
  for (const [o, k] of [[Number, 'isFinite'], [Number, 'isNaN'], [Math, 'trunc']]) { const f = o[k]; o[k] = (...a) => (count(k), f(...a)); }
  globalThis.DOMException = class Fake extends Error {};
  globalThis.TypeError = new Proxy(OriginalTypeError, { construct: (t, a, nt) => (count('new TypeError'), Reflect.construct(t, a, nt)) });`;

test('a worker that replaces the built-ins the streams name, before its first stream or after, does not steer them; a neighbour is unaffected', async () => {
  // The same replacements after the streams are loaded: what the polyfill still reaches of them then (Promise
  // resolution's own lookups of \`then\`), it reached from the snapshot too.
  const control = worker(`const OriginalDOMException = DOMException, OriginalTypeError = TypeError;
  export default { async fetch() { void ReadableStream; ${PATCH} ${USE_STREAMS} Promise.prototype.then = then; return Response.json({ ...result, calls }); } }`);
  const tamper = worker(`const OriginalDOMException = DOMException, OriginalTypeError = TypeError;
  export default { async fetch() { ${PATCH} ${USE_STREAMS} Promise.prototype.then = then; return Response.json({ ...result, calls }); } }`);
  const neighbour = worker(`const OriginalDOMException = DOMException, OriginalTypeError = TypeError;
  export default { async fetch() { ${USE_STREAMS} return Response.json(result); } }`);
  const expected = { bytes: [7], chunks: ['a', 'b'], abortName: 'AbortError', abortIsDomException: true, locked: '[object Error] true' };
  const [seen, a, b] = await Promise.all([answer(control), answer(tamper), answer(neighbour)]);
  const { calls, ...rest } = JSON.parse(seen) as Record<string, unknown>;
  assert.deepEqual(rest, expected);
  // A built-in it reads when it runs is the snapshot's too, also when replaced after the streams were loaded.
  assert.equal((calls as Record<string, number>)['new TypeError'], undefined);
  assert.deepEqual(JSON.parse(a), { ...expected, calls });
  assert.deepEqual(JSON.parse(b), expected);
});
