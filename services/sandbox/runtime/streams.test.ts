/**
 * The stream globals of Workers in the isolate: CompressionStream/DecompressionStream (compatible with
 * zlib both ways), TextEncoderStream/TextDecoderStream, IdentityTransformStream, FixedLengthStream and
 * Blob.stream(); and what hostile uses get: a decompression bomb stops at the worker's own memory
 * limit, bad formats, chunks and data are TypeErrors, and replaced globals do not reach them.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateRawSync, deflateSync, gunzipSync, gzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { WorkerRuntime, WorkerError } from './index.ts';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import type { WireRequest } from '../../../schemas/http.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());
const MiB = 1024 * 1024;
const quiet = { log: () => {} };
const post = (path: string, body: Uint8Array): WireRequest => ({ method: 'POST', url: `http://x.test${path}`, headers: [], body });

/** A worker answering with JSON of what each probe returned or threw. */
function probes(body: string, limits: Partial<WorkerBundle['limits']> = {}): WorkerBundle {
  return worker(
    `export default { async fetch(request) {
       const out = {};
       const t = async (name, f) => { try { out[name] = await f() } catch (e) { out[name] = e.name + ': ' + e.message } };
       ${body}
       return Response.json(out) } }`,
    { limits: { cpuMs: 5000, wallMs: 20_000, ...limits } },
  );
}
async function json(bundle: WorkerBundle, req: WireRequest = GET): Promise<Record<string, unknown>> {
  const res = await rt.handle(bundle, req, quiet);
  return JSON.parse(text(res.body)) as Record<string, unknown>;
}

/** A response's body, whole or streamed. */
async function bytesOf(res: { body: Uint8Array | null; stream?: ReadableStream<Uint8Array> }): Promise<Uint8Array> {
  if (res.body) return res.body;
  return new Uint8Array(await new Response(res.stream ?? null).arrayBuffer());
}

const compressor = worker(
  `export default { async fetch(request) {
     const [, op, format] = new URL(request.url).pathname.split('/');
     const s = op === 'c' ? new CompressionStream(format) : new DecompressionStream(format);
     return new Response(request.body.pipeThrough(s));
   } }`,
  { limits: { cpuMs: 5000, wallMs: 20_000 } },
);

test('CompressionStream and DecompressionStream speak gzip, deflate and deflate-raw as zlib does, both ways', async () => {
  const input = new TextEncoder().encode('hello, compressed world. '.repeat(5000));
  const codecs = { gzip: [gzipSync, gunzipSync], deflate: [deflateSync, inflateSync], 'deflate-raw': [deflateRawSync, inflateRawSync] } as const;
  for (const [format, [compress, decompress]] of Object.entries(codecs)) {
    const packed = await rt.handle(compressor, post(`/c/${format}`, input), quiet);
    const body = await bytesOf(packed);
    assert.ok(body.byteLength < input.byteLength / 10, `${format} compresses`);
    assert.deepEqual(new Uint8Array(decompress(body)), input, `zlib reads what ${format} CompressionStream wrote`);
    const unpacked = await rt.handle(compressor, post(`/d/${format}`, new Uint8Array(compress(input))), quiet);
    const out = await bytesOf(unpacked);
    assert.deepEqual(out, input, `${format} DecompressionStream reads what zlib wrote`);
  }
});

test("a gzip bomb read whole stops at the worker's memory limit; read chunk by chunk it streams; bystanders are unharmed", async () => {
  const bomb = new Uint8Array(gzipSync(Buffer.alloc(256 * MiB)));
  const hoarder = worker(
    `export default { async fetch(request) {
      if (request.method === 'GET') return new Response('still here');
      const all = await new Response(request.body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
      return new Response(String(all.byteLength)) } }`,
    { limits: { memoryMb: 32, cpuMs: 20_000, wallMs: 60_000 } },
  );
  const bystander = worker(`export default { fetch() { return new Response('bystander ok') } }`);
  const [outcome, other] = await Promise.all([
    rt.handle(hoarder, post('/', bomb), quiet).then(
      () => 'answered',
      (e: unknown) => e,
    ),
    rt.handle(bystander, GET, quiet),
  ]);
  // Either the isolate is stopped at its limit, or its ArrayBuffer allocator (charged to the same
  // limit) refuses first and the worker sees a RangeError: the worker's limit either way.
  assert.ok(outcome instanceof WorkerError, String(outcome));
  assert.ok(
    outcome.limit === 'memory' || /RangeError: Array buffer allocation failed/.test(outcome.detail),
    `stopped by the worker's memory limit: ${outcome.detail}`,
  );
  assert.equal(text(other.body), 'bystander ok');
  assert.equal(text((await rt.handle(hoarder, GET, quiet)).body), 'still here', 'the worker is started again for its next request');

  const small = new Uint8Array(gzipSync(Buffer.alloc(32 * MiB)));
  const counter = probes(
    `await t('count', async () => {
      let n = 0, chunks = 0, biggest = 0;
      for await (const c of request.body.pipeThrough(new DecompressionStream('gzip'))) { n += c.byteLength; chunks++; biggest = Math.max(biggest, c.byteLength); }
      return [n, chunks > 1, biggest <= 5 * 1024 * 1024] });`,
    { memoryMb: 32, cpuMs: 20_000, wallMs: 60_000 },
  );
  assert.deepEqual((await json(counter, post('/', small))).count, [32 * MiB, true, true], 'read as it comes, the same bomb fits in a small worker');
});

test('bad formats, chunks and data are TypeErrors; replaced globals do not reach the stream classes', async () => {
  const out = await json(
    probes(`
      const run = async (s, chunks) => { const w = s.writable.getWriter(); const r = new Response(s.readable).arrayBuffer(); for (const c of chunks) w.write(c).catch(() => {}); w.close().catch(() => {}); return (await r).byteLength };
      await t('format', () => new CompressionStream('br'));
      await t('dformat', () => new DecompressionStream({ toString() { return 'zstd' } }));
      await t('string', async () => new TextDecoder().decode(await new Response((await new Response(new Blob(['a', 'b']).stream().pipeThrough(new CompressionStream('gzip'))).blob()).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer()));
      await t('stringChunk', () => run(new CompressionStream('gzip'), ['text']));
      await t('number', () => run(new CompressionStream('gzip'), [42]));
      await t('corrupt', () => run(new DecompressionStream('gzip'), [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])]));
      const whole = new Uint8Array(await new Response(new Blob(['abc'.repeat(100)]).stream().pipeThrough(new CompressionStream('deflate'))).arrayBuffer());
      await t('truncated', () => run(new DecompressionStream('deflate'), [whole.subarray(0, whole.length - 3)]));
      globalThis.TransformStream = function () { throw new Error('patched') };
      ArrayBuffer.isView = () => false;
      await t('patched', async () => new TextDecoder().decode(await new Response(new Blob(['abc'.repeat(100)]).stream().pipeThrough(new CompressionStream('gzip')).pipeThrough(new DecompressionStream('gzip'))).arrayBuffer()).length);
    `),
  );
  assert.match(String(out.format), /^TypeError: CompressionStream: the format must be/);
  assert.match(String(out.dformat), /^TypeError: DecompressionStream: the format must be/);
  assert.equal(out.string, 'ab');
  assert.ok(typeof out.stringChunk === 'number' && out.stringChunk > 20, 'a string chunk is compressed as its UTF-8, as workerd does');
  assert.match(String(out.number), /^TypeError: CompressionStream takes ArrayBuffer, ArrayBufferView or string chunks \(got number\)/);
  assert.match(String(out.corrupt), /^TypeError: DecompressionStream: /);
  assert.match(String(out.truncated), /^TypeError: DecompressionStream: /);
  assert.equal(out.patched, 300, 'the classes use the built-ins captured before tenant code');
});

test('TextEncoderStream and TextDecoderStream keep characters split across chunks whole', async () => {
  const out = await json(
    probes(`
      const bytes = new TextEncoder().encode('héllo → 😀 wörld');
      const chunks = Array.from(bytes, (b) => new Uint8Array([b]));
      const src = new ReadableStream({ start(c) { for (const x of chunks) c.enqueue(x); c.close() } });
      await t('decoded', async () => { let s = ''; for await (const part of src.pipeThrough(new TextDecoderStream())) s += part; return s });
      await t('roundtrip', async () => {
        const strings = new ReadableStream({ start(c) { c.enqueue('a\\ud83d'); c.enqueue('\\ude00b'); c.close() } });
        return new TextDecoder().decode(await new Response(strings.pipeThrough(new TextEncoderStream())).arrayBuffer());
      });
      await t('fatal', async () => {
        const bad = new ReadableStream({ start(c) { c.enqueue(new Uint8Array([0x61, 0xff])); c.close() } });
        for await (const _ of bad.pipeThrough(new TextDecoderStream('utf-8', { fatal: true }))) {}
      });
      await t('label', () => new TextDecoderStream('latin1').encoding);
      await t('unknown', () => new TextDecoderStream('klingon'));
      await t('props', () => { const d = new TextDecoderStream('utf-8', { fatal: true }); return [d.encoding, d.fatal, d.ignoreBOM, new TextEncoderStream().encoding] });
    `),
  );
  assert.equal(out.decoded, 'héllo → 😀 wörld');
  assert.equal(out.roundtrip, 'a😀b');
  assert.match(String(out.fatal), /^TypeError: /);
  assert.equal(out.label, 'windows-1252');
  assert.match(String(out.unknown), /^RangeError: /);
  assert.deepEqual(out.props, ['utf-8', true, false, 'utf-8']);
});

test('IdentityTransformStream passes bytes, FixedLengthStream refuses any other length, Blob.stream() reads the blob', async () => {
  const out = await json(
    probes(`
      const through = async (s, parts) => new TextDecoder().decode(await new Response(new Blob(parts).stream().pipeThrough(s)).arrayBuffer());
      await t('identity', () => through(new IdentityTransformStream(), ['abc', 'def']));
      await t('identityString', async () => { const s = new IdentityTransformStream(); const read = s.readable.getReader().read(); await s.writable.getWriter().write('x'); return read });
      await t('tdsString', async () => { const s = new TextDecoderStream(); const read = s.readable.getReader().read(); s.writable.getWriter().write('x').catch(() => {}); return read });
      await t('fixed', () => through(new FixedLengthStream(6), ['abc', 'def']));
      await t('short', () => through(new FixedLengthStream(7), ['abc', 'def']));
      await t('long', () => through(new FixedLengthStream(5), ['abc', 'def']));
      await t('negative', () => new FixedLengthStream(-1));
      await t('blob', async () => { const b = new Blob(['x', new Uint8Array([0x79])]); const r = b.stream().getReader(); const first = await r.read(); return [first.value.length, (await r.read()).done, await b.text()] });
      await t('empty', async () => (await new Blob([]).stream().getReader().read()).done);
    `),
  );
  assert.equal(out.identity, 'abcdef');
  assert.deepEqual(out.identityString, { value: { 0: 120 }, done: false }, 'a string goes through as its UTF-8, as in workerd');
  assert.match(String(out.tdsString), /^TypeError: TextDecoderStream takes ArrayBuffer or ArrayBufferView chunks \(got string\)/);
  assert.equal(out.fixed, 'abcdef');
  assert.match(String(out.short), /^TypeError: FixedLengthStream: the stream ended after 6 of the 7 bytes/);
  assert.match(String(out.long), /^TypeError: FixedLengthStream: more bytes were written than the 5/);
  assert.match(String(out.negative), /^TypeError: /);
  assert.deepEqual(out.blob, [2, true, 'xy']);
  assert.equal(out.empty, true);
});
