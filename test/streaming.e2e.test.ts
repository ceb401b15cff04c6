/** Response bodies streamed from the worker to the client through the real mesh, chunk by chunk. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('streamed responses', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
    assert.equal((await mesh.cli(['deploy', 'examples/stream/index.ts', '--name', 'stream', '--route', '*/stream*', '--wall-ms', '3000'])).code, 0);
    await waitFor('the stream worker', async () => ((await fetch(`${mesh.httpUrl}/stream?n=1`)).status === 200) || undefined);
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

  test('a client that goes away mid-stream does not hurt the sandbox; a worker streaming past its wall limit is cut', async () => {
    const ac = new AbortController();
    const res = await fetch(`${mesh.httpUrl}/stream?n=50&ms=100`, { signal: ac.signal });
    await res.body!.getReader().read();
    ac.abort();
    assert.equal(await (await fetch(`${mesh.httpUrl}/stream?n=2&ms=1`)).text(), 'chunk 1\nchunk 2\n');
    const long = await fetch(`${mesh.httpUrl}/stream?n=100&ms=100`);
    await assert.rejects(long.text(), 'the connection is cut, not ended as if complete');
    await waitFor('the log line', async () => (/wall time limit of 3000 ms/.test((await mesh.cli(['logs', 'stream'])).stdout) ? true : undefined));
  });
});
