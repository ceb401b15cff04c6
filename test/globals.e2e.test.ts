/**
 * The globals through the real mesh, deployed with the CLI: a worker compresses what it is sent with
 * CompressionStream and decompresses with DecompressionStream, and zlib agrees both ways; HTMLRewriter
 * rewrites a page it is sent as it streams; TextDecoder reads Shift_JIS and GBK; crypto.DigestStream
 * hashes a request body as it arrives.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const WORKER = `export default { async fetch(request) {
  const url = new URL(request.url);
  const format = url.searchParams.get('format') ?? 'gzip';
  if (request.method !== 'POST') return new Response('ready');
  if (url.pathname.endsWith('/rewrite'))
    return new HTMLRewriter().on('a[href]', { element(e) { e.setAttribute('href', 'https://cdn.test' + e.getAttribute('href')) } }).transform(new Response(request.body, { headers: { 'content-type': 'text/html' } }));
  if (url.pathname.endsWith('/decode')) return new Response(new TextDecoder(url.searchParams.get('label')).decode(await request.arrayBuffer()));
  if (url.pathname.endsWith('/events')) {
    const es = new EventSource(url.searchParams.get('from'));
    const got = [];
    await new Promise((r) => {
      es.onmessage = (e) => got.push(e.data + '#' + e.lastEventId);
      es.onerror = () => { got.push('error:' + es.readyState); es.close(); r(); };
    });
    return Response.json(got);
  }
  if (url.pathname.endsWith('/digest')) {
    const d = new crypto.DigestStream('SHA-256');
    await request.body.pipeTo(d);
    return new Response([...new Uint8Array(await d.digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
  }
  const s = url.pathname.endsWith('/c') ? new CompressionStream(format) : new DecompressionStream(format);
  return new Response(request.body.pipeThrough(s));
} };`;

describe('globals through the mesh', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-globals-'));
  const post = async (path: string, body: Uint8Array) => {
    const r = await fetch(`${mesh.httpUrl}/gz/${path}`, { method: 'POST', body });
    assert.equal(r.status, 200, await r.clone().text());
    return new Uint8Array(await r.arrayBuffer());
  };
  // A server-sent events origin on loopback: reachable only because the operator grants it (--origin).
  let seen: string[] = [];
  const sse = createServer((req, res) => {
    seen.push(`${req.url} ${req.headers.accept} ${req.headers['last-event-id'] ?? '-'}`);
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(req.headers['last-event-id'] ? '' : 'data: hello\n\nid: 1\ndata: again\n\n');
  });
  let sseUrl = '';
  before(async () => {
    writeFileSync(join(dir, 'worker.js'), WORKER);
    await new Promise<void>((r) => sse.listen(0, '127.0.0.1', r));
    sseUrl = `http://127.0.0.1:${(sse.address() as AddressInfo).port}`;
    mesh = await startTestMesh();
    // HTMLRewriter's first use in a sandbox process compiles lol-html's wasm on the worker's CPU (docs/compatibility.md).
    const d = await mesh.cli(['deploy', join(dir, 'worker.js'), '--name', 'gz', '--route', '*/gz/*', '--cpu-ms', '10000', '--origin', sseUrl]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor(
      'the worker',
      async () =>
        (await fetch(`${mesh.httpUrl}/gz/ready`).then(
          (r) => r.text(),
          () => '',
        )) === 'ready' || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
    sse.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('gzip and deflate-raw round trips agree with zlib', async () => {
    const input = new TextEncoder().encode('the same line again, '.repeat(20_000));
    const packed = await post('c?format=gzip', input);
    assert.ok(packed.byteLength < input.byteLength / 10);
    assert.deepEqual(new Uint8Array(gunzipSync(packed)), input);
    assert.deepEqual(await post('d?format=gzip', new Uint8Array(gzipSync(input))), input);
    assert.deepEqual(new Uint8Array(inflateRawSync(await post('c?format=deflate-raw', input))), input);
  });

  test('HTMLRewriter rewrites a page as it is sent, TextDecoder reads legacy encodings, DigestStream hashes a body as it arrives', async () => {
    const page = `<html><body>${'<a href="/p">x</a>'.repeat(2000)}</body></html>`;
    const rewritten = new TextDecoder().decode(await post('rewrite', new TextEncoder().encode(page)));
    assert.equal(rewritten, page.replaceAll('href="/p"', 'href="https://cdn.test/p"'));
    assert.equal(new TextDecoder().decode(await post('decode?label=shift_jis', new Uint8Array([0x93, 0xfa, 0x96, 0x7b]))), '日本');
    assert.equal(new TextDecoder().decode(await post('decode?label=gbk', new Uint8Array([0xd6, 0xd0, 0xce, 0xc4]))), '中文');
    const data = new Uint8Array(3 * 1024 * 1024).fill(7);
    assert.equal(new TextDecoder().decode(await post('digest', data)), createHash('sha256').update(data).digest('hex'));
  });

  test('EventSource reads server-sent events through the worker fetch (egress policy applies); the end of the stream is CONNECTING with an error', async () => {
    seen = [];
    const r = await fetch(`${mesh.httpUrl}/gz/events?from=${encodeURIComponent(`${sseUrl}/stream`)}`, { method: 'POST' });
    assert.equal(r.status, 200);
    const got = (await r.json()) as string[];
    assert.deepEqual(got.slice(0, 2), ['hello#', 'again#1']);
    assert.equal(got[2], 'error:0', 'the stream ended: CONNECTING again, with an error event');
    assert.equal(seen[0], '/stream text/event-stream -');
    // A private address the operator did not grant is refused by egress: no connection is made.
    seen = [];
    const denied = await fetch(`${mesh.httpUrl}/gz/events?from=${encodeURIComponent('http://127.0.0.2:9/stream')}`, { method: 'POST' });
    assert.deepEqual(await denied.json(), ['error:0']);
  });
});
