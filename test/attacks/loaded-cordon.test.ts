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
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const PLATFORM = `import { WorkerEntrypoint } from 'cloudflare:workers';
export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }
const APP = 'export default { async fetch(req, env) { return new Response(await env.API.hello()); } }';
export default { async fetch(req, env, ctx) {
  const url = new URL(req.url);
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
      JSON.stringify({ name: 'platform', main: 'platform.js', compatibility_date: '2026-11-01', worker_loaders: [{ binding: 'LOADER' }] }),
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
    const hostile = new (class extends RpcTarget implements WorkerRunner, LoadedWorkerHost {
      async loadChild(parent: unknown, binding: string, token: string, code: unknown, link: RpcStub<ParentLinkApi>): Promise<void> {
        loads.push({ parent, binding, token, code, link: link.dup() });
      }
      async childHeld(): Promise<boolean> {
        return false;
      }
      async serveChild(): Promise<never> {
        throw new Error('not serving');
      }
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
});
