/**
 * Issue 14, item 3: loaded Workers in a stricter cordon as a boundary. A platform of tenant acme runs
 * in the standard cordon and loads its customers' code into the untrusted cordon
 * (`--loaded-cordon untrusted`). A compromised untrusted process (its keyring taken; it offers its own
 * runner, so loads are handed to it) gets only what loaded code may have: the code with export names
 * but never the props behind them, nothing of the parent's code or vars, and one link per load that
 * opens only the stubs the parent passed — not the parent's storage binding or any other name, not a
 * fetch the parent refused it, no method beyond its five. It cannot act for the parent, or another
 * parent, through its own session (their code keys open nothing for its cordon). The bystander, and
 * the platform itself, keep serving from the standard process.
 *
 * Facets of loaded classes run in the loaded cordon too: the compromised process is handed a facet's
 * storage, and with it reaches that facet's database only — not its parent object's, not a sibling
 * facet's, no loaded class of its own — and nothing at all once the facet is aborted or its parent's
 * lease ends. A link whose Worker was loaded with `globalOutbound: null` opens no socket either.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RpcTarget, type RpcStub } from 'capnweb';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { NO_GLOBAL_OUTBOUND } from '../../services/sandbox/runtime/abi.ts';
import type { SupervisorForSandbox, WorkerRunner } from '../../schemas/services.ts';
import type { RpcPipe } from '../../schemas/service-bindings.ts';
import type { LoadedWorkerHost, LoaderApi, ParentLinkApi } from '../../schemas/loaded-cordon.ts';
import type { ObjectStorageApi } from '../../schemas/durable-objects.ts';

const PLATFORM = `import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
const APP_CLASS = 'import { DurableObject } from "cloudflare:workers"; export class App extends DurableObject { hi() { return "app " + this.ctx.id.name; } }';
export class Sibling extends DurableObject {
  seed() {
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS sibling_secret (v TEXT)');
    this.ctx.storage.sql.exec("INSERT INTO sibling_secret VALUES ('sibling secret')");
    return 'seeded';
  }
}
export class Host extends DurableObject {
  async fetch(req) {
    const url = new URL(req.url);
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS parent_secret (v TEXT)');
    if (this.ctx.storage.sql.exec('SELECT count(*) AS n FROM parent_secret').one().n === 0) this.ctx.storage.sql.exec("INSERT INTO parent_secret VALUES ('acme object secret')");
    await this.ctx.facets.get('sibling', () => ({ class: this.ctx.exports.Sibling })).seed();
    const id = url.searchParams.get('id') ?? 'app';
    if (url.searchParams.has('abort')) { this.ctx.facets.abort(id, new Error('aborted')); return new Response('aborted'); }
    const w = this.env.LOADER.get(id, () => ({ compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP_CLASS }, globalOutbound: null }));
    try { return new Response(await this.ctx.facets.get(id, () => ({ class: w.getDurableObjectClass('App'), id })).hi()); }
    catch (e) { return new Response(e.message, { status: 500 }); }
  }
}
export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }
const APP = 'export default { async fetch(req, env) { return new Response(await env.API.hello()); } }';
export default { async fetch(req, env, ctx) {
  const url = new URL(req.url);
  if (url.pathname.includes('/facet')) return env.HOST.getByName('one').fetch(req);
  env.STORE.sql.exec('CREATE TABLE IF NOT EXISTS t (v TEXT)');
  if (url.pathname.endsWith('/seed')) { env.STORE.sql.exec("INSERT INTO t VALUES ('acme stored secret')"); return new Response('seeded'); }
  if (url.pathname.endsWith('/secret')) return Response.json(env.STORE.sql.exec('SELECT v FROM t').toArray());
  const id = url.searchParams.get('id') ?? 'app';
  const w = env.LOADER.get(id, () => ({ compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP },
    env: { API: ctx.exports.Api({ props: { who: id, secret: 'PROPS-SECRET-91c2' } }) }, globalOutbound: null }));
  try { return await w.getEntrypoint().fetch('https://app.example/'); }
  catch (e) { return new Response(e.message, { status: 500 }); }
} };
`;
const BYSTANDER = `export default { fetch: () => new Response('bob is fine') };`;

const stolenKeyring = (dataDir: string, cordon: string) => Keyring.forRole(loadMeshSecret(dataDir, {}), 'sandbox', cordon);

/** A compromised loaded cordon's process: it offers a runner of its own and keeps what it is handed. */
class HostileRunner extends RpcTarget implements WorkerRunner, LoadedWorkerHost {
  async loadChild(_parent: unknown, _binding: string, _token: string, _code: unknown, _link: RpcStub<ParentLinkApi>): Promise<void> {}
  async childHeld(): Promise<boolean> {
    return false;
  }
  async serveChild(): Promise<never> {
    throw new Error('not serving');
  }
  async childObjectCall(_ref: string, _binding: string, _token: string, _facet: unknown, _storage: RpcStub<ObjectStorageApi>, _call: unknown): Promise<string> {
    throw new Error('not hosting');
  }
  async childObjectDrop(): Promise<void> {}
  async serve(): Promise<never> {
    throw new Error('not here');
  }
  async run(): Promise<never> {
    throw new Error('not here');
  }
  async scheduled(): Promise<never> {
    throw new Error('not here');
  }
  async queue(): Promise<never> {
    throw new Error('not here');
  }
}

interface Load {
  parent: unknown;
  binding: string;
  token: string;
  code: unknown;
  link: RpcStub<ParentLinkApi>;
}

describe('attacks on loaded Workers in a stricter cordon', () => {
  let mesh: TestMesh;
  let dir: string;
  const codeKey = (id: string) => {
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
    try {
      return (db.prepare('SELECT code_key FROM workers WHERE id = ?').pluck().get(id) as string | undefined)!;
    } finally {
      db.close();
    }
  };
  const created = async (id: string) => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const r = await fetch(`${mesh.adminUrl}/v1/workers/${id}`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };
  const text = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}/${path}`);
    return `${r.status} ${await r.text()}`;
  };
  /** bob's worker and acme's own storage answer, from a standard process that never restarted. */
  const bystanderUnharmed = async (pid: number | undefined) => {
    assert.equal(await text('bob'), '200 bob is fine');
    assert.equal(await text('acme/secret'), '200 [{"v":"acme stored secret"}]');
    assert.equal(mesh.servicePids().get('sandbox:standard'), pid, 'the standard sandbox did not restart');
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cordon-loaded-attack-'));
    writeFileSync(join(dir, 'platform.js'), PLATFORM);
    writeFileSync(join(dir, 'bob.js'), BYSTANDER);
    writeFileSync(
      join(dir, 'wrangler.jsonc'),
      JSON.stringify({
        name: 'platform',
        main: 'platform.js',
        compatibility_date: '2026-11-01',
        worker_loaders: [{ binding: 'LOADER' }],
        durable_objects: { bindings: [{ name: 'HOST', class_name: 'Host' }] },
        migrations: [{ tag: 'v1', new_sqlite_classes: ['Host'] }],
      }),
    );
    mesh = await startTestMesh();
    const p = await mesh.cli([
      ...['deploy', '--config', join(dir, 'wrangler.jsonc'), '--name', 'platform', '--tenant', 'acme', '--cordon', 'standard'],
      ...['--loaded-cordon', 'untrusted', '--storage', 'STORE', '--var', 'VAR_SECRET=VAR-SECRET-5d0e', '--route', '*/acme*'],
    ]);
    assert.equal(p.code, 0, p.stderr);
    const b = await mesh.cli(['deploy', join(dir, 'bob.js'), '--name', 'site', '--tenant', 'bob', '--cordon', 'standard', '--route', '*/bob*']);
    assert.equal(b.code, 0, b.stderr);
    await waitFor('the platform', async () => ((await fetch(`${mesh.httpUrl}/acme?id=warm`)).status === 200 ? true : undefined), 30_000);
    // The platform's storage has a secret the attacker wants.
    assert.equal(await text('acme/seed'), '200 seeded');
  });
  after(async () => {
    await mesh?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a compromised process of the loaded cordon gets no props, code or vars of the parent, and its link opens only what the parent passed', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const s: MeshSession<SupervisorForSandbox> = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolenKeyring(mesh.dataDir, 'untrusted'),
      name: 'untrusted',
      expect: 'supervisor',
    });
    const loads: Load[] = [];
    const hostile = new (class extends HostileRunner {
      override async loadChild(parent: unknown, binding: string, token: string, code: unknown, link: RpcStub<ParentLinkApi>): Promise<void> {
        loads.push({ parent, binding, token, code, link: link.dup() });
      }
    })();
    try {
      await s.remote.registerRunner(hostile as never);
      // Loads are spread over the cordon's processes by Worker id: bounded tries until the hostile one gets one.
      for (let i = 0; i < 24 && loads.length === 0; i++) await text(`acme?id=probe-${i}`);
      assert.ok(loads.length > 0, 'the hostile process was handed a load');
      const { parent, code, link } = loads[0]!;
      const seen = JSON.stringify({ parent, code });
      assert.match(seen, /"exportName":"Api"/, 'the export name is there');
      assert.doesNotMatch(seen, /PROPS-SECRET-91c2/, 'never the props behind it');
      assert.doesNotMatch(seen, /VAR-SECRET-5d0e|acme stored secret|STORE|codeKey/i, 'nothing of the parent but its name, version and limits');
      assert.deepEqual(Object.keys(parent as object).sort(), ['limits', 'ref', 'version', 'workerId']);

      const pipe = new (class extends RpcTarget implements RpcPipe {
        async send() {}
        async close() {}
      })();
      // Only the stubs the parent passed: not its storage binding, nor any other name.
      for (const name of ['STORE', 'LOADER', 'VAR_SECRET', '__proto__', 'constructor', '$fetch', '$outbound', 'default'])
        await assert.rejects(Promise.resolve(link.connect(name, pipe)), /no binding .* to call|refused|not a/, name);
      await assert.rejects(Promise.resolve(link.connect('API', 'not a pipe' as never)), /caller must be a capability/);
      // Its Worker was loaded with globalOutbound null: no fetch as the parent.
      await assert.rejects(Promise.resolve(link.fetch({ method: 'GET', url: 'https://example.com/', headers: [], body: null })), (e: Error) =>
        e.message.includes(NO_GLOBAL_OUTBOUND),
      );
      // Nor a socket (connect()) as the parent.
      await assert.rejects(
        Promise.resolve(link.openSocket({ hostname: 'example.com', port: 443 }, { secureTransport: 'on', allowHalfOpen: false })),
        (e: Error) => e.message.includes(NO_GLOBAL_OUTBOUND),
      );
      // Nothing beyond the link's methods.
      for (const method of ['serve', 'capabilities', 'loadWorker', 'grant'])
        await assert.rejects(Promise.resolve((link as unknown as Record<string, () => Promise<unknown>>)[method]!()), method);
      await assert.rejects(Promise.resolve(link.limitHit('everything' as never)), /limit/);

      // Its reports count for that parent, and no other: bob's counts do not move.
      const [acme, bob] = [await created('acme/platform'), await created('bob/site')];
      await link.created();
      assert.equal(await created('acme/platform'), acme + 1);
      assert.equal(await created('bob/site'), bob);

      // Through its own session it cannot act for the parent, nor for bob: their code keys open nothing here.
      for (const worker of ['acme/platform', 'bob/site']) {
        await assert.rejects(Promise.resolve(s.remote.capabilities(codeKey(worker))), /code key refused/);
        await assert.rejects(Promise.resolve(s.remote.loadWorker(codeKey(worker))), /code key refused/);
        await assert.rejects(Promise.resolve(s.remote.limitHit(codeKey(worker), 'cpu')), /code key refused/);
        await assert.rejects(Promise.resolve(s.remote.created(codeKey(worker), 'dynamic-worker', 5)), /code key refused/);
      }
      assert.equal(await created('bob/site'), bob);
      await bystanderUnharmed(pid);
    } finally {
      for (const l of loads) l.link[Symbol.dispose]();
      s.close();
    }
    // The hostile process gone, the platform's loads go to the real untrusted process again.
    await waitFor('the platform to load into the real untrusted process', async () => ((await text('acme?id=after')) === '200 hi after' ? true : undefined));
    await bystanderUnharmed(pid);
  });

  test('a parent cannot reach a loaded Worker of another binding or parent through its loader capability', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const s = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolenKeyring(mesh.dataDir, 'standard'),
      name: 'standard',
      expect: 'supervisor',
    });
    try {
      // The standard process, compromised, holds acme's loader capability: it names its own binding only.
      const caps = (await s.remote.capabilities(codeKey('acme/platform'))) as unknown as Record<string, RpcStub<LoaderApi>>;
      const pipe = new (class extends RpcTarget implements RpcPipe {
        async send() {}
        async close() {}
      })();
      for (const target of ['["OTHER","id:after","default",null]', '["LOADER","../x","default",null]', 'not json'])
        await assert.rejects(Promise.resolve(caps.LOADER!.connect(target, pipe)), /malformed Dynamic Worker target/, target);
      // bob's worker has no loader: it grants none, whatever is asked.
      const bobCaps = (await s.remote.capabilities(codeKey('bob/site'))) as unknown as Record<string, unknown>;
      assert.equal(bobCaps.LOADER, undefined);
    } finally {
      s.close();
    }
    await bystanderUnharmed(pid);
  });

  test('a compromised process of the loaded cordon handed a facet reaches that facet’s database only, and nothing once it is aborted or its parent’s lease ends', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const s = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolenKeyring(mesh.dataDir, 'untrusted'),
      name: 'untrusted',
      expect: 'supervisor',
    });
    const handed: { token: string; facet: { key: string; id: string; name: string | null }; storage: RpcStub<ObjectStorageApi> }[] = [];
    const hostile = new (class extends HostileRunner {
      override async childHeld(): Promise<boolean> {
        return true;
      }
      override async childObjectCall(
        _ref: string,
        _binding: string,
        token: string,
        facet: { key: string; id: string; name: string | null },
        storage: RpcStub<ObjectStorageApi>,
      ): Promise<string> {
        handed.push({ token, facet, storage: storage.dup() });
        throw new Error('kept it');
      }
    })();
    const rows = async (st: RpcStub<ObjectStorageApi>, query: string) => (await st.exec(query, [])).rows;
    try {
      await s.remote.registerRunner(hostile as never);
      // Facets of loaded classes go to the process holding their Worker (by id): bounded tries until the hostile one gets one.
      for (let i = 0; i < 48 && handed.length < 2; i++) await text(`acme/facet?id=f-${i}`);
      assert.ok(handed.length >= 2, 'the hostile process was handed two facets’ storage');
      const [first, other] = handed as [(typeof handed)[0], (typeof handed)[0]];
      const facetName = first.facet.name!;
      assert.equal(first.token, `id:${facetName}`);
      assert.notEqual(other.facet.name, facetName);

      // Its own database: it can write there.
      await first.storage.exec('CREATE TABLE IF NOT EXISTS stolen (v TEXT)', []);
      await first.storage.exec("INSERT INTO stolen VALUES ('written while handed')", []);
      // Not the parent object's database, nor the sibling facet's, by name, ATTACH or path.
      for (const q of ['SELECT * FROM parent_secret', 'SELECT * FROM sibling_secret'])
        await assert.rejects(Promise.resolve(first.storage.exec(q, [])), /no such table/, q);
      const objects = join(mesh.dataDir, 'supervisor', 'tenants', 'acme', 'platform', 'objects', 'Host');
      const parentFile = readdirSync(objects).find((f) => /^[0-9a-f]{64}\.sqlite$/.test(f))!;
      for (const file of [parentFile, join(objects, parentFile), `../${parentFile}`])
        await assert.rejects(Promise.resolve(first.storage.exec(`ATTACH DATABASE '${file}' AS p`, [])), /not authorized|refused/i, file);
      // A facet of its own is a new database below it, never its parent's or its sibling's.
      const below = await first.storage.facet('sibling');
      await assert.rejects(Promise.resolve(below.exec('SELECT * FROM sibling_secret', [])), /no such table/);
      await assert.rejects(Promise.resolve(below.exec('SELECT * FROM parent_secret', [])), /no such table/);
      // No loaded class of its own: only the root object's holder names one.
      await assert.rejects(
        Promise.resolve(
          first.storage.facetIn('x', { binding: 'LOADER', token: first.token }, { className: 'App', id: first.facet.id, name: null }, 'rpc', 'hi', '[]'),
        ),
        /only be used by an object of the worker that loaded it/,
      );

      // Its WebSockets are its own: another facet's capability (handed to it too) cannot touch them, nor its own facets take any.
      const mine = await first.storage.sockets();
      const sid = await mine.accept(['t'], true);
      const theirs = await other.storage.sockets();
      await assert.rejects(Promise.resolve(theirs.send([[sid, 'x']])), /no such WebSocket on this Durable Object/);
      await assert.rejects(Promise.resolve(theirs.close(sid, 1000, 'x')), /no such WebSocket on this Durable Object/);
      assert.deepEqual(await theirs.list(null), []);
      assert.deepEqual(
        (await mine.list(null)).map((i) => i.sid),
        [sid],
      );
      await assert.rejects(async () => (await below.sockets()).accept([], true), /own facets cannot accept WebSockets/);

      // Aborted by its parent: what it kept is dead, and it wrote nothing more.
      assert.equal(await text(`acme/facet?id=${facetName}&abort=1`), '200 aborted');
      await waitFor('the facet’s storage to be revoked', async () =>
        (await Promise.resolve(first.storage.databaseSize()).then(
          () => false,
          (e: Error) => /revoked/.test(e.message),
        ))
          ? true
          : undefined,
      );
      await assert.rejects(Promise.resolve(first.storage.exec("INSERT INTO stolen VALUES ('after abort')", [])), /capability revoked/);
      await assert.rejects(Promise.resolve(below.exec('CREATE TABLE t (v)', [])), /capability revoked/);
      await assert.rejects(Promise.resolve(mine.send([[sid, 'after abort']])), /capability revoked/);

      // Started again: handed again (a new capability), which still holds only what was written while handed.
      await text(`acme/facet?id=${facetName}`);
      const second = handed.at(-1)!;
      assert.notEqual(second, first);
      assert.deepEqual(await rows(second.storage, 'SELECT v FROM stolen'), [['written while handed']]);
      // The parent's lease ends (the operator deletes the object): revoked too, and the fence refuses it anyway.
      const ids = readdirSync(objects).filter((f) => /^[0-9a-f]{64}\.sqlite$/.test(f));
      const del = await mesh.cli(['objects', 'delete', 'acme/platform', 'Host', ids[0]!.slice(0, 64)]);
      assert.equal(del.code, 0, del.stderr);
      await assert.rejects(Promise.resolve(second.storage.exec("INSERT INTO stolen VALUES ('after the lease')", [])), /capability revoked|lease has moved on/);
      await bystanderUnharmed(pid);
    } finally {
      for (const h of handed) h.storage[Symbol.dispose]();
      s.close();
    }
    // The hostile process gone, the platform's facets run in the real untrusted process again.
    await waitFor('a facet in the real untrusted process', async () =>
      (await text('acme/facet?id=after-hostile')) === '200 app after-hostile' ? true : undefined,
    );
    await bystanderUnharmed(pid);
  });
});
