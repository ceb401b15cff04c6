/**
 * Bodies streamed both ways through the real mesh (client ↔ ingress ↔ sandbox ↔ isolate), chunk by chunk;
 * a body held in full over 8 MiB streams out too; a client going away is no worker exception.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('streamed responses', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ CORDON_MAX_REQUEST_MB: '24' });
    await mesh.cliOk(['deploy', 'examples/stream/index.ts', '--name', 'stream', '--route', '*/stream*', '--wall-ms', '8000']);
    await waitFor('the stream worker', async () => (await fetch(`${mesh.httpUrl}/stream?n=1`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('the client gets the first chunk long before the worker writes the last', async () => {
    const res = await fetch(`${mesh.httpUrl}/stream?n=5&ms=200`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), null, 'no length: the body is streamed');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    let firstAt = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      firstAt ||= performance.now();
      text += decoder.decode(value, { stream: true });
    }
    const lastAt = performance.now();
    assert.equal(text, 'chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n');
    assert.ok(lastAt - firstAt >= 500, `the first chunk came ${(lastAt - firstAt).toFixed(0)} ms before the end: not buffered`);
  });

  /** A request body of `mib` MiB, produced as the connection takes it. */
  const upload = (mib: number) => {
    let sent = 0;
    const chunk = new Uint8Array(256 * 1024).fill(97);
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= mib * 4) return c.close();
        sent++;
        c.enqueue(chunk);
      },
    });
  };

  test('a request body bigger than any whole body reaches the worker as a stream; echoed back, it streams out again', async () => {
    const counted = await fetch(`${mesh.httpUrl}/stream/count`, { method: 'POST', body: upload(20), duplex: 'half' } as RequestInit);
    assert.equal(counted.status, 200);
    const { bytes, chunks } = (await counted.json()) as { bytes: number; chunks: number };
    assert.equal(bytes, 20 * 1024 * 1024, 'over the 8 MiB a whole body may have');
    assert.ok(chunks > 1, 'in many chunks, as it arrived');
    const echoed = await fetch(`${mesh.httpUrl}/stream/echo`, { method: 'PUT', body: upload(12), duplex: 'half' } as RequestInit);
    assert.equal((await echoed.arrayBuffer()).byteLength, 12 * 1024 * 1024);
    const small = await fetch(`${mesh.httpUrl}/stream/echo`, { method: 'POST', body: 'a small body travels whole' });
    assert.equal(await small.text(), 'a small body travels whole');
  });

  test('a streamed request body over the limit is cut off with 413', async () => {
    const res = await fetch(`${mesh.httpUrl}/stream/count`, { method: 'POST', body: upload(30), duplex: 'half' } as RequestInit).catch((e: Error) => e);
    if (res instanceof Error) return assert.fail(`no answer: ${res.message}`);
    assert.equal(res.status, 413);
    assert.match(await res.text(), /Request body too large/);
    assert.equal(res.headers.get('connection'), 'close', 'the unread rest of the body must not sit in front of the next request on this connection');
    assert.equal((await fetch(`${mesh.httpUrl}/stream?n=1`)).status, 200, 'the next request is served');
  });

  test('a client that goes away mid-stream does not hurt the sandbox; a worker streaming past its wall limit is cut', async () => {
    const ac = new AbortController();
    const res = await fetch(`${mesh.httpUrl}/stream?n=50&ms=100`, { signal: ac.signal });
    await res.body!.getReader().read();
    ac.abort();
    const named = (what: string) => (e: Error & { cause?: Error }) => assert.fail(`${what}: ${e.message} (${e.cause?.message})`);
    const next = await fetch(`${mesh.httpUrl}/stream?n=2&ms=1`).catch(named('the request after the abort'));
    assert.equal(await next.text(), 'chunk 1\nchunk 2\n');
    const long = await fetch(`${mesh.httpUrl}/stream?n=100&ms=100`).catch(named('the request cut by its wall limit'));
    assert.equal(long.status, 200, 'the status line went out before the cut');
    await assert.rejects(long.text(), 'the connection is cut, not ended as if complete');
    const log = await waitFor('the log line', async () => {
      const out = (await mesh.cli(['logs', 'stream'])).stdout;
      return /wall time limit of 8000 ms/.test(out) ? out : undefined;
    });
    assert.doesNotMatch(log, /ERR_INVALID_STATE|Controller is already closed/, 'a client going away is not a worker exception');
  });

  test('a body the worker holds in full, over 8 MiB, streams out whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-held-'));
    writeFileSync(
      join(dir, 'held.js'),
      `export default { fetch() { const b = new Uint8Array(20 * 1024 * 1024).fill(97); b[b.length - 1] = 98; return new Response(b) } }`,
    );
    const r = await mesh.cli(['deploy', join(dir, 'held.js'), '--name', 'held', '--route', '*/held*', '--cpu-ms', '5000']);
    assert.equal(r.code, 0, r.stderr);
    const res = await waitFor('the held worker', async () => {
      const x = await fetch(`${mesh.httpUrl}/held`);
      return x.status === 200 ? x : (await x.arrayBuffer(), undefined);
    });
    const body = new Uint8Array(await res.arrayBuffer());
    assert.equal(body.byteLength, 20 * 1024 * 1024);
    assert.equal(body[body.length - 1], 98);
    rmSync(dir, { recursive: true, force: true });
  });
});
