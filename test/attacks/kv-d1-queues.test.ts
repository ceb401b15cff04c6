/**
 * Attacks on KV, D1 and Queues, through the real mesh. Two tenants deploy the same wrangler config
 * (test/fixtures/projects/kv-d1-queues): the same KV namespace id, D1 database id and queue names.
 * - A tenant naming another tenant's namespace, database or queue gets its own, never the other's.
 * - A compromised sandbox holding the attacker's capabilities can name nothing else: extra
 *   arguments and fields are refused, hostile SQL is refused by the authorizer, oversized values and
 *   messages are refused before anything is stored.
 * - Large KV values (up to 25 MiB, carried in parts): a tenant cannot hold more than its share of the
 *   supervisor's memory with values in transit, nor store past its namespace's quota; the bystander
 *   puts and reads its own 20 MiB value meanwhile.
 * - The bystander tenant's data and its queue's delivery are unharmed throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { fetchHost, ROOT, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';

const PROJECT = join(ROOT, 'test/fixtures/projects/kv-d1-queues');

describe('KV, D1 and Queues across tenants', () => {
  let mesh: TestMesh;
  // Each tenant's worker is on its own route.
  const call = async (tenant: string, path: string) => {
    const r = await fetchHost(mesh, `${tenant}.example`, `/kdq/${path}`);
    const text = await r.text();
    try {
      return JSON.parse(text) as { ok?: any; error?: string };
    } catch {
      throw new Error(`${tenant} ${path}: ${r.status} ${text}`);
    }
  };
  const received = async (tenant: string) => ((await call(tenant, 'q/received')).ok ?? []) as { body: string; queue: string }[];

  /** The supervisor session of evil's sandbox, as a compromised sandbox holds it, and the worker's capabilities on it. */
  const compromised = async () => {
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
    const w = db.prepare('SELECT cordon, code_key AS codeKey FROM workers WHERE id = ?').get('evil/kdq') as { cordon: string; codeKey: string };
    db.close();
    const session = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: Keyring.forRole(loadMeshSecret(mesh.dataDir, {}), 'sandbox', w.cordon),
      name: w.cordon,
      expect: 'supervisor',
    });
    return { session, caps: (await session.remote.capabilities(w.codeKey)) as Record<string, any> };
  };

  before(async () => {
    // A namespace holds 64 MB here: two values of 25 MiB fill it.
    mesh = await startTestMesh({ CORDON_RESOURCE_QUOTA_MB: '64' });
    for (const tenant of ['acme', 'evil']) {
      // The same config but for its route, which is the tenant's own host.
      const dir = mkdtempSync(join(tmpdir(), `cordon-kdq-${tenant}-`));
      cpSync(PROJECT, dir, { recursive: true });
      const config = join(dir, 'wrangler.jsonc');
      writeFileSync(config, readFileSync(config, 'utf8').replace('"*/kdq*"', `"${tenant}.example/kdq*"`));
      const d = await mesh.cli(['deploy', '--tenant', tenant], dir);
      rmSync(dir, { recursive: true, force: true });
      assert.equal(d.code, 0, d.stderr);
    }
    for (const tenant of ['acme', 'evil'])
      await waitFor(`${tenant}'s worker`, async () => ((await call(tenant, 'd1/setup')).error === undefined ? true : undefined));
    // The bystander's data.
    assert.equal((await call('acme', 'kv/put?key=secret&value=acme-only')).error, undefined);
    assert.equal((await call('acme', 'd1/insert?name=acme-secret')).error, undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test("the same namespace id, database id and queue name open the tenant's own, never the other's", async () => {
    assert.equal((await call('evil', 'kv/get?key=secret')).ok, null);
    assert.deepEqual((await call('evil', 'kv/list')).ok.keys, []);
    assert.deepEqual((await call('evil', 'd1/all')).ok.results, []);
    assert.equal((await call('evil', 'kv/put?key=secret&value=overwritten')).error, undefined);
    assert.equal((await call('acme', 'kv/get?key=secret')).ok, 'acme-only', "evil's write went to its own namespace");
    // Each tenant's consumer sees only its own tenant's messages.
    assert.equal((await call('acme', 'q/send?body=for-acme')).error, undefined);
    assert.equal((await call('evil', 'q/send?body=for-evil')).error, undefined);
    await waitFor('both deliveries', async () => ((await received('acme')).length && (await received('evil')).length ? true : undefined), 30_000, 250);
    assert.deepEqual(
      (await received('acme')).map((r) => r.body),
      ['for-acme'],
    );
    assert.deepEqual(
      (await received('evil')).map((r) => r.body),
      ['for-evil'],
    );
  });

  test("hostile SQL through D1 is refused by the authorizer: no ATTACH of the other tenant's file, no PRAGMA, no extension", async () => {
    const acmeFile = join(mesh.dataDir, 'supervisor', 'tenants', 'acme', '_d1', 'main-db.sqlite');
    for (const q of [
      `ATTACH DATABASE '${acmeFile}' AS other`,
      `VACUUM INTO '${join(mesh.dataDir, 'copy.sqlite')}'`,
      'PRAGMA journal_mode = DELETE',
      "SELECT load_extension('/tmp/x')",
      'DELETE FROM _cf_KV',
      'CREATE VIRTUAL TABLE v USING fts5(x)',
    ]) {
      const r = await call('evil', `d1/sql?q=${encodeURIComponent(q)}`);
      assert.match(r.error ?? '', /D1_ERROR: .*not authorized/, q);
    }
    assert.deepEqual(
      (await call('acme', 'd1/all')).ok.results.map((r: { name: string }) => r.name),
      ['acme-secret'],
    );
  });

  test("a compromised sandbox with the attacker's capabilities names nothing else, and oversized input is refused", async () => {
    const { session, caps } = await compromised();
    try {
      // The legitimate call works and sees evil's own namespace.
      const [[mine]] = await caps.KV.get(['secret']);
      assert.equal(new TextDecoder().decode(mine), 'overwritten');
      // Fields and arguments that could name another tenant or resource are refused, not ignored.
      await assert.rejects(async () => await caps.KV.list({ prefix: '', tenant: 'acme' }), /invalid list options/);
      await assert.rejects(async () => await caps.KV.put('x', new Uint8Array(1), { namespace: 'acme/cache' }), /invalid put options/);
      await assert.rejects(async () => await caps.JOBS.send([{ body: new Uint8Array(1), contentType: 'text', queue: 'acme/jobs' }]), /invalid messages/);
      await assert.rejects(async () => await caps.DB.batch([['SELECT 1', [], 'acme']]), /invalid batch/);
      // A key is only a key: a path in it opens nothing.
      assert.equal((await caps.KV.get(['../../acme/_kv/cache']))[0][0], null);
      // Oversized values and messages: refused before anything is stored.
      // A value over a part comes in parts (putPart), never whole in one message; past 25 MiB it is refused at the first part.
      await assert.rejects(async () => await caps.KV.put('big', new Uint8Array(4 * 1024 * 1024 + 1), {}), /invalid value: expected at most 4194304 bytes/);
      await assert.rejects(
        async () => await caps.KV.putPart(null, 25 * 1024 * 1024 + 1, new Uint8Array(1)),
        /KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400\./,
      );
      // An upload holds what it said, no more; a put of an unfinished or unknown upload stores nothing.
      const upload = await caps.KV.putPart(null, 10, new Uint8Array(4));
      await assert.rejects(async () => await caps.KV.put('big', upload, {}), /invalid value: the upload holds 4 of its 10 bytes/);
      const over = await caps.KV.putPart(null, 10, new Uint8Array(4));
      await assert.rejects(async () => await caps.KV.putPart(over, 10, new Uint8Array(8)), /goes past them/);
      await assert.rejects(async () => await caps.KV.put('big', 'no-such-upload', {}), /invalid value: no transfer of that name/);
      await assert.rejects(async () => await caps.KV.getPart('no-such-download', 0), /invalid download: no transfer of that name/);
      await assert.rejects(async () => await caps.KV.put('k'.repeat(600), new Uint8Array(1), {}), /KV PUT failed: 414/);
      await assert.rejects(async () => await caps.JOBS.send([{ body: new Uint8Array(128_001), contentType: 'bytes' }]), /exceeds limit of 128000/);
      await assert.rejects(
        async () => await caps.JOBS.send(Array.from({ length: 101 }, () => ({ body: new Uint8Array(1), contentType: 'bytes' }))),
        /exceeds limit of 100/,
      );
      await assert.rejects(async () => await caps.JOBS.send([{ body: new Uint8Array(1), contentType: 'bytes', delaySeconds: 1e9 }]), /delaySeconds/);
      await assert.rejects(async () => await caps.DB.query("ATTACH DATABASE 'x' AS y", []), /not authorized/);
      // The export (every table, the runtime's own ones read past the authorizer) is the operator's, not the worker's.
      await assert.rejects(async () => await caps.DB.export({}));
      const [[big]] = await caps.KV.get(['big']);
      assert.equal(big, null);
    } finally {
      session.close();
    }
    // The bystander is unharmed: its data, and its queue still delivers.
    assert.equal((await call('acme', 'kv/get?key=secret')).ok, 'acme-only');
    assert.equal((await call('acme', 'q/send?body=after-attack')).error, undefined);
    await waitFor(
      'acme delivery after the attack',
      async () => ((await received('acme')).some((r) => r.body === 'after-attack') ? true : undefined),
      30_000,
      250,
    );
  });

  test("large KV values: a tenant's uploads in transit and its namespace quota stop it; the bystander's large and small values go through meanwhile", async () => {
    const MiB = 1024 * 1024;
    const { session, caps } = await compromised();
    try {
      // Two values of 25 MiB being uploaded hold 50 MiB; a third would pass the tenant's 64 MiB in transit.
      const part = new Uint8Array(4 * MiB).fill(1);
      const held = [await caps.KV.putPart(null, 25 * MiB, part), await caps.KV.putPart(null, 25 * MiB, part)];
      await assert.rejects(async () => await caps.KV.putPart(null, 25 * MiB, part), /KV PUT failed: 429 Too many large values in transit for this tenant/);
      // Meanwhile the bystander's own 20 MiB value goes in and comes back whole, and its small values too.
      assert.equal((await call('acme', `kv/put-large?key=large&bytes=${20 * MiB}&as=bytes`)).error, undefined);
      assert.equal((await call('acme', 'kv/get-large?key=large&type=arrayBuffer')).ok?.size, 20 * MiB);
      assert.equal((await call('acme', 'kv/get?key=secret')).ok, 'acme-only');
      // Finished, the uploads are stored until the namespace's quota (64 MB here) is used up: no third one.
      for (const name of held) {
        for (let i = 1; i < 7; i++) await caps.KV.putPart(name, 25 * MiB, i < 6 ? part : new Uint8Array(MiB));
      }
      await caps.KV.put('fill-1', held[0], {});
      await caps.KV.put('fill-2', held[1], {});
      let third = await caps.KV.putPart(null, 25 * MiB, part);
      for (let i = 1; i < 7; i++) third = await caps.KV.putPart(third, 25 * MiB, i < 6 ? part : new Uint8Array(MiB));
      await assert.rejects(async () => await caps.KV.put('fill-3', third, {}), /KV PUT failed: 413 the namespace's storage quota of \d+ bytes is used up/);
      const [[stored]] = await caps.KV.get(['fill-3']);
      assert.equal(stored, null);
    } finally {
      session.close();
    }
    // The bystander's namespace is its own: its large value is still there, and it can still write.
    assert.equal((await call('acme', 'kv/get-large?key=large&type=stream')).ok?.size, 20 * MiB);
    assert.equal((await call('acme', 'kv/put?key=after&value=1')).error, undefined);
  });

  test("cordon d1 export is an operator's and its tenant's: evil's token cannot export acme's database; a worker's dump() exports nothing", async () => {
    const token = (await mesh.cli(['tokens', 'create', '--scope', 'deploy', '--tenant', 'evil'])).stdout.trim();
    const res = await fetch(`${mesh.adminUrl}/v1/d1/acme/main-db/export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{}',
    });
    const body = await res.text();
    assert.equal(res.status, 403, body);
    assert.doesNotMatch(body, /acme-secret/);
    const own = await fetch(`${mesh.adminUrl}/v1/d1/evil/main-db/export`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tables: ['people'] }),
    });
    const sql = ((await own.json()) as { sql: string }).sql;
    assert.equal(own.status, 200);
    assert.doesNotMatch(sql, /acme-secret/, "evil's own export holds none of acme's rows");
    assert.match((await call('evil', 'd1/dump')).error!, /^D1_DUMP_ERROR/);
    assert.equal((await call('acme', 'kv/get?key=secret')).ok, 'acme-only', 'the bystander is unharmed');
  });
});
