/**
 * Issue 14, item 3: Dynamic Workers (worker_loaders) as a boundary. A loaded Worker holds only what
 * its parent passed: with `globalOutbound: null` it reaches nothing (not the Internet, not the host,
 * not its parent's bindings, not another loaded Worker, not the props behind the stubs it holds);
 * with a gateway, every fetch is seen by the gateway and its allow-list holds; one that spins or
 * allocates is stopped at its own limit while its parent and another tenant keep serving, and its
 * limit hits count against its parent (quarantine moves the parent); its code is never on disk. A
 * tenant that tampers with built-ins in its parent and in a loaded Worker before the Workers RPC library
 * loads there (the code caches every isolate's RPC compiles from are made once, before any tenant runs)
 * steers only its own isolates: another tenant's loaded Worker answers RPC as in a clean sandbox; one
 * that tampers with what sends its answer's bytes inside the RPC message (not as a stream) changes
 * nothing of what its parent receives.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NO_GLOBAL_OUTBOUND } from '../../services/sandbox/runtime/abi.ts';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const PARENT = `import { WorkerEntrypoint } from 'cloudflare:workers';
const seen = [];
export class Gateway extends WorkerEntrypoint {
  async fetch(req) {
    const host = new URL(req.url).hostname;
    seen.push(this.ctx.props.app + ' ' + req.method + ' ' + req.url);
    if (!this.ctx.props.allow.includes(host)) return new Response('blocked ' + host, { status: 403 });
    return new Response('gateway answered ' + host);
  }
}
export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }

const SEALED = \`export default { async fetch(req, env) {
  const out = {};
  const t = async (k, f) => { try { out[k] = 'reached: ' + String(await f()); } catch (e) { out[k] = 'refused: ' + e.message; } };
  const q = new URL(req.url).searchParams;
  await t('internet', () => fetch('https://example.com/').then((r) => r.status));
  await t('host', () => fetch('http://127.0.0.1:' + q.get('port') + '/healthz').then((r) => r.status));
  await t('cache', () => caches.default.match('https://example.com/'));
  await t('props', () => env.API.ctx());
  out.connect = typeof connect + ' ' + typeof globalThis.connect;
  out.envKeys = Object.keys(env).sort().join(',');
  out.api = await env.API.hello();
  out.apiShape = JSON.stringify(env.API) + ' ' + Object.keys(env.API).length;
  out.hostGlobals = Object.getOwnPropertyNames(globalThis).filter((n) => n.startsWith('__cordon')).join(',');
  out.sibling = String(globalThis.leftBySibling);
  globalThis.leftBySibling = 'MARK';
  out.marker = q.get('marker');
  return Response.json(out);
} }\`;

const OUTBOUND = \`export default { async fetch(req) {
  const r = await fetch(new URL(req.url).searchParams.get('to'), { method: 'POST', body: 'x' });
  return new Response(r.status + ' ' + await r.text());
} }\`;

// Built-ins the RPC library and the init half call, wrapped so that a call through them is seen (and marked).
function tamper() {
  globalThis.steered = new Set();
  globalThis.leftByTenant = 'MARK';
  for (const [o, k] of [[Array.prototype, 'push'], [Array.prototype, 'map'], [JSON, 'stringify'], [JSON, 'parse'], [Promise.prototype, 'then'], [Object, 'keys'], [Map.prototype, 'set'], [Function.prototype, 'bind']]) {
    const f = o[k];
    o[k] = function (...a) { globalThis.steered.add(k); return Reflect.apply(f, this, a); };
  }
}

// (A byteLength getter reporting 0 would also empty the worker's own streamed answer: only tried on a small one.)
const INLINE = \`export default { fetch(req) {
  const size = Number(new URL(req.url).searchParams.get('size'));
  const answer = new Response('x'.repeat(size));
  const Body = Object.getPrototypeOf(Response);
  try { Body.takeBytes = () => new Uint8Array(1 << 20).fill(65); Body.holdsBytes = () => true; } catch {}
  if (size < 1024) try { Object.defineProperty(Object.getPrototypeOf(Uint8Array.prototype), 'byteLength', { get() { return 0; }, configurable: true }); } catch {}
  return answer;
} }\`;

const RPC_WORKER = (tamperHere) => \`import { WorkerEntrypoint } from 'cloudflare:workers';
\${tamperHere ? '(' + tamperHere + ')();' : ''}
export class Echo extends WorkerEntrypoint { echo(v) { return { v, n: v.a.length, seen: String(globalThis.leftByTenant), steered: globalThis.steered ? 'yes' : 'no' }; } }
export default { fetch(req) { return new Response('rpc ' + new URL(req.url).pathname + ' ' + String(globalThis.leftByTenant)); } }\`;

const load = (env, id, modules, extra = {}) => env.LOADER.get(id, () => ({ compatibilityDate: '2026-11-01', mainModule: 'm.js', modules: { 'm.js': modules }, ...extra }));

export default { async fetch(req, env, ctx) {
  const url = new URL(req.url);
  const op = url.pathname.slice(1);
  const run = async (w, path = '/') => w.getEntrypoint().fetch('https://loaded.example' + path + url.search);
  try {
    if (op === 'sealed') {
      // Code made from the request: it is in no bundle, so the only place it could be on disk is where the loader put it.
      const code = SEALED.replace('MARKER-IN-CODE', '');
      const extra = { globalOutbound: null, env: { API: ctx.exports.Api({ props: { who: 'sealed', secret: 'PROPS-SECRET-7f3a' } }), N: 1 } };
      return await run(load(env, 'sealed-' + url.searchParams.get('marker'), code + '// ' + url.searchParams.get('marker'), extra));
    }
    if (op === 'sealed-2') return await run(load(env, 'sealed-two', SEALED, { globalOutbound: null, env: { API: ctx.exports.Api({ props: { who: 'two' } }) } }));
    if (op === 'pass-sibling') {
      const sibling = load(env, 'sealed-two', SEALED).getEntrypoint();
      try { load(env, 'carrier', SEALED, { env: { S: sibling } }); env.LOADER.load({ compatibilityDate: 'x', mainModule: 'm.js', modules: { 'm.js': SEALED }, env: { S: sibling } }); return new Response('passed'); }
      catch (e) { return new Response(e.name + ': ' + e.message); }
    }
    if (op === 'pass-binding') {
      try { env.LOADER.load({ compatibilityDate: 'x', mainModule: 'm.js', modules: { 'm.js': SEALED }, env: { STORE: env.STORE } }); return new Response('passed'); }
      catch (e) { return new Response(e.name + ': ' + e.message); }
    }
    if (op === 'gateway') {
      const w = load(env, 'gw', OUTBOUND, { globalOutbound: ctx.exports.Gateway({ props: { app: 'gw', allow: ['allowed.example'] } }) });
      const a = await (await run(w)).text();
      return Response.json({ answer: a, seen });
    }
    if (op === 'spin') return await run(load(env, 'spin-' + url.searchParams.get('n'), 'export default { fetch() { for (;;) {} } }', { limits: { cpuMs: 20 } }));
    if (op === 'grow') return await run(load(env, 'grow', 'export default { fetch() { const a = []; for (;;) a.push(new Array(1e6).fill(7)); } }'));
    if (op === 'rpc' || op === 'tamper-rpc') {
      const tampering = op === 'tamper-rpc';
      if (tampering) tamper();
      const w = env.LOADER.load({ compatibilityDate: '2026-11-01', mainModule: 'm.js', modules: { 'm.js': RPC_WORKER(tampering && tamper) } });
      const fetched = await (await w.getEntrypoint().fetch('https://loaded.example/p')).text();
      const echoed = await w.getEntrypoint('Echo').echo({ a: [1, 'b', new Uint8Array([7])] });
      return Response.json({ fetched, echoed: { ...echoed, v: { a: [echoed.v.a[0], echoed.v.a[1], [...echoed.v.a[2]]] } } });
    }
    if (op === 'inline') {
      // A loaded Worker that tampers with what sends its answer's bytes in the RPC message (Body's statics, the byteLength getter).
      const w = env.LOADER.load({ compatibilityDate: '2026-11-01', mainModule: 'm.js', modules: { 'm.js': INLINE } });
      const t = await (await run(w)).text();
      return new Response(t.length + ' ' + (t === 'x'.repeat(t.length) ? 'exact' : 'altered'));
    }
    if (op === 'own') return new Response('parent ok ' + env.STORE.sql.exec('SELECT 1 AS one').one().one);
  } catch (e) {
    return new Response('parent caught: ' + e.message, { status: 502 });
  }
  return new Response('?', { status: 404 });
} }`;

const BYSTANDER = `export default { fetch() { return new Response('bystander ok'); } }`;

async function deploy(mesh: TestMesh, body: object): Promise<void> {
  const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const res = await fetch(`${mesh.adminUrl}/v1/workers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(res.status < 300, `deploy: ${res.status} ${await res.text()}`);
}

/** Every file under `dir` (bounded: a data dir of a test mesh), with its bytes. */
function filesUnder(dir: string, out: [string, Buffer][] = []): [string, Buffer][] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    let st;
    try {
      st = statSync(path);
    } catch {
      continue; // gone meanwhile (a socket, a WAL)
    }
    if (st.isDirectory()) filesUnder(path, out);
    else if (st.isFile() && st.size < 256 * 1024 * 1024) out.push([path, readFileSync(path)]);
  }
  return out;
}

describe('Dynamic Workers as a boundary (issue 14, item 3)', () => {
  let mesh: TestMesh;
  const host = (path: string) => fetchHost(mesh, 'host.acme.workers.localhost', path);
  const bystander = async () => {
    const r = await fetchHost(mesh, 'calm.other.workers.localhost', '/');
    return `${r.status} ${await r.text()}`;
  };

  before(async () => {
    mesh = await startTestMesh();
    const modules = (content: string) => [{ name: 'w.js', type: 'esm', content }];
    await deploy(mesh, {
      name: 'host',
      tenant: 'acme',
      mainModule: 'w.js',
      modules: modules(PARENT),
      bindings: [
        { type: 'loader', name: 'LOADER' },
        { type: 'storage', name: 'STORE' },
      ],
      limits: { cpuMs: 2000, wallMs: 20_000, memoryMb: 64 },
    });
    await deploy(mesh, { name: 'calm', tenant: 'other', mainModule: 'w.js', modules: modules(BYSTANDER) });
    // Another tenant's loader parent (the same code), for Workers RPC into its loaded Workers.
    await deploy(mesh, { name: 'peer', tenant: 'other', mainModule: 'w.js', modules: modules(PARENT), bindings: [{ type: 'loader', name: 'LOADER' }] });
    await waitFor('both workers', async () => ((await host('/own')).status === 200 && (await bystander()) === '200 bystander ok' ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('globalOutbound null: no Internet, no host, no cache, no connect, no parent binding, no props, no sibling', async () => {
    const port = new URL(mesh.adminUrl).port;
    const r = await host(`/sealed?marker=m1&port=${port}`);
    assert.equal(r.status, 200);
    const out = (await r.json()) as Record<string, string>;
    assert.equal(out.internet, `refused: ${NO_GLOBAL_OUTBOUND}`);
    assert.equal(out.host, `refused: ${NO_GLOBAL_OUTBOUND}`);
    assert.equal(out.cache, 'refused: the Cache API is not available to a Dynamic Worker');
    assert.equal(out.props, 'refused: The RPC receiver does not implement the method "ctx".');
    assert.equal(out.connect, 'undefined undefined');
    assert.equal(out.envKeys, 'API,N', 'only what its env named: not STORE, not LOADER');
    assert.equal(out.api, 'hi sealed', 'the stub works, with the props its parent gave');
    assert.doesNotMatch(out.apiShape!, /PROPS-SECRET|secret/);
    assert.equal(out.hostGlobals, '');
    assert.equal(out.sibling, 'undefined');
    // Another loaded Worker is another isolate: what the first left in its globals is not there.
    const two = (await (await host(`/sealed-2?port=${port}`)).json()) as Record<string, string>;
    assert.equal(two.sibling, 'undefined');
    assert.equal(two.api, 'hi two');
    assert.equal(await bystander(), '200 bystander ok');
  });

  test('the parent cannot hand a loaded Worker its bindings or another loaded Worker', async () => {
    assert.match(await (await host('/pass-sibling')).text(), /^DataCloneError: Entrypoints to dynamically-loaded workers cannot be transferred/);
    assert.match(await (await host('/pass-binding')).text(), /^DataCloneError: env.STORE cannot be passed to a Dynamic Worker/);
  });

  test('with a gateway, every fetch is seen by the gateway and its allow-list holds', async () => {
    const allowed = (await (await host('/gateway?to=https://allowed.example/a')).json()) as { answer: string; seen: string[] };
    assert.equal(allowed.answer, '200 gateway answered allowed.example');
    const denied = (await (await host('/gateway?to=http://127.0.0.1:1/b')).json()) as { answer: string; seen: string[] };
    assert.equal(denied.answer, '403 blocked 127.0.0.1');
    assert.ok(denied.seen.includes('gw POST https://allowed.example/a') && denied.seen.includes('gw POST http://127.0.0.1:1/b'), JSON.stringify(denied.seen));
  });

  test('a loaded Worker spinning or allocating is stopped at its limit; its parent and another tenant keep serving', async () => {
    const [spin, grow, own, other] = await Promise.all([host('/spin?n=0'), host('/grow'), host('/own'), bystander()]);
    assert.match(await spin.text(), /^parent caught: the called worker failed: worker exceeded its CPU time limit of 20 ms/);
    assert.match(await grow.text(), /^parent caught: the called worker failed: worker exceeded its memory limit of 64 MB/);
    assert.equal(await own.text(), 'parent ok 1');
    assert.equal(other, '200 bystander ok');
    assert.equal(await (await host('/own')).text(), 'parent ok 1');
  });

  test("a tenant tampering with built-ins before Workers RPC loads in its isolates steers only them; another tenant's RPC is clean", async () => {
    const clean = { fetched: 'rpc /p undefined', echoed: { v: { a: [1, 'b', [7]] }, n: 3, seen: 'undefined', steered: 'no' } };
    const peer = async () => {
      const r = await fetchHost(mesh, 'peer.other.workers.localhost', '/rpc');
      return [r.status, await r.json()];
    };
    assert.deepEqual(await peer(), [200, clean]);
    for (let i = 0; i < 3; i++) {
      const r = await host('/tamper-rpc');
      const body = (await r.text()).slice(0, 500);
      // Its own isolates are its to break: what they answer is not asserted, only that the sandbox serves on.
      assert.ok(r.status === 200 || r.status === 502, `${r.status} ${body}`);
      assert.deepEqual(await peer(), [200, clean]);
    }
    assert.equal(await bystander(), '200 bystander ok');
  });

  test("a loaded Worker tampering with how its answer's bytes cross RPC changes only its own answer; the bystander is unharmed", async () => {
    // Small: its bytes in the message; over 16 KiB: streamed. Either way exactly what it returned.
    for (const size of [100, 100 * 1024]) {
      const r = await host(`/inline?size=${size}`);
      assert.equal(`${r.status} ${await r.text()}`, `200 ${size} exact`);
    }
    assert.equal(await bystander(), '200 bystander ok');
  });

  test('code handed to the loader is never written to disk', async () => {
    const marker = `dyn-marker-${Date.now().toString(36)}-q9z`;
    const r = await host(`/sealed?marker=${marker}&port=1`);
    assert.equal(((await r.json()) as { marker: string }).marker, marker);
    const found = filesUnder(mesh.dataDir).filter(([, bytes]) => bytes.includes(marker) || bytes.includes(Buffer.from(marker, 'utf16le')));
    assert.deepEqual(
      found.map(([p]) => p),
      [],
    );
  });

  test('limit hits of loaded code count against the parent: it is quarantined, the bystander is not', async () => {
    let listed = '';
    for (let n = 1; n <= 40 && !/acme\/host/.test(listed); n++) {
      await host(`/spin?n=${n}`);
      if (n >= 20) listed = (await mesh.cli(['quarantine', 'list'])).stdout;
    }
    await waitFor('the parent in quarantine', async () =>
      (listed = (await mesh.cli(['quarantine', 'list'])).stdout).includes('acme/host') ? true : undefined,
    );
    assert.doesNotMatch(listed, /other\/calm/);
    assert.equal(await bystander(), '200 bystander ok');
  });
});
