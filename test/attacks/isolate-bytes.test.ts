/**
 * Bytes across the host↔isolate boundary (capability calls carry them as ArrayBuffers beside their text),
 * through a real mesh. A tenant hands KV, fetch() and the boundary forged bytes: detached buffers and
 * views, a Uint8Array subclass lying about its buffer and length, proxies of buffers and views, a value
 * past the limit, a `{"$b": …}` marker in its own data. Each gets a clean error or is carried as exactly
 * the bytes it really holds; the host serves the attacker again after, and a bystander tenant's worker
 * keeps its own value and is served throughout. console values that fight being printed (a getter with a
 * side effect, a throwing proxy, a chain deeper than any stack, a huge Map) cost the attacker one bounded
 * line each, formatted by the sandbox from the isolate's bounded description.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const WORKER = `
const MiB = 1024 * 1024;
const attempt = async (f) => { try { return 'allowed: ' + String(await f()) } catch (e) { return 'refused: ' + e.name + ': ' + e.message } };
const detach = (b) => (structuredClone(b, { transfer: [b] }), b);
class Liar extends Uint8Array {
  get buffer() { return new ArrayBuffer(64 * MiB) }
  get byteLength() { return 64 * MiB }
  get byteOffset() { return 0 }
}
const stored = async (env, key) => { const v = await env.KV.get(key, 'arrayBuffer'); return v === null ? 'nothing' : [...new Uint8Array(v)].join(',') };
export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname;
    if (path.endsWith('/own')) {
      if (req.method === 'PUT') await env.KV.put('own', new Uint8Array(2 * MiB).fill(42));
      const v = new Uint8Array(await env.KV.get('own', 'arrayBuffer'));
      return Response.json({ length: v.length, all42: v.every((x) => x === 42) });
    }
    if (path.endsWith('/console')) {
      // Values that fight being printed: a getter with a side effect, a proxy that throws, a chain deeper
      // than any stack, a huge Map, an array past 4 billion, a self-referencing tower.
      globalThis.touched = 0;
      let deep = {};
      for (let i = 0; i < 100000; i++) deep = { d: deep };
      const big = new Map();
      for (let i = 0; i < 100000; i++) big.set(i, { i });
      const tower = []; tower.push(tower, tower);
      console.log({ get g() { globalThis.touched++; return 1 } });
      console.log(new Proxy({}, { ownKeys() { throw new Error('no keys for you') } }));
      console.log(deep, big, Object.assign([], { length: 2 ** 32 - 1 }), tower);
      console.log('touched', globalThis.touched);
      return new Response('logged');
    }
    if (!path.endsWith('/probe')) return new Response('ok');
    const out = {};
    out.detachedBuffer = await attempt(() => env.KV.put('a', detach(new ArrayBuffer(16))));
    out.detachedView = await attempt(() => { const b = new ArrayBuffer(16); const v = new Uint8Array(b, 4, 8); detach(b); return env.KV.put('b', v) });
    out.proxiedBuffer = await attempt(() => env.KV.put('c', new Proxy(new ArrayBuffer(16), {})));
    out.proxiedView = await attempt(() => env.KV.put('d', new Proxy(new Uint8Array(16), {})));
    out.liar = await attempt(async () => (await env.KV.put('e', new Liar([1, 2, 3])), stored(env, 'e')));
    out.liarInStream = await attempt(async () => {
      const s = new ReadableStream({ start(c) { c.enqueue(new Liar([4, 5])); c.close() } });
      return (await env.KV.put('f', s), stored(env, 'f'));
    });
    out.oversized = await attempt(() => env.KV.put('g', new Uint8Array(25 * MiB + 1)));
    out.marker = await attempt(async () => {
      await env.KV.put('h', JSON.stringify({ $b: 0 }), { metadata: { $b: 99 } });
      const { value, metadata } = await env.KV.getWithMetadata('h');
      return value + ' ' + JSON.stringify(metadata);
    });
    out.fetchBody = await attempt(() => fetch('http://127.0.0.1:1/', { method: 'POST', body: new Proxy(new ArrayBuffer(8), {}) }));
    out.resizable = await attempt(async () => {
      const b = new ArrayBuffer(4, { maxByteLength: 64 });
      new Uint8Array(b).set([7, 8, 9, 10]);
      return (await env.KV.put('i', new Uint8Array(b, 1, 2)), stored(env, 'i'));
    });
    return Response.json(out);
  },
};`;

describe('bytes across the isolate boundary: forged, detached and oversized buffers', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-isolate-bytes-'));
  const get = (tenant: string, path: string, method = 'GET') => fetchHost(mesh, `${tenant}.example`, `/bytes/${path}`, { method });
  before(async () => {
    mesh = await startTestMesh();
    writeFileSync(join(dir, 'index.js'), WORKER);
    for (const tenant of ['evil', 'acme']) {
      writeFileSync(
        join(dir, 'wrangler.json'),
        JSON.stringify({
          name: 'bytes',
          main: 'index.js',
          compatibility_date: '2025-06-01',
          routes: [`${tenant}.example/bytes/*`],
          kv_namespaces: [{ binding: 'KV', id: 'values' }],
          limits: { cpu_ms: 3000 },
        }),
      );
      const r = await mesh.cli(['deploy', '--tenant', tenant], dir);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('both workers', async () => ((await get('evil', 'x')).status === 200 && (await get('acme', 'x')).status === 200) || undefined);
    const own = await get('acme', 'own', 'PUT');
    assert.deepEqual(await own.json(), { length: 2 * 1024 * 1024, all42: true });
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each forged buffer gets a clean error or is carried as the bytes it holds; the attacker and the bystander are served after', async () => {
    const res = await get('evil', 'probe');
    const body = await res.text();
    assert.equal(res.status, 200, body);
    const out = JSON.parse(body) as Record<string, string>;
    for (const k of ['detachedBuffer', 'detachedView', 'proxiedBuffer']) assert.match(out[k]!, /^refused: TypeError: /, `${k}: ${out[k]}`);
    assert.match(out.proxiedView!, /^refused: TypeError: KV put\(\) accepts/, 'a proxy of a view is not a view');
    assert.equal(out.liar, 'allowed: 1,2,3', "a subclass's lying getters are not asked: its real 3 bytes are stored");
    assert.equal(out.liarInStream, 'allowed: 4,5');
    assert.match(out.oversized!, /^refused: RangeError: KV PUT failed: 413 Value length of 26214401 exceeds limit/);
    assert.equal(out.marker, 'allowed: {"$b":0} {"$b":99}', "a byte marker in the tenant's own data stays data");
    assert.match(out.fetchBody!, /^refused: TypeError: /);
    assert.equal(out.resizable, 'allowed: 8,9');
    assert.equal((await get('evil', 'x')).status, 200, 'the attacker is served again');
    const own = await get('acme', 'own');
    assert.deepEqual(await own.json(), { length: 2 * 1024 * 1024, all42: true }, "the bystander's value is its own and whole");
  });

  test('console values that fight being printed cost the attacker one bounded line each; getters are not called; the bystander is served', async () => {
    assert.equal((await get('evil', 'console')).status, 200);
    const lines = await waitFor('the console lines', async () => {
      const out = (await mesh.cli(['logs', 'evil/bytes'])).stdout.split('\n').filter(Boolean);
      const messages = out.map((l) => (JSON.parse(l) as { message: string }).message);
      const at = messages.indexOf('{ g: [Getter] }');
      return at >= 0 && messages.length >= at + 4 ? messages.slice(at, at + 4) : undefined;
    });
    assert.match(lines[1]!, /^\[a console line that could not be printed: Error: no keys for you/);
    assert.ok(lines[2]!.length <= 64 * 1024);
    // The Map's first 100 entries only: the sandbox rebuilds no more than the isolate describes (docs/compatibility.md).
    assert.match(lines[2]!, /^\{ d: \{ d: \{ d: \[Object\] \} \} \} Map\(100\) \{/);
    assert.match(lines[2]!, / \[ <4294967295 empty items> \] /);
    assert.match(lines[2]!, /<ref \*1> \[ \[Circular \*1\], \[Circular \*1\] \]$/);
    assert.equal(lines[3], 'touched 0');
    const own = await get('acme', 'own');
    assert.deepEqual(await own.json(), { length: 2 * 1024 * 1024, all42: true });
  });
});
