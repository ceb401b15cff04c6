/**
 * fetch() response bodies stream from the origin through egress into the worker as they arrive
 * (issue 13): a download far bigger than the worker's memory, read chunk by chunk; an endless event
 * stream whose first events arrive and whose cancellation reaches the origin; EventSource; a streamed
 * body the cache may keep is still cached. (The byte limit and the cache's bound: services/egress/fetcher.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const MiB = 1024 * 1024;

/** Writes `total` bytes in 64 KiB chunks as the connection takes them (so the origin is pulled, not flooded). */
async function sendBytes(res: ServerResponse, total: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 97);
  for (let sent = 0; sent < total && !res.destroyed; sent += chunk.length) {
    if (!res.write(chunk))
      await new Promise<void>((resolve) => {
        const go = () => (res.off('drain', go).off('close', go), resolve());
        res.on('drain', go).on('close', go);
      });
  }
  res.end();
}

describe('fetch() response bodies stream through egress', () => {
  let mesh: TestMesh;
  let origin: { port: number; hits: string[]; disconnects: string[]; close(): void };
  const call = async (path: string, query: Record<string, string>) => {
    const res = await fetch(`${mesh.httpUrl}/streams/${path}?${new URLSearchParams(query)}`);
    const text = await res.text();
    if (res.status !== 200) assert.fail(`${res.status}: ${text}`);
    return JSON.parse(text) as Record<string, unknown>;
  };
  const at = (path: string) => `http://127.0.0.1:${origin.port}${path}`;

  before(async () => {
    const hits: string[] = [];
    const disconnects: string[] = [];
    const s = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/big') {
        res.writeHead(200, { 'content-length': String(50 * MiB) });
        return void sendBytes(res, 50 * MiB);
      }
      if (req.url === '/unknown-length') return void sendBytes(res, 3 * MiB); // chunked: no length declared
      if (req.url === '/cached-big') {
        res.writeHead(200, { 'cache-control': 'public, max-age=60' });
        return void sendBytes(res, 2 * MiB);
      }
      if (req.url?.startsWith('/sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        let n = 0;
        const tick = setInterval(() => res.write(`id: ${++n}\ndata: event ${n}\n\n`), 20);
        res.write(`data: event 0\n\n`);
        // Bounded: an origin nobody disconnects from stops by itself after 30 s.
        const stop = setTimeout(() => res.end(), 30_000);
        res.on('close', () => {
          clearInterval(tick);
          clearTimeout(stop);
          disconnects.push(req.url ?? '');
        });
        return;
      }
      res.end('ok');
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    origin = { port: (s.address() as { port: number }).port, hits, disconnects, close: () => (s.closeAllConnections(), s.close()) };
    mesh = await startTestMesh();
    const r = await mesh.cli([
      'deploy',
      'test/fixtures/egress-stream/index.ts',
      '--name',
      'streams',
      '--route',
      '*/streams/*',
      '--origin',
      `http://127.0.0.1:${origin.port}`,
      '--memory-mb',
      '16',
      // The bound under test is memory; copying 50 MiB in takes CPU time, which a loaded machine stretches.
      '--cpu-ms',
      '20000',
      '--wall-ms',
      '20000',
    ]);
    assert.equal(r.code, 0, r.stderr);
    // The same worker under a short wall-time limit: reading an endless stream cannot outlast it.
    const short = await mesh.cli([
      'deploy',
      'test/fixtures/egress-stream/index.ts',
      '--name',
      'short',
      '--route',
      '*/short/*',
      '--origin',
      `http://127.0.0.1:${origin.port}`,
      '--wall-ms',
      '1500',
    ]);
    assert.equal(short.code, 0, short.stderr);
    await waitFor('the worker', async () => (await fetch(`${mesh.httpUrl}/streams/pass?url=${encodeURIComponent(at('/'))}`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
  });

  test('a download bigger than the worker memory is read chunk by chunk', async () => {
    // 50 MiB through a worker whose isolate may hold 16 MB: held whole anywhere in the isolate, it would not fit.
    const r = await call('download', { url: at('/big') });
    assert.deepEqual({ status: r.status, bytes: r.bytes }, { status: 200, bytes: 50 * MiB }, JSON.stringify(r));
    assert.ok((r.chunks as number) > 50, `in many chunks (${r.chunks})`);
    const unknown = await call('download', { url: at('/unknown-length') });
    assert.deepEqual({ status: unknown.status, bytes: unknown.bytes }, { status: 200, bytes: 3 * MiB }, JSON.stringify(unknown));
  });

  test('an endless event stream: the first events arrive, and cancelling the reader disconnects the origin', async () => {
    const before = origin.disconnects.length;
    const r = await call('events', { url: at('/sse?cancel'), n: '3' });
    assert.deepEqual(r.events, ['data: event 0', 'id: 1\ndata: event 1', 'id: 2\ndata: event 2'], JSON.stringify(r));
    await waitFor('the origin to see the disconnect', async () => origin.disconnects.slice(before).includes('/sse?cancel') || undefined);
  });

  test('a worker reading an endless stream is stopped at its wall-time limit, and the origin is disconnected', async () => {
    const res = await fetch(`${mesh.httpUrl}/short/events?${new URLSearchParams({ url: at('/sse?forever'), n: '1000000' })}`);
    assert.equal(res.status, 503, await res.clone().text());
    assert.match(await res.text(), /wall time limit of 1500 ms/);
    await waitFor('the origin to see the disconnect', async () => origin.disconnects.includes('/sse?forever') || undefined);
  });

  test('EventSource in a worker receives the events of a loopback origin', async () => {
    const r = await call('event-source', { url: at('/sse?source'), n: '4' });
    assert.deepEqual(r.data, ['event 0', 'event 1', 'event 2', 'event 3'], JSON.stringify(r));
    await waitFor('the origin to see EventSource close', async () => origin.disconnects.includes('/sse?source') || undefined);
  });

  test('a fetched body passed through as the worker response streams to the client', async () => {
    const res = await fetch(`${mesh.httpUrl}/streams/pass?url=${encodeURIComponent(at('/unknown-length'))}`);
    assert.equal(res.status, 200);
    assert.equal((await res.arrayBuffer()).byteLength, 3 * MiB);
  });

  test('a streamed body the cache may keep is kept: the second fetch never reaches the origin', async () => {
    const first = await call('download', { url: at('/cached-big') });
    assert.equal(first.bytes, 2 * MiB, JSON.stringify(first));
    const hits = origin.hits.filter((h) => h === '/cached-big').length;
    const second = await call('download', { url: at('/cached-big') });
    assert.equal(second.bytes, 2 * MiB, JSON.stringify(second));
    assert.equal(origin.hits.filter((h) => h === '/cached-big').length, hits, 'served from the egress cache');
  });
});
