/**
 * A parent's fetch() of a loaded Worker goes down the plain request path (runtime/worker-loader.ts
 * #fetchChild), not over a Workers RPC session: the loaded Worker's Response crosses the host as a routed
 * request's does, and its parent reads it as a fetch()'s. The loaded Worker is hostile: a Response with
 * headers past the bounds, a body that never ends, a body that fails half-way and goes on after, a 101,
 * must not harm its parent or another tenant (the bystander), and the Worker holds no more than before
 * (no parent binding: env and globals as its code named them, whichever path the call took).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { deployWorker, fetchHost, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const HOSTILE = `let pulls = 0;
let cancelled = false;
const enc = new TextEncoder();
export default { async fetch(req, env) {
  const op = new URL(req.url).pathname.slice(1);
  if (op === 'status') return Response.json({ pulls, cancelled, env: Object.keys(env).sort().join(','), globals: Object.getOwnPropertyNames(globalThis).filter((n) => n.startsWith('__cordon')).join(',') });
  if (op === 'big-header') return new Response('x', { headers: { 'x-big': 'h'.repeat(70 * 1024) } });
  if (op === 'many-headers') { const h = new Headers(); for (let i = 0; i < 300; i++) h.append('x-' + i, 'v'); return new Response('x', { headers: h }); }
  if (op === 'fat-head') { const h = new Headers(); for (let i = 0; i < 100; i++) h.append('x-' + i, 'v'.repeat(60 * 1024)); return new Response('x', { headers: h }); }
  if (op === 'endless') {
    const chunk = new Uint8Array(64 * 1024).fill(101);
    return new Response(new ReadableStream({ pull(c) { pulls++; c.enqueue(chunk); }, cancel() { cancelled = true; } }));
  }
  if (op === 'fails-midway') {
    let n = 0;
    return new Response(new ReadableStream({ pull(c) {
      if (n++ === 0) return c.enqueue(enc.encode('abc'));
      c.error(new Error('midway'));
      try { c.enqueue(enc.encode('after the error')); } catch {}
    } }));
  }
  if (op === 'upgrade') { const [client] = Object.values(new WebSocketPair()); return new Response(null, { status: 101, webSocket: client }); }
  return new Response('?', { status: 404 });
} }`;

const PARENT = `const HOSTILE = ${JSON.stringify(HOSTILE)};
const worker = (env) => env.LOADER.get('hostile', () => ({ compatibilityDate: '2026-11-01', mainModule: 'm.js', modules: { 'm.js': HOSTILE }, globalOutbound: null }));
export default { async fetch(req, env) {
  const op = new URL(req.url).pathname.slice(1);
  const call = (path) => worker(env).getEntrypoint().fetch('https://loaded.example/' + path);
  try {
    if (op === 'own') return new Response('parent ok ' + env.STORE.sql.exec('SELECT 1 AS one').one().one);
    if (op === 'status') return call('status');
    if (op === 'big-header' || op === 'many-headers' || op === 'fat-head' || op === 'upgrade') {
      const r = await call(op);
      return new Response('answered ' + r.status + ' ' + [...r.headers].length);
    }
    if (op === 'read-some') {
      // Reads 1 MiB of a body that never ends, then lets go of it.
      const reader = (await call('endless')).body.getReader();
      let got = 0;
      while (got < 1024 * 1024) got += (await reader.read()).value.byteLength;
      await reader.cancel();
      return new Response('read ' + got);
    }
    if (op === 'unread') { await call('endless'); return new Response('not read'); }
    if (op === 'pass-on') return call('endless');
    if (op === 'fails-midway') {
      const reader = (await call('fails-midway')).body.getReader();
      const dec = new TextDecoder();
      let text = '';
      try { for (;;) { const { done, value } = await reader.read(); if (done) break; text += dec.decode(value); } return new Response('ended: ' + text); }
      catch (e) { return new Response('read ' + JSON.stringify(text) + ', then ' + e.name); }
    }
  } catch (e) {
    return new Response('parent caught: ' + e.message, { status: 502 });
  }
  return new Response('?', { status: 404 });
} }`;

const BYSTANDER = `export default { fetch() { return new Response('bystander ok'); } }`;

describe("a loaded Worker's hostile Response, down the plain request path", () => {
  let mesh: TestMesh;
  const host = (path: string) => fetchHost(mesh, 'host.acme.workers.localhost', path);
  const text = async (path: string) => {
    const r = await host(path);
    return `${r.status} ${await r.text()}`;
  };
  const unharmed = async () => {
    assert.equal(await text('/own'), '200 parent ok 1');
    const r = await fetchHost(mesh, 'calm.other.workers.localhost', '/');
    assert.equal(`${r.status} ${await r.text()}`, '200 bystander ok');
  };
  const status = async () => JSON.parse((await text('/status')).slice(4)) as { pulls: number; cancelled: boolean; env: string; globals: string };

  before(async () => {
    mesh = await startTestMesh();
    const deploy = (name: string, tenant: string, content: string, more: object = {}) =>
      deployWorker(mesh, { name, tenant, mainModule: 'w.js', modules: [{ name: 'w.js', type: 'esm', content }], ...more });
    // The parent: a storage binding of its own the loaded Worker must not get, its limits the loaded Worker's at most.
    const bindings = [
      { type: 'loader', name: 'LOADER' },
      { type: 'storage', name: 'STORE' },
    ];
    await deploy('host', 'acme', PARENT, { bindings, limits: { cpuMs: 2000, wallMs: 20_000, memoryMb: 64 } });
    await deploy('calm', 'other', BYSTANDER);
    await waitFor('both workers', async () => ((await host('/own')).status === 200 ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('it holds only what its code named: no parent binding, no host global', async () => {
    const s = await status();
    assert.equal(s.env, '', 'not STORE, not LOADER');
    assert.equal(s.globals, '');
  });

  test('headers past the bounds (a value over 64 KiB, 300 headers, a 6 MiB head) are refused to the parent, not handed on', async () => {
    for (const op of ['big-header', 'many-headers', 'fat-head'])
      assert.match(await text(`/${op}`), /^502 parent caught: the called worker failed: worker returned an invalid response/, op);
    await unharmed();
  });

  test('a 101 with a WebSocket it made is refused: no socket crosses to the parent', async () => {
    assert.match(await text('/upgrade'), /^502 parent caught: the called worker failed: worker returned an invalid response/);
    await unharmed();
  });

  test('a body that never ends is pulled only as the parent reads, and cancelled when it stops', async () => {
    const before = (await status()).pulls;
    assert.equal(await text('/read-some'), '200 read 1048576');
    const s = await waitFor('the cancel', async () => {
      const now = await status();
      return now.cancelled ? now : undefined;
    });
    // 16 chunks read; the host pulls ahead at most a few buffers (of up to 256 KiB) before the parent stops.
    assert.ok(s.pulls - before < 16 + 4 * 4 + 4, `${s.pulls - before} chunks made for 16 read`);
    await unharmed();
  });

  test('a body that never ends, not read, is cancelled when the parent’s request ends', async () => {
    assert.equal(await text('/unread'), '200 not read');
    const before = (await status()).pulls;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await status()).pulls - before <= 1, 'nothing pulls it any more');
    await unharmed();
  });

  test('a body that never ends, passed on by the parent, stops when the client goes', async () => {
    // The client reads 2 MiB, then goes away.
    const got = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: Number(mesh.env.CORDON_HTTP_PORT), path: '/pass-on', headers: { host: 'host.acme.workers.localhost' } },
        (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.byteLength;
            if (n >= 2 * 1024 * 1024) {
              req.destroy();
              resolve(n);
            }
          });
          res.on('error', () => {});
          res.on('end', () => reject(new Error('the endless body ended')));
        },
      );
      req.on('error', () => {}).end();
    });
    assert.ok(got >= 2 * 1024 * 1024);
    await waitFor('the pulls to stop', async () => {
      const a = (await status()).pulls;
      await new Promise((res) => setTimeout(res, 200));
      return (await status()).pulls - a <= 1 ? true : undefined;
    });
    await unharmed();
  });

  test('a body that fails half-way reaches the parent as what it sent, then an error; what it enqueues after is not seen', async () => {
    assert.equal(await text('/fails-midway'), '200 read "abc", then TypeError');
    await unharmed();
  });
});
