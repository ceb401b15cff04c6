/** The Worker Loader in the isolate host alone: loading, module kinds, props, cache by id, outbound, limits, bad code. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import type { CapabilityHost } from './instance.ts';
import { GET, text, worker } from './testing/fixtures.ts';
import type { WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import { NO_GLOBAL_OUTBOUND } from './abi.ts';

const rt = new WorkerRuntime({ spares: 0, dynamic: { perWorker: 8, idleMs: 60_000, loadsPerSecond: 1000 } });
after(() => rt.dispose());

const LOADER = [{ type: 'loader' as const, name: 'LOADER' }];

async function call(bundle: WorkerBundle, path = '/', capabilities?: CapabilityHost, events?: { created(): void; limitHit(k: string): void }) {
  const logs: LogEntry[] = [];
  const res = await rt.handle(bundle, { ...GET, url: `http://example.test${path}` }, { log: (e) => logs.push(...e), capabilities, events });
  return { status: res.status, body: text(res.body), logs };
}

test('get(id) loads once per id: module kinds, env, props, RPC and fetch', async () => {
  const created: number[] = [];
  const parent = worker(
    `import { WorkerEntrypoint } from 'cloudflare:workers';
    let codeCalls = 0;
    export class Api extends WorkerEntrypoint { whoami() { return 'api for ' + this.ctx.props.tenant; } }
    export default { async fetch(req, env, ctx) {
      const w = env.LOADER.get('app-1', async () => { codeCalls++; return {
        compatibilityDate: '2026-01-01', mainModule: 'main.js',
        modules: {
          'main.js': "import t from './t.txt'; import j from './j.json'; import d from './d.bin'; import c from './c.cjs'; import { WorkerEntrypoint } from 'cloudflare:workers';" +
            "export class Named extends WorkerEntrypoint { add(a, b) { return a + b + this.ctx.props.bonus; } };" +
            "export default { async fetch(req, env) { return new Response([t, j.k, new Uint8Array(d).join(','), c.twice(21), env.NAME, await env.API.whoami(), typeof env.API.fetch].join('|')); } }",
          't.txt': { text: 'hello' }, 'j.json': { json: { k: 'v' } }, 'd.bin': { data: new Uint8Array([1, 2, 3]) },
          'c.cjs': { cjs: "const h = require('./h.cjs'); module.exports = { twice: (n) => h.mul(n, 2) };" },
          'h.cjs': { cjs: 'exports.mul = (a, b) => a * b;' },
        },
        env: { NAME: 'n1', API: ctx.exports.Api({ props: { tenant: 'acme' } }) },
      }; });
      const r1 = await (await w.getEntrypoint().fetch('http://x/')).text();
      const r2 = await env.LOADER.get('app-1', () => { throw new Error('not called while cached'); }).getEntrypoint('Named', { props: { bonus: 100 } }).add(1, 2);
      return new Response(JSON.stringify([r1, r2, codeCalls]));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent, '/', undefined, { created: () => created.push(1), limitHit: () => {} });
  assert.equal(out.status, 200, out.body + JSON.stringify(out.logs));
  assert.deepEqual(JSON.parse(out.body), ['hello|v|1,2,3|42|n1|api for acme|function', 103, 1]);
  assert.equal(created.length, 1);
  // A second request: the Worker is still held, getCode is not called (the count stays at 1).
  const again = await call(parent, '/', undefined, { created: () => created.push(1), limitHit: () => {} });
  assert.deepEqual(JSON.parse(again.body)[2], 1);
  assert.equal(created.length, 1);
});

test('globalOutbound: null: fetch throws workerd’s message; a gateway sees every fetch; inherit uses the parent’s', async () => {
  const seen: string[] = [];
  const caps: CapabilityHost = {
    async call(handle, _method, args) {
      if (handle === '$fetch') {
        seen.push((args[0] as { url: string }).url);
        return { status: 200, statusText: 'OK', headers: [], body: new TextEncoder().encode('from egress'), url: '', redirected: false };
      }
      throw new Error('no');
    },
  };
  const parent = worker(
    `import { WorkerEntrypoint } from 'cloudflare:workers';
    export class Gateway extends WorkerEntrypoint { async fetch(req) {
      if (!this.ctx.props.allow.includes(new URL(req.url).hostname)) return new Response('blocked ' + req.url, { status: 403 });
      return new Response('via gateway ' + req.url);
    } }
    const code = (globalOutbound) => ({ compatibilityDate: '2026-01-01', mainModule: 'm.js', globalOutbound,
      modules: { 'm.js': "export default { async fetch(req) { try { const r = await fetch(new URL(req.url).searchParams.get('u')); return new Response(r.status + ' ' + await r.text()); } catch (e) { return new Response('threw ' + e.message); } } }" } });
    export default { async fetch(req, env, ctx) {
      const go = async (w, u) => (await w.getEntrypoint().fetch('http://x/?u=' + encodeURIComponent(u))).text();
      return new Response(JSON.stringify([
        await go(env.LOADER.load(code(null)), 'https://example.com/'),
        await go(env.LOADER.load(code(ctx.exports.Gateway({ props: { allow: ['ok.example'] } }))), 'https://ok.example/a'),
        await go(env.LOADER.load(code(ctx.exports.Gateway({ props: { allow: ['ok.example'] } }))), 'https://evil.example/b'),
        await go(env.LOADER.load(code(undefined)), 'https://inherit.example/'),
      ]));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent, '/', caps);
  assert.equal(out.status, 200, out.body + JSON.stringify(out.logs));
  assert.deepEqual(JSON.parse(out.body), [
    `threw ${NO_GLOBAL_OUTBOUND}`,
    '200 via gateway https://ok.example/a',
    '403 blocked https://evil.example/b',
    '200 from egress',
  ]);
  assert.deepEqual(seen, ['https://inherit.example/']);
});

test('cloudflare:sockets in a loaded Worker: globalOutbound: null throws workerd’s message at connect(); inherit connects through the parent’s capability', async () => {
  const seen: string[] = [];
  const caps: CapabilityHost = {
    async call(handle, method, args) {
      seen.push(`${handle} ${method} ${method === 'write' ? new TextDecoder().decode(args[0] as Uint8Array) : JSON.stringify(args)}`);
      if (handle === '$fetch' && method === 'connect') {
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode('hi from the socket'));
            c.close();
          },
        });
        return { stream, socket: '$socket:7', remoteAddress: '192.0.2.1:5432' };
      }
      if (handle === '$socket:7') return null;
      throw new Error('no');
    },
  };
  const parent = worker(
    `const code = (globalOutbound) => ({ compatibilityDate: '2026-01-01', mainModule: 'm.js', globalOutbound,
      modules: { 'm.js': "import { connect } from 'cloudflare:sockets'; export default { async fetch() { try { const s = connect('db.example:5432'); const info = await s.opened; const w = s.writable.getWriter(); await w.write(new TextEncoder().encode('ping')); const { value } = await s.readable.getReader().read(); await s.close(); return new Response(info.remoteAddress + ' read ' + new TextDecoder().decode(value)); } catch (e) { return new Response('threw ' + e.message); } } }" } });
    export default { async fetch(req, env) {
      const go = async (w) => (await w.getEntrypoint().fetch('http://x/')).text();
      return new Response(JSON.stringify([await go(env.LOADER.load(code(null))), await go(env.LOADER.load(code(undefined)))]));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent, '/', caps);
  assert.equal(out.status, 200, out.body + JSON.stringify(out.logs));
  assert.deepEqual(JSON.parse(out.body), [`threw ${NO_GLOBAL_OUTBOUND}`, '192.0.2.1:5432 read hi from the socket']);
  assert.deepEqual(seen, [
    '$fetch connect [{"hostname":"db.example","port":5432},{"secureTransport":"off","allowHalfOpen":false}]',
    '$socket:7 write ping',
    '$socket:7 close []',
  ]);
});

test('bad code is refused with clear errors; the parent’s bindings cannot be passed', async () => {
  const parent = worker(
    `export default { async fetch(req, env) {
      const tries = {
        none: { compatibilityDate: 'x', mainModule: 'a.js', modules: {} },
        ts: { compatibilityDate: 'x', mainModule: 'a.ts', modules: { 'a.ts': 'x' } },
        two: { compatibilityDate: 'x', mainModule: 'a.js', modules: { 'a.js': { js: '', text: '' } } },
        main: { compatibilityDate: 'x', mainModule: 'b.js', modules: { 'a.js': '' } },
        date: { mainModule: 'a.js', modules: { 'a.js': '' } },
        binding: { compatibilityDate: 'x', mainModule: 'a.js', modules: { 'a.js': '' }, env: { L: env.LOADER } },
        syntax: { compatibilityDate: 'x', mainModule: 'a.js', modules: { 'a.js': 'export default {' } },
        dots: { compatibilityDate: 'x', mainModule: '../a.js', modules: { '../a.js': 'export default {}' } },
      };
      const out = {};
      for (const [k, code] of Object.entries(tries)) {
        try { await env.LOADER.get(k, () => code).getEntrypoint().fetch('http://x/'); out[k] = 'loaded'; } catch (e) { out[k] = e.message; }
      }
      return new Response(JSON.stringify(out));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent);
  const r = JSON.parse(out.body) as Record<string, string>;
  assert.equal(r.none, 'Dynamic Worker code must contain at least one module.');
  assert.match(r.ts!, /bundle it first with '@cloudflare\/worker-bundler'/);
  assert.match(r.two!, /^Each module must contain exactly one of 'js', 'cjs', 'text', 'data', 'json', 'py', or 'wasm'. Module 'a.js' contained 2 properties.$/);
  assert.match(r.main!, /mainModule "b.js" is not one of the modules/);
  assert.match(r.date!, /compatibilityDate is required/);
  assert.match(r.binding!, /env.L cannot be passed to a Dynamic Worker/);
  assert.match(r.syntax!, /^Failed to start Worker: worker failed to load: module a.js: Unexpected end of input/);
  assert.match(r.dots!, /invalid WorkerCode: mainModule: module name "..\/a.js" must be a relative path/);
});

test('a loaded Worker spinning is stopped at its CPU limit and counted against its parent; the parent goes on', async () => {
  const hits: string[] = [];
  const parent = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.get('spin', () => ({ compatibilityDate: 'x', mainModule: 'a.js', limits: { cpuMs: 50 },
        modules: { 'a.js': "export default { fetch() { for (;;) {} } }" } }));
      try { await w.getEntrypoint().fetch('http://x/'); return new Response('no'); } catch (e) { return new Response('parent caught: ' + e.message); }
    } }`,
    { bindings: LOADER, limits: { cpuMs: 2000 } },
  );
  const out = await call(parent, '/', undefined, { created: () => {}, limitHit: (k) => hits.push(k) });
  assert.match(out.body, /^parent caught: the called worker failed: worker exceeded its CPU time limit of 50 ms/);
  assert.deepEqual(hits, ['cpu']);
});

test('at most perWorker loaded Workers per parent: the least recently used idle one goes, and is loaded again on use', async () => {
  const small = new WorkerRuntime({ spares: 0, dynamic: { perWorker: 3, idleMs: 60_000, loadsPerSecond: 1000 } });
  try {
    const parent = worker(
      `let calls = 0;
      const w = (env, id) => env.LOADER.get(id, () => { calls++; return { compatibilityDate: 'x', mainModule: 'a.js', modules: { 'a.js': "export default { fetch() { return new Response('ok') } }" } }; });
      export default { async fetch(req, env) {
        const ids = new URL(req.url).searchParams.get('ids').split(',');
        try { for (const id of ids) await (await w(env, id).getEntrypoint().fetch('http://x/')).text(); } catch (e) { return new Response(e.message); }
        return new Response(String(calls));
      } }`,
      { bindings: LOADER },
    );
    const get = async (ids: string) => text((await small.handle(parent, { ...GET, url: `http://example.test/?ids=${ids}` }, { log: () => {} })).body);
    // One a request: a, b, c, d (a unloaded: least recently used), then a again is loaded afresh.
    for (const id of ['a', 'b', 'c', 'd']) await get(id);
    assert.equal(await get('a'), '5');
    assert.equal(await get('d'), '5', 'd is still held');
    // Four in one request, one after the other: each is idle again once its call has answered, so each makes room for the next.
    assert.equal(await get('e,f,g,h'), '9');
  } finally {
    small.dispose();
  }
});

test('loads are rationed per parent: beyond loadsPerSecond in a burst, a load is refused with what to do', async () => {
  const slow = new WorkerRuntime({ spares: 0, dynamic: { perWorker: 10, idleMs: 60_000, loadsPerSecond: 2 } });
  try {
    const parent = worker(
      `export default { async fetch(req, env) {
        const out = [];
        for (let i = 0; i < 3; i++) {
          try { await (await env.LOADER.load({ compatibilityDate: 'x', mainModule: 'a.js', modules: { 'a.js': "export default { fetch() { return new Response('ok') } }" } }).getEntrypoint().fetch('http://x/')).text(); out.push('ok'); }
          catch (e) { out.push(e.message); }
        }
        return new Response(JSON.stringify(out));
      } }`,
      { bindings: LOADER },
    );
    const res = await slow.handle(parent, GET, { log: () => {} });
    const out = JSON.parse(text(res.body)) as string[];
    assert.deepEqual(out.slice(0, 2), ['ok', 'ok']);
    assert.match(out[2]!, /loads Dynamic Workers faster than 2 a second; use get\(id\) to reuse them/);
  } finally {
    slow.dispose();
  }
});

test('a loaded cordon: the parent’s host hands loads and calls to its capability; the loaded side reaches back only through its ParentSide', async () => {
  // One runtime plays both processes; `supervisor` is what the real one does between them (loaded-cordon.ts).
  const cordon = new WorkerRuntime({ spares: 0, dynamic: { perWorker: 8, idleMs: 60_000, loadsPerSecond: 1000 } });
  after(() => cordon.dispose());
  const parent: WorkerBundle = {
    ...worker(
      `import { WorkerEntrypoint } from 'cloudflare:workers';
      export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }
      const APP = "let n = 0; export default { async fetch(req, env) { n++; let f; try { f = await (await fetch('https://out.example/')).text(); } catch (e) { f = 'threw ' + e.message; } return new Response([n, await env.API.hello(), f].join('|')); } }";
      export default { async fetch(req, env, ctx) {
        const get = (id, outbound) => env.LOADER.get(id, () => ({ compatibilityDate: '2026-01-01', mainModule: 'm.js', modules: { 'm.js': APP },
          env: { API: ctx.exports.Api({ props: { who: id } }) }, ...(outbound === undefined ? {} : { globalOutbound: outbound }) }));
        const go = async (w) => (await w.getEntrypoint().fetch('http://x/')).text();
        return new Response(JSON.stringify([await go(get('a')), await go(get('a')), await go(get('sealed', null))]));
      } }`,
      { bindings: LOADER },
    ),
    loadedCordon: 'untrusted',
  };
  const seen: string[] = [];
  const reported: string[] = [];
  const dynamicBefore = rt.stats().dynamic;
  const stubsSeen: unknown[] = [];
  const ref = `${parent.workerId}@${parent.version}`;
  const supervisor: CapabilityHost = {
    async call(handle, method, args) {
      if (handle === '$fetch') throw new Error('the parent’s own fetch is not called: the loaded Worker’s goes through its link');
      assert.equal(handle, 'LOADER');
      if (method === 'held') return cordon.remoteParent(ref)?.heldChild('LOADER', args[0] as string) ?? false;
      const [id, code] = args as [string, { stubs: Record<string, { exportName: string; props: string | null }> }];
      stubsSeen.push(code.stubs);
      const token = `id:${id}`;
      await cordon.remoteParent(ref, parent)!.load('LOADER', token, code, {
        connect: (name, toIsolate) => {
          const stub = code.stubs[name];
          if (!stub) return Promise.reject(new Error(`no binding ${name} to call`));
          return rt.serve(parent, stub.exportName, JSON.parse(stub.props ?? '{}'), toIsolate, { log: () => {} });
        },
        outbound: async (h, m, a) => {
          seen.push(`${h}.${m} ${(a[0] as { url: string }).url}`);
          return { status: 200, statusText: 'OK', headers: [], body: new TextEncoder().encode('egress as parent'), url: '', redirected: false };
        },
        log: () => {},
        events: { created: () => reported.push('created'), limitHit: (k) => reported.push(k) },
      });
      return token;
    },
    connect: (target, toIsolate) => cordon.remoteParent(ref)!.intoChild(target.slice('loader:'.length), toIsolate),
  };
  const out = await call(parent, '/', supervisor);
  assert.equal(out.status, 200, out.body + JSON.stringify(out.logs));
  assert.deepEqual(JSON.parse(out.body), ['1|hi a|egress as parent', '2|hi a|egress as parent', `1|hi sealed|threw ${NO_GLOBAL_OUTBOUND}`]);
  assert.deepEqual(seen, ['$fetch.fetch https://out.example/', '$fetch.fetch https://out.example/']);
  assert.deepEqual(reported, ['created', 'created'], 'loaded once per id, each load reported through its way back');
  assert.equal(stubsSeen.length, 2);
  // The Workers are in the loaded cordon's runtime, none in the parent's.
  assert.equal(cordon.stats().dynamic, 2);
  assert.equal(rt.stats().dynamic, dynamicBefore);
});

test("fetch() down the request path: an entrypoint's fetch with its props, a body, thrown errors by type, waitUntil drained", async () => {
  const CODE = `import { WorkerEntrypoint } from 'cloudflare:workers';
    let drained = 0;
    export class Named extends WorkerEntrypoint { async fetch(r) { return new Response('named ' + JSON.stringify(this.ctx.props) + ' ' + r.method + ' ' + (await r.text())); } }
    export class NoFetch extends WorkerEntrypoint { hi() { return 1; } }
    export default { fetch(r, env, ctx) {
      const p = new URL(r.url).pathname;
      if (p === '/throw') throw new RangeError('out of range');
      if (p === '/number') return 42;
      if (p === '/drained') return new Response('drained ' + drained);
      ctx.waitUntil(new Promise((res) => setTimeout(res, 20)).then(() => drained++));
      return new Response('default ' + JSON.stringify(ctx.props));
    } }`;
  const parent = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.get('plain', () => ({ compatibilityDate: 'x', mainModule: 'm.js', modules: { 'm.js': ${JSON.stringify(CODE)} } }));
      const out = [];
      const t = async (f) => { try { out.push(await (await f()).text()); } catch (e) { out.push(e.constructor.name + ': ' + e.message); } };
      await t(() => w.getEntrypoint(undefined, { props: { a: 1 } }).fetch('http://x/'));
      await t(() => w.getEntrypoint('Named', { props: { b: 2 } }).fetch('http://x/', { method: 'POST', body: 'sent' }));
      await t(() => w.getEntrypoint('NoFetch').fetch('http://x/'));
      await t(() => w.getEntrypoint().fetch('http://x/throw'));
      await t(() => w.getEntrypoint().fetch('http://x/number'));
      await new Promise((r) => setTimeout(r, 100));
      await t(() => w.getEntrypoint().fetch('http://x/drained'));
      return new Response(out.join('\\n'));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent);
  assert.deepEqual(out.body.split('\n'), [
    'default {"a":1}',
    'named {"b":2} POST sent',
    'TypeError: The RPC receiver does not implement the method "fetch".',
    'RangeError: out of range',
    'Error: the called worker failed: worker did not return a Response',
    'drained 1',
  ]);
});

test('fetch() with a header the request path does not carry (a value over 64 KiB, a control character) goes over Workers RPC, not refused', async () => {
  const CODE = `export default { fetch(r) { const v = r.headers.get('x-big') ?? ''; return new Response(v.length + ' ' + JSON.stringify(r.headers.get('x-ctl'))); } }`;
  const parent = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.get('headers', () => ({ compatibilityDate: 'x', mainModule: 'm.js', modules: { 'm.js': ${JSON.stringify(CODE)} } }));
      const out = [];
      for (const headers of [{ 'x-big': 'a'.repeat(70 * 1024) }, { 'x-ctl': 'a\\u0001b' }, { 'x-ctl': 'plain' }])
        try { out.push(await (await w.getEntrypoint().fetch('http://x/', { headers })).text()); } catch (e) { out.push(e.constructor.name + ': ' + e.message); }
      return new Response(out.join('\\n'));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent);
  assert.deepEqual(out.body.split('\n'), [`${70 * 1024} null`, '0 "a\\u0001b"', '0 "plain"']);
});

test('fetch() with a header name over 256 characters (a token Headers takes, past the request path) goes over Workers RPC, not refused', async () => {
  const CODE = `export default { fetch(r) { return new Response([...r.headers].map(([k, v]) => k.length + '=' + v).join(',')); } }`;
  const parent = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.get('names', () => ({ compatibilityDate: 'x', mainModule: 'm.js', modules: { 'm.js': ${JSON.stringify(CODE)} } }));
      const out = [];
      for (const name of ['x'.repeat(300), 'x'.repeat(256)])
        try { out.push(await (await w.getEntrypoint().fetch('http://x/', { headers: { [name]: 'v' } })).text()); } catch (e) { out.push(e.constructor.name + ': ' + e.message); }
      return new Response(out.join('\\n'));
    } }`,
    { bindings: LOADER },
  );
  const out = await call(parent);
  assert.deepEqual(out.body.split('\n'), ['300=v', '256=v']);
});
