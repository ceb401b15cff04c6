/**
 * Attacks on service bindings and Workers RPC, through the real mesh:
 * - a tenant binds another tenant's worker without its grant (refused, audited);
 * - a hostile callee probes what the caller handed it, for a way to the caller's other bindings;
 * - a compromised sandbox (its keyring taken from the process) asks for another tenant's binding,
 *   and uses its own worker's binding to name a callee the binding does not;
 * - a compromised callee sandbox (it registers its own runner) answers a session with malformed and
 *   oversized messages, and a worker sends an oversized one: each closes that session only;
 * - a caller holds a stub across its callee's undeploy, quarantine, or the withdrawal of its grant, and
 *   keeps calling: refused at once with the reason, while its session to a bystander callee runs on.
 * After each, a bystander (acme's own caller, its own storage) serves unharmed, from the same process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RpcTarget, type RpcStub } from 'capnweb';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import type { SupervisorForSandbox, WorkerRunner } from '../../schemas/services.ts';
import type { RpcPipe, ServiceBindingApi } from '../../schemas/service-bindings.ts';

const SOURCES: Record<string, string> = {
  // acme's callee, in the standard cordon.
  'api.js': `import { WorkerEntrypoint, RpcTarget } from 'cloudflare:workers';
    class Counter extends RpcTarget { #n = 0; inc() { return ++this.#n; } }
    export default class extends WorkerEntrypoint {
      add(a, b) { return a + b; }
      echo(v) { return typeof v === 'string' ? v.length : v; }
      counter() { return new Counter(); }
    }`,
  // A callee whose stub a caller holds while it is undeployed, quarantined or its grant withdrawn.
  'held.js': `import { WorkerEntrypoint, RpcTarget } from 'cloudflare:workers';
    class Counter extends RpcTarget { #n = 0; inc() { return ++this.#n; } }
    export default class extends WorkerEntrypoint { counter() { return new Counter(); } }`,
  // acme's caller (the bystander): its own storage, and bindings to acme's api and to evil's spy.
  'front.js': `export default { async fetch(req, env) {
      const op = new URL(req.url).searchParams.get('op');
      env.DB.sql.exec('CREATE TABLE IF NOT EXISTS s (v TEXT)');
      if (op === 'seed') { env.DB.sql.exec("INSERT INTO s VALUES ('acme secret')"); return new Response('seeded'); }
      if (op === 'secret') return Response.json(env.DB.sql.exec('SELECT v FROM s').toArray());
      if (op === 'add') return Response.json(await env.API.add(20, 22));
      if (op === 'spy') return Response.json(await env.SPY.probe((x) => x * 2, { note: 'plain data' }));
      if (op === 'huge') { try { await env.API.echo('x'.repeat(13 * 1024 * 1024)); return new Response('sent'); } catch (e) { return new Response(e.message, { status: 500 }); } }
      if (op === 'evil') { try { return Response.json(await env.EVIL.add(1, 1)); } catch (e) { return new Response(e.message, { status: 500 }); } }
      // Holds a stub from env[target] and calls it every 50 ms, max times or until a call fails; each
      // success is written down (for the test to see the session live) under tag.
      const q = new URL(req.url).searchParams;
      env.DB.sql.exec('CREATE TABLE IF NOT EXISTS held (tag TEXT PRIMARY KEY, n INTEGER)');
      if (op === 'held') return Response.json(env.DB.sql.exec('SELECT n FROM held WHERE tag = ?', q.get('tag')).toArray()[0]?.n ?? 0);
      if (op === 'hold') {
        const counter = await env[q.get('target')].counter();
        let n = 0, error = null;
        for (let i = 0; i < Number(q.get('max')); i++) {
          try { n = await counter.inc(); } catch (e) { error = e.message; break; }
          env.DB.sql.exec('INSERT OR REPLACE INTO held VALUES (?, ?)', q.get('tag'), n);
          await new Promise((r) => setTimeout(r, 50));
        }
        return Response.json({ n, error });
      }
      return new Response('?', { status: 404 });
    } }`,
  // evil's hostile callee, granted to acme: it probes the callback acme hands it.
  'spy.js': `import { WorkerEntrypoint } from 'cloudflare:workers';
    export default class extends WorkerEntrypoint {
      async probe(fn, data) {
        const out = { called: await fn(21), data };
        for (const path of ['DB', 'env', 'constructor', '__proto__', 'prototype', 'call', 'apply', 'bind', 'caller', 'arguments']) {
          try { const v = await fn[path]; out[path] = v === undefined ? 'undefined' : typeof v; } catch (e) { out[path] = 'refused: ' + e.message; }
          try { await fn[path](); out[path + '()'] = 'called'; } catch (e) { out[path + '()'] = 'refused'; }
        }
        try { out.sql = await fn.DB.sql.exec('SELECT v FROM s'); } catch (e) { out.sql = 'refused'; }
        return out;
      }
      add(a, b) { return a + b; }
    }`,
  // evil's caller: binds acme's api without a grant.
  'thief.js': `export default { async fetch(req, env) {
      try { return Response.json(await env.API.add(1, 1)); } catch (e) { return new Response(e.message, { status: 500 }); }
    } }`,
};

/** The keyring a compromised sandbox of `cordon` holds (as the fuzz target derives it). */
const stolenKeyring = (dataDir: string, cordon: string) => Keyring.forRole(loadMeshSecret(dataDir, {}), 'sandbox', cordon);

describe('attacks on service bindings', () => {
  let mesh: TestMesh;
  let dir: string;
  const get = (path: string, op: string) => fetch(`${mesh.httpUrl}/${path}?op=${op}`);
  const audit = async () => (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
  const codeKey = (id: string) => {
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
    try {
      return (db.prepare('SELECT code_key FROM workers WHERE id = ?').pluck().get(id) as string | undefined)!;
    } finally {
      db.close();
    }
  };
  /** acme's caller: its storage intact and its own binding working, served by the same sandbox process. */
  const bystanderUnharmed = async (pid: number | undefined) => {
    const secret = await (await get('acme-front', 'secret')).text();
    assert.equal(secret, '[{"v":"acme secret"}]');
    const add = await (await get('acme-front', 'add')).text();
    assert.equal(add, '42');
    assert.equal(mesh.servicePids().get('sandbox:standard'), pid, 'the standard sandbox did not restart');
  };
  const deploy = async (file: string, args: string[]) => {
    const r = await mesh.cli(['deploy', join(dir, file), ...args]);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cordon-sb-'));
    for (const [name, source] of Object.entries(SOURCES)) writeFileSync(join(dir, name), source);
    mesh = await startTestMesh();
    await deploy('api.js', ['--name', 'api', '--tenant', 'acme', '--cordon', 'standard']);
    await deploy('spy.js', ['--name', 'spy', '--tenant', 'evil', '--cordon', 'untrusted', '--allow-rpc-from', 'acme']);
    await deploy('front.js', [
      ...['--name', 'front', '--tenant', 'acme', '--cordon', 'standard', '--route', '*/acme-front*', '--storage', 'DB'],
      ...['--service', 'API=api', '--service', 'SPY=evil/spy', '--service', 'EVIL=evil/spy'],
      ...['--service', 'HELD=held', '--service', 'LENDER=evil/lender', '--service', 'GAMMA=gamma/held'],
    ]);
    await deploy('held.js', ['--name', 'held', '--tenant', 'acme', '--cordon', 'standard']);
    await deploy('held.js', ['--name', 'lender', '--tenant', 'evil', '--cordon', 'untrusted', '--allow-rpc-from', 'acme']);
    await deploy('held.js', ['--name', 'held', '--tenant', 'gamma', '--cordon', 'untrusted', '--allow-rpc-from', 'acme']);
    await deploy('thief.js', ['--name', 'thief', '--tenant', 'evil', '--cordon', 'untrusted', '--route', '*/evil-thief*', '--service', 'API=acme/api']);
    await waitFor('acme’s front to serve', async () => (await get('acme-front', 'seed')).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a binding to another tenant’s worker without its grant is refused and audited', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const r = await get('evil-thief', '');
    assert.equal(r.status, 500);
    assert.match(await r.text(), /acme\/api belongs to another tenant, which has not granted evil/);
    assert.match(await audit(), /capability\.service\.connect\tevil\/thief\tdenied\t.*has not granted evil/);
    await bystanderUnharmed(pid);
  });

  test('a hostile callee cannot reach past the callback it was handed: not the caller’s env, storage, or function internals', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const r = await get('acme-front', 'spy');
    assert.equal(r.status, 200);
    const out = (await r.json()) as Record<string, unknown>;
    assert.equal(out.called, 42, 'the callback itself works');
    assert.deepEqual(out.data, { note: 'plain data' });
    assert.equal(out.sql, 'refused');
    // Nothing of the caller's function travels: its properties are refused, and calling them fails.
    // (`constructor` and `__proto__` are the stub's own, in the callee's isolate: not the caller's.)
    for (const path of ['DB', 'env', 'constructor', '__proto__', 'prototype', 'call', 'apply', 'bind', 'caller', 'arguments']) {
      assert.equal(out[`${path}()`], 'refused', `${path}() on the callback`);
      if (path !== 'constructor' && path !== '__proto__')
        assert.ok(out[path] === 'undefined' || String(out[path]).startsWith('refused'), `${path} on the callback: ${String(out[path])}`);
    }
    assert.doesNotMatch(JSON.stringify(out), /acme secret/);
    await bystanderUnharmed(pid);
  });

  test('a compromised sandbox cannot forge a call: no other cordon’s binding, no callee its binding does not name', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const s: MeshSession<SupervisorForSandbox> = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolenKeyring(mesh.dataDir, 'untrusted'),
      name: 'untrusted',
      expect: 'supervisor',
    });
    try {
      // acme's front runs in the standard cordon: its key opens nothing here.
      await assert.rejects(Promise.resolve(s.remote.capabilities(codeKey('acme/front'))), /code key refused/);
      // evil's own thief: its binding is what its deploy said (acme/api, not granted), whatever this process sends.
      const caps = (await s.remote.capabilities(codeKey('evil/thief'))) as unknown as Record<string, RpcStub<ServiceBindingApi>>;
      const pipe = new (class extends RpcTarget implements RpcPipe {
        async send() {}
        async close() {}
      })();
      await assert.rejects(Promise.resolve(caps.API!.connect(pipe)), /has not granted evil/);
      // Not a capability where one is expected; and no method beyond connect.
      await assert.rejects(Promise.resolve(caps.API!.connect('acme/api' as never)), /caller must be a capability/);
      await assert.rejects(Promise.resolve((caps.API as unknown as { serve(...a: unknown[]): Promise<unknown> }).serve('acme/api')));
    } finally {
      s.close();
    }
    await bystanderUnharmed(pid);
  });

  /**
   * A caller holds a stub from `target` (and, beside it, one from the bystander acme/api), then `act`
   * happens: the held stub's next call fails with `reason`, the bystander's session runs its course.
   */
  const heldAcross = async (target: string, act: () => Promise<void>, reason: RegExp) => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const tag = `${target}-${Date.now()}`;
    const held = fetch(`${mesh.httpUrl}/acme-front?op=hold&target=${target}&tag=${tag}&max=300`).then((r) => r.json());
    const bystander = fetch(`${mesh.httpUrl}/acme-front?op=hold&target=API&tag=b-${tag}&max=60`).then((r) => r.json());
    const calls = async (t: string) => (await (await fetch(`${mesh.httpUrl}/acme-front?op=held&tag=${t}`)).json()) as number;
    await waitFor('both sessions to be live', async () => ((await calls(tag)) >= 2 && (await calls(`b-${tag}`)) >= 2) || undefined, 20_000, 50);
    await act();
    const out = (await held) as { n: number; error: string | null };
    assert.ok(out.error, `the held stub kept working (${out.n} calls)`);
    assert.match(out.error, reason);
    assert.ok(out.n < 300);
    assert.deepEqual(await bystander, { n: 60, error: null }, "the bystander's session ran its course");
    await bystanderUnharmed(pid);
  };

  test('a stub held across its callee’s undeploy stops working at once, with the reason', async () => {
    await heldAcross(
      'HELD',
      async () => {
        const r = await mesh.cli(['delete', 'acme/held']);
        assert.equal(r.code, 0, r.stderr);
      },
      /the RPC session to acme\/held was revoked: acme\/held was undeployed/,
    );
  });

  test('a stub held across the withdrawal of the callee owner’s grant stops working at once', async () => {
    await heldAcross(
      'LENDER',
      // evil redeploys its lender without --allow-rpc-from acme.
      () => deploy('held.js', ['--name', 'lender', '--tenant', 'evil', '--cordon', 'untrusted']),
      /the RPC session to evil\/lender was revoked: evil\/lender's owner no longer grants acme/,
    );
  });

  test('a stub held across its callee’s quarantine stops working at once', async () => {
    await heldAcross(
      'GAMMA',
      async () => {
        const r = await mesh.cli(['quarantine', 'tenant', 'gamma', '--reason', 'attack test']);
        assert.equal(r.code, 0, r.stderr);
      },
      /the RPC session to gamma\/held was revoked: gamma\/held was moved to cordon q-/,
    );
  });

  test('malformed and oversized messages close that session only: from a worker, and from a compromised callee sandbox', async () => {
    const pid = mesh.servicePids().get('sandbox:standard');
    const huge = await get('acme-front', 'huge');
    assert.equal(huge.status, 500);
    assert.match(await huge.text(), /larger than 12 MiB/);
    await bystanderUnharmed(pid);

    // The untrusted sandbox, compromised, offers its own runner: the supervisor asks it to serve evil/spy
    // for acme's EVIL binding, and it answers with garbage, then a message over the limit.
    const s = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolenKeyring(mesh.dataDir, 'untrusted'),
      name: 'untrusted',
      expect: 'supervisor',
    });
    let served = 0;
    const hostile = new (class extends RpcTarget implements WorkerRunner {
      async serve(_key: string, _ep: string, _props: unknown, caller: RpcStub<RpcPipe>): Promise<RpcPipe> {
        served++;
        const mine = caller.dup();
        const end = new (class extends RpcTarget implements RpcPipe {
          async send() {
            await mine.send(served === 1 ? '["resolve",1,["what is this"' : `["resolve",1,"${'y'.repeat(13 * 1024 * 1024)}"]`).catch(() => {});
          }
          async close() {}
        })();
        return end;
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
      // The hostile runner is one replica of the cordon beside the real sandbox, and the supervisor
      // hands sessions out in turn: each call the hostile one served fails alone, the others are the
      // real callee's answers (bounded: at most 8 calls to see the hostile one serve twice).
      for (let attempt = 1; attempt <= 8 && served < 2; attempt++) {
        const before = served;
        const r = await get('acme-front', 'evil');
        assert.equal(r.status, served > before ? 500 : 200, `attempt ${attempt} (hostile served ${served}): ${await r.clone().text()}`);
        await bystanderUnharmed(pid);
      }
      assert.equal(served, 2);
    } finally {
      s.close();
    }
  });
});
