/**
 * node:zlib's Brotli, bundled as `deploy` bundles it and run in a real isolate: what the worker compresses
 * the host's node:zlib decompresses and the reverse, at several sizes and qualities, one shot, with
 * callbacks and as streams; Node's errors for bad input, `maxOutputLength`, and a decompression bomb
 * stopped by the worker's memory limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { runCompatWorker } from './testing.ts';

/** Runs `body` (the inside of a fetch handler, with `zlib` = node:zlib and `V` = the vectors) in a fresh worker. */
async function inWorker(body: string, vectors: unknown = {}, memoryMb = 128): Promise<{ status: number; out: any }> {
  const res = await runCompatWorker(
    `import zlib from 'node:zlib'; import { Buffer } from 'node:buffer';
     const V = ${JSON.stringify(vectors)};
     const fails = (f) => { try { f(); return 'accepted' } catch (e) { return (e.code ?? e.name) + ': ' + e.message } };
     const drain = (s, input) => new Promise((res, rej) => { const parts = []; s.on('data', (c) => parts.push(c)); s.on('end', () => res(Buffer.concat(parts))); s.on('error', rej);
       for (let i = 0; i < input.length; i += 1000) s.write(input.subarray(i, i + 1000)); s.end(); });
     export default { async fetch() { const out = await (async () => { ${body} })(); return Response.json(out) } };`,
    { cpuMs: 20_000, wallMs: 60_000, memoryMb },
  );
  return { status: res.status, out: res.status === 200 ? JSON.parse(res.body) : res.body };
}

/** Text-like and incompressible bytes, deterministic. */
function sample(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = i % 3 === 0 ? x >>> 24 : 97 + ((i >> 4) % 26);
  }
  return b;
}

test('Brotli round-trips with the host both ways, one shot, callbacks and streams, at several sizes and qualities', async () => {
  const sizes = [0, 1, 1000, 70_000, 1_100_000];
  const qualities = [0, 5, 11];
  const inputs = sizes.map((s, i) => sample(s, i + 1));
  // What the host compressed, the worker decompresses (one shot and streamed); the worker compresses with each quality.
  const vectors = inputs.map((b, i) => ({
    input: b.toString('base64'),
    host: zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: qualities[i % 3]! } }).toString('base64'),
  }));
  const { status, out } = await inWorker(
    `const r = [];
     for (const v of V) {
       const input = Buffer.from(v.input, 'base64'), host = Buffer.from(v.host, 'base64');
       const q = (x) => ({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: x } });
       r.push({
         fromHost: zlib.brotliDecompressSync(host).equals(input),
         fromHostStream: (await drain(zlib.createBrotliDecompress(), host)).equals(input),
         fromHostCallback: (await new Promise((res) => zlib.brotliDecompress(host, (e, b) => res(e ? String(e) : b)))).equals(input),
         mine: [0, 5, 11].map((x) => zlib.brotliCompressSync(input, q(x)).toString('base64')),
         mineStream: (await drain(zlib.createBrotliCompress(q(4)), input)).toString('base64'),
         mineCallback: (await new Promise((res) => zlib.brotliCompress(input, q(9), (e, b) => res(e ? String(e) : b)))).toString('base64'),
       });
     }
     return r;`,
    vectors,
    // Quality 11 over a megabyte takes ~70 MiB of wasm memory, which may be at most half the worker's limit.
    256,
  );
  assert.equal(status, 200, out);
  for (const [i, r] of (out as any[]).entries()) {
    const what = `input of ${sizes[i]} bytes`;
    assert.deepEqual([r.fromHost, r.fromHostStream, r.fromHostCallback], [true, true, true], what);
    for (const c of [...r.mine, r.mineStream, r.mineCallback]) assert.ok(zlib.brotliDecompressSync(Buffer.from(c, 'base64')).equals(inputs[i]!), what);
  }
  // At Node's defaults (quality 11, window 22) the output is Node's, byte for byte.
  const hello = Buffer.from('hello hello hello brotli '.repeat(100));
  const same = await inWorker(`return zlib.brotliCompressSync(Buffer.from(V, 'base64')).toString('base64')`, hello.toString('base64'));
  assert.equal(same.out, zlib.brotliCompressSync(hello).toString('base64'));
});

test("Brotli refuses as Node does: corrupt or cut input, bad parameters, past maxOutputLength; CompressionStream('brotli') stays refused", async () => {
  const big = zlib.brotliCompressSync(Buffer.alloc(1 << 20));
  const { status, out } = await inWorker(
    `const big = Buffer.from(V.big, 'base64'), V2 = V.text;
     return {
       corrupt: fails(() => zlib.brotliDecompressSync(Buffer.from('garbage!!'))),
       cut: fails(() => zlib.brotliDecompressSync(big.subarray(0, big.length - 2))),
       param: fails(() => zlib.brotliCompressSync('x', { params: { 99: 1 } })),
       value: fails(() => zlib.brotliCompressSync('x', { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 'high' } })),
       max: fails(() => zlib.brotliDecompressSync(big, { maxOutputLength: 1000 })),
       streamMax: await new Promise((res) => { const s = zlib.createBrotliDecompress({ maxOutputLength: 5000 }); s.on('data', () => {}); s.on('error', (e) => res(e.code)); s.on('end', () => res('ended')); s.end(big); }),
       tooBig: await (async () => {
         // A stream made before the trap cannot go on on the codec made after it.
         const before = zlib.createBrotliDecompress();
         const r = fails(() => zlib.brotliCompressSync(Buffer.from(V2, 'base64')));
         const after = await new Promise((res) => { before.on('error', (e) => res(e.message)); before.on('data', () => {}); before.on('end', () => res('ended')); before.end(zlib.brotliCompressSync('x', { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } })); });
         return [r, after];
       })(),
       after: zlib.brotliDecompressSync(zlib.brotliCompressSync('still works')).toString(),
       compressionStream: fails(() => new CompressionStream('brotli')),
     };`,
    { big: big.toString('base64'), text: sample(1_100_000, 9).toString('base64') },
  );
  assert.equal(status, 200, out);
  // In a 128 MB worker the default quality's window does not fit: a clear error, and the next call works.
  assert.match(out.tooBig[0], /^RangeError: Brotli compression needs more memory than this worker's memory limit leaves it/);
  assert.equal(out.tooBig[1], 'Brotli: this stream ended when its codec ran out of memory in another call');
  assert.match(out.corrupt, /Decompression failed/);
  assert.equal(out.cut, 'Z_BUF_ERROR: unexpected end of file');
  assert.equal(out.param, 'ERR_BROTLI_INVALID_PARAM: 99 is not a valid Brotli parameter');
  assert.match(out.value, /^ERR_INVALID_ARG_TYPE/);
  assert.equal(out.max, 'ERR_BUFFER_TOO_LARGE: Cannot create a Buffer larger than 1000 bytes');
  assert.equal(out.streamMax, 'ERR_BUFFER_TOO_LARGE');
  assert.equal(out.after, 'still works');
  assert.match(out.compressionStream, /TypeError/);
});

test("a Brotli bomb stops at the worker's memory limit, not the host's", async () => {
  // 256 MiB of zeros compresses to a few hundred bytes; a 64 MB worker cannot hold what it expands to.
  const bomb = (() => {
    const s = zlib.createBrotliCompress();
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < 256; i++) s.write(zeros);
    return new Promise<Buffer>((res) => s.end(() => res(Buffer.concat(parts))));
  })();
  const bytes = await bomb;
  assert.ok(bytes.length < 4096);
  const bombed = await inWorker(`return zlib.brotliDecompressSync(Buffer.from(V, 'base64')).length`, bytes.toString('base64'), 64).catch(
    (e: Error & { detail?: string }) => e,
  );
  assert.ok(bombed instanceof Error, `the worker decompressed ${JSON.stringify(bombed)} bytes`);
  assert.match(String(bombed.detail), /RangeError: Array buffer allocation failed/);
  // The runtime and the next worker are unharmed.
  const next = await inWorker(`return zlib.brotliDecompressSync(zlib.brotliCompressSync('fine')).toString()`);
  assert.deepEqual(next, { status: 200, out: 'fine' });
});
