/**
 * Dynamic Workers in a stricter cordon (docs/dynamic-workers.md, "A stricter cordon for loaded
 * Workers"), end to end: a platform in the standard cordon deployed with `--loaded-cordon untrusted`
 * has its loaded Workers in the untrusted cordon's sandbox process — killing that process (and only
 * that one) loses them, while the platform's own isolate lives on; a platform without the setting
 * keeps them in its own process. Env stubs still reach the parent with its props, an inherited
 * fetch goes out as the parent (its identity, its egress policy), `globalOutbound: null` still
 * throws, loads are counted for the parent, and a deploy cannot make loaded Workers more trusted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_GLOBAL_OUTBOUND } from '../services/sandbox/runtime/abi.ts';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';

const PLATFORM = `import { WorkerEntrypoint } from 'cloudflare:workers';
let parentHits = 0;
let codeCalls = 0;
export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }
const APP = \`import { connect } from 'cloudflare:sockets';
let hits = 0;
export default { async fetch(req, env) {
  hits++;
  const to = new URL(req.url).searchParams.get('to');
  const out = { hits, api: await env.API.hello() };
  if (to) { try { const r = await fetch(to); out.fetched = r.status + ' ' + await r.text(); } catch (e) { out.fetched = 'refused: ' + e.message; } }
  const tcp = new URL(req.url).searchParams.get('tcp');
  if (tcp) {
    try {
      const socket = connect(tcp);
      const writer = socket.writable.getWriter();
      await writer.write(new TextEncoder().encode('ping from loaded'));
      const { value } = await socket.readable.getReader().read();
      out.socket = new TextDecoder().decode(value);
      await socket.close();
    } catch (e) { out.socket = 'refused: ' + e.message; }
  }
  return Response.json(out);
} }\`;
export default { async fetch(req, env, ctx) {
  parentHits++;
  const url = new URL(req.url);
  const id = url.searchParams.get('id') ?? 'app';
  const sealed = url.searchParams.get('outbound') === 'null';
  const w = env.LOADER.get(id, () => {
    codeCalls++;
    return { compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP },
      env: { API: ctx.exports.Api({ props: { who: id } }) }, ...(sealed ? { globalOutbound: null } : {}) };
  });
  try {
    const r = await w.getEntrypoint().fetch('https://app.example/' + url.search);
    return Response.json({ parentHits, codeCalls, child: await r.json() });
  } catch (e) {
    return Response.json({ parentHits, codeCalls, error: e.message }, { status: 500 });
  }
} };
`;

/** A platform object that runs a customer's app as a facet of a loaded class, in the loaded cordon. */
const FACETS = `import { DurableObject } from 'cloudflare:workers';
const APP = \`import { DurableObject } from 'cloudflare:workers';
let instances = 0;
export class App extends DurableObject {
  constructor(ctx, env) { super(ctx, env); this.instance = ++instances; }
  async fetch() {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, ['app']);
    server.send('hello from the loaded cordon');
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) { ws.send('app echo ' + message + ' to ' + this.ctx.getWebSockets('app').length); }
  add(n) {
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS app_rows (v INTEGER)');
    this.ctx.storage.sql.exec('INSERT INTO app_rows VALUES (?)', n);
    const tables = this.ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name).filter((n) => !n.startsWith('_cf_'));
    return { sum: this.ctx.storage.sql.exec('SELECT sum(v) AS s FROM app_rows').one().s, tables, instance: this.instance, id: this.ctx.id.name };
  }
}\`;
export class Host extends DurableObject {
  async fetch(req) {
    const url = new URL(req.url);
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS parent_rows (v TEXT)');
    const name = url.searchParams.get('facet') ?? 'app';
    if (url.pathname.endsWith('/ws')) {
      const worker = this.env.LOADER.get('app:v1', () => ({ compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP }, globalOutbound: null }));
      return this.ctx.facets.get(name, () => ({ class: worker.getDurableObjectClass('App'), id: name })).fetch(req);
    }
    if (url.searchParams.has('abort')) { this.ctx.facets.abort(name, new Error('stopped')); return Response.json({ aborted: name }); }
    const worker = this.env.LOADER.get('app:v1', () => ({ compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP }, globalOutbound: null }));
    const app = this.ctx.facets.get(name, () => ({ class: worker.getDurableObjectClass('App'), id: name }));
    try {
      const added = await app.add(Number(url.searchParams.get('n') ?? '1'));
      const parentTables = this.ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name).filter((n) => !n.startsWith('_cf_'));
      return Response.json({ ...added, parentTables });
    } catch (e) { return Response.json({ error: e.message }, { status: 500 }); }
  }
}
export default { fetch: (req, env) => env.HOST.getByName('one').fetch(req) };
`;

interface FacetAnswer {
  sum: number;
  tables: string[];
  instance: number;
  id: string;
  parentTables: string[];
}

interface Answer {
  parentHits: number;
  codeCalls: number;
  child?: { hits: number; api: string; fetched?: string; socket?: string };
  error?: string;
}

describe('Dynamic Workers in a loaded cordon', () => {
  let mesh: TestMesh;
  let dir: string;
  let origin: Server;
  let originPort = 0;
  let echo: TcpServer;
  let echoPort = 0;
  const seen: string[] = [];
  const call = async (worker: string, query: string): Promise<Answer> => {
    const r = await fetch(`${mesh.httpUrl}/${worker}?${query}`);
    const body = (await r.json()) as Answer;
    assert.equal(r.status, 200, JSON.stringify(body));
    return body;
  };
  const deploy = (name: string, args: string[]) => mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc'), '--name', name, ...args]);
  const created = async (name: string) => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const r = await fetch(`${mesh.adminUrl}/v1/workers/default/${name}`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };

  before(async () => {
    origin = createServer((req, res) => {
      seen.push(`${req.headers['cordon-worker']} ${req.url}`);
      res.end(`origin saw ${req.headers['cordon-worker']}`);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as { port: number }).port;
    echo = createTcpServer((socket) => socket.once('data', (d) => socket.end(`echo ${d.toString().trim()}`)));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    echoPort = (echo.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'cordon-loaded-'));
    writeFileSync(join(dir, 'platform.js'), PLATFORM);
    writeFileSync(
      join(dir, 'wrangler.jsonc'),
      JSON.stringify({ name: 'platform', main: 'platform.js', compatibility_date: '2026-11-01', worker_loaders: [{ binding: 'LOADER' }] }),
    );
    mesh = await startTestMesh();
    const origins = ['--origin', `http://127.0.0.1:${originPort}`, '--origin', `tcp://127.0.0.1:${echoPort}`];
    const strict = await deploy('strict', ['--cordon', 'standard', '--loaded-cordon', 'untrusted', '--route', '*/strict*', ...origins]);
    assert.equal(strict.code, 0, strict.stderr);
    const same = await deploy('same', ['--cordon', 'standard', '--route', '*/same*']);
    assert.equal(same.code, 0, same.stderr);
    writeFileSync(join(dir, 'facets.js'), FACETS);
    writeFileSync(
      join(dir, 'facets.jsonc'),
      JSON.stringify({
        name: 'facets',
        main: 'facets.js',
        compatibility_date: '2026-11-01',
        worker_loaders: [{ binding: 'LOADER' }],
        durable_objects: { bindings: [{ name: 'HOST', class_name: 'Host' }] },
        migrations: [{ tag: 'v1', new_sqlite_classes: ['Host'] }],
      }),
    );
    const facets = await mesh.cli([
      'deploy',
      '--config',
      join(dir, 'facets.jsonc'),
      '--cordon',
      'standard',
      '--loaded-cordon',
      'untrusted',
      '--route',
      '*/facets*',
    ]);
    assert.equal(facets.code, 0, facets.stderr);
    await waitFor('both platforms', async () => ((await fetch(`${mesh.httpUrl}/same?id=warm`)).status === 200 ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
    echo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the loaded Worker lives in the untrusted sandbox process: killing it loses the Worker, not the parent; without the setting it stays in the parent’s process', async () => {
    const standardPid = mesh.servicePids().get('sandbox:standard');
    const untrustedPid = mesh.servicePids().get('sandbox:untrusted');
    assert.ok(standardPid && untrustedPid);
    const first = await call('strict', 'id=a');
    assert.deepEqual(first.child, { hits: 1, api: 'hi a' }, 'the env stub reaches the parent, with the props it gave');
    const second = await call('strict', 'id=a');
    assert.equal(second.codeCalls, first.codeCalls, 'cached by id: getCode is not called again');
    assert.equal(second.child?.hits, 2);
    const sameBefore = await call('same', 'id=a');
    await call('same', 'id=a');

    process.kill(untrustedPid, 'SIGKILL');
    await waitFor('a new untrusted sandbox', () => {
      const pid = mesh.servicePids().get('sandbox:untrusted');
      return pid && pid !== untrustedPid ? pid : undefined;
    });
    // Until the new process has connected, the loaded cordon is away: the call fails, and is retried (bounded).
    const after = await waitFor(
      'the strict platform to load its Worker again',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/strict?id=a`);
        return r.status === 200 ? ((await r.json()) as Answer) : undefined;
      },
      30_000,
      250,
    );
    assert.equal(after.codeCalls, first.codeCalls + 1, 'the Worker was lost with the untrusted process: getCode ran again');
    assert.equal(after.child?.hits, 1, 'a fresh isolate in the new untrusted process');
    assert.ok(after.parentHits > second.parentHits, 'the parent’s isolate lived on in the standard process');
    assert.equal(mesh.servicePids().get('sandbox:standard'), standardPid, 'the standard sandbox did not restart');
    // The same code without --loaded-cordon: its Worker is in the standard process, untouched by the kill.
    const sameAfter = await call('same', 'id=a');
    assert.equal(sameAfter.codeCalls, sameBefore.codeCalls);
    assert.equal(sameAfter.child?.hits, 3);
  });

  test('an inherited fetch goes out as the parent, under its egress policy; globalOutbound null still throws', async () => {
    const allowed = await call('strict', `id=net&to=${encodeURIComponent(`http://127.0.0.1:${originPort}/from-loaded`)}`);
    assert.equal(allowed.child?.fetched, '200 origin saw default/strict');
    assert.ok(seen.includes('default/strict /from-loaded'), seen.join('\n'));
    // A private address the parent was not given: egress refuses it for the parent, so for its Worker too.
    const refused = await call('strict', `id=net&to=${encodeURIComponent('http://127.0.0.1:9/')}`);
    assert.match(refused.child?.fetched ?? '', /^(refused: |4\d\d |5\d\d )/);
    assert.doesNotMatch(refused.child?.fetched ?? '', /origin saw/);
    const sealed = await call('strict', `id=sealed&outbound=null&to=${encodeURIComponent(`http://127.0.0.1:${originPort}/sealed`)}`);
    assert.equal(sealed.child?.fetched, `refused: ${NO_GLOBAL_OUTBOUND}`);
    assert.ok(!seen.some((s) => s.endsWith('/sealed')));
  });

  test('connect() with an inherited outbound goes out as the parent (its tcp:// origin), and only as it; null still throws', async () => {
    const tcp = encodeURIComponent(`127.0.0.1:${echoPort}`);
    const allowed = await call('strict', `id=net&tcp=${tcp}`);
    assert.equal(allowed.child?.socket, 'echo ping from loaded');
    // A port the parent was not granted: egress refuses it for the parent, so for its Worker too.
    const refused = await call('strict', `id=net&tcp=${encodeURIComponent('127.0.0.1:9')}`);
    assert.match(refused.child?.socket ?? '', /^refused: /);
    const sealed = await call('strict', `id=sealed&outbound=null&tcp=${tcp}`);
    assert.equal(sealed.child?.socket, `refused: ${NO_GLOBAL_OUTBOUND}`);
  });

  test('loads are counted for the parent (reported by the loaded cordon’s process)', async () => {
    const before = await created('strict');
    await call('strict', `id=count-${Date.now()}`);
    await waitFor('the load to be counted', async () => ((await created('strict')) > before ? true : undefined));
  });

  test('a deploy cannot put loaded Workers in a more trusted cordon, nor an unknown one', async () => {
    const up = await deploy('upward', ['--cordon', 'untrusted', '--loaded-cordon', 'standard']);
    assert.notEqual(up.code, 0);
    assert.match(up.stderr, /loaded cordon standard is more trusted than the worker's own cordon untrusted/);
    const unknown = await deploy('unknown', ['--cordon', 'standard', '--loaded-cordon', 'nowhere']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown loaded cordon nowhere/);
  });

  test('a facet of a loaded class runs in the loaded cordon with its own SQLite, kept by the supervisor across a kill of that process', async () => {
    const facet = async (query: string): Promise<FacetAnswer> => {
      const r = await fetch(`${mesh.httpUrl}/facets?${query}`);
      const body = (await r.json()) as FacetAnswer & { error?: string };
      assert.equal(r.status, 200, JSON.stringify(body));
      return body;
    };
    const standardPid = mesh.servicePids().get('sandbox:standard');
    const untrustedPid = mesh.servicePids().get('sandbox:untrusted');
    const first = await facet('facet=app&n=2');
    assert.equal(first.sum, 2);
    assert.equal(first.id, 'app', 'ctx.id as the parent gave it');
    assert.deepEqual(first.tables, ['app_rows'], 'the facet sees its own database only');
    assert.deepEqual(first.parentTables, ['parent_rows'], 'and the parent its own');
    const second = await facet('facet=app&n=3');
    assert.equal(second.sum, 5);
    assert.equal(second.instance, first.instance, 'the same instance');
    const other = await facet('facet=other&n=7');
    assert.equal(other.sum, 7, 'another facet, another database');

    // Aborted: a new instance, the same data.
    assert.equal((await fetch(`${mesh.httpUrl}/facets?facet=app&abort=1`)).status, 200);
    const afterAbort = await facet('facet=app&n=1');
    assert.equal(afterAbort.sum, 6);
    assert.notEqual(afterAbort.instance, second.instance);

    // The instance lives in the untrusted process: killing it loses the instance, not the data, not the parent.
    process.kill(untrustedPid!, 'SIGKILL');
    await waitFor('a new untrusted sandbox', () => {
      const pid = mesh.servicePids().get('sandbox:untrusted');
      return pid && pid !== untrustedPid ? pid : undefined;
    });
    const again = await waitFor(
      'the facet to run again',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/facets?facet=app&n=10`);
        return r.status === 200 ? ((await r.json()) as FacetAnswer) : undefined;
      },
      30_000,
      250,
    );
    // Its data is the supervisor's: nothing was lost (an attempt that failed before the facet ran added nothing).
    assert.ok(again.sum >= 16 && (again.sum - 6) % 10 === 0, String(again.sum));
    assert.equal(again.instance, 1, 'a fresh isolate in the new untrusted process');
    assert.equal(mesh.servicePids().get('sandbox:standard'), standardPid, 'the parent’s process did not restart');
  });

  test('a facet of a loaded class accepts WebSockets in the loaded cordon: its events reach it there', async () => {
    const client = new WsClient(`${mesh.httpUrl.replace('http:', 'ws:')}/facets/ws?facet=chat`);
    await client.opened;
    assert.equal(await client.next(), 'hello from the loaded cordon');
    client.ws.send('one');
    assert.equal(await client.next(), 'app echo one to 1');
    client.ws.close(1000, 'done');
    await client.closed;
  });
});
