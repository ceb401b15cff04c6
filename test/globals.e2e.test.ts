/**
 * The stream globals through the real mesh: a worker compresses what it is sent with
 * CompressionStream and decompresses with DecompressionStream, and zlib agrees both ways.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync, inflateRawSync } from 'node:zlib';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const WORKER = `export default { async fetch(request) {
  const url = new URL(request.url);
  const format = url.searchParams.get('format') ?? 'gzip';
  if (request.method !== 'POST') return new Response('ready');
  const s = url.pathname.endsWith('/c') ? new CompressionStream(format) : new DecompressionStream(format);
  return new Response(request.body.pipeThrough(s));
} };`;

describe('CompressionStream through the mesh', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-globals-'));
  const post = async (path: string, body: Uint8Array) => {
    const r = await fetch(`${mesh.httpUrl}/gz/${path}`, { method: 'POST', body });
    assert.equal(r.status, 200, await r.clone().text());
    return new Uint8Array(await r.arrayBuffer());
  };
  before(async () => {
    writeFileSync(join(dir, 'worker.js'), WORKER);
    mesh = await startTestMesh();
    const d = await mesh.cli(['deploy', join(dir, 'worker.js'), '--name', 'gz', '--route', '*/gz/*']);
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
});
