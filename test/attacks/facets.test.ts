/**
 * Facets, through the real mesh: two tenants deploy the same worker, whose `Vault` object runs a class
 * loaded with the Worker Loader (`Box`) as facets. A facet's database is its own by construction: the
 * facet holds no handle to its parent's database nor to a sibling's (its SQL sees only its own tables,
 * ATTACH is refused), the parent's SQL cannot see the facet's, a facet name is never a path (`../`
 * stays in the object's directory), names past 256 characters and trees deeper than 4 are refused, and
 * another tenant reaches neither the object nor its facets. A facet's code that breaks its limit is
 * stopped and counts against its parent worker (quarantine). The bystander's data stays whole.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

/** The loaded class: its facets keep a secret, try to reach beyond their database, and nest. */
const BOX = `
import { DurableObject } from 'cloudflare:workers';
export class Box extends DurableObject {
  async put(secret) {
    this.ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS box (secret TEXT)');
    this.ctx.storage.sql.exec('INSERT INTO box VALUES (?)', secret);
    await this.ctx.storage.put('kv-secret', secret);
    return 'stored';
  }
  async read() {
    const tables = this.ctx.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name);
    const rows = tables.includes('box') ? this.ctx.storage.sql.exec('SELECT secret FROM box').toArray().map((r) => r.secret) : [];
    return { tables, rows, kv: (await this.ctx.storage.get('kv-secret')) ?? null, parentKv: (await this.ctx.storage.get('parent-secret')) ?? null };
  }
  async escape(parentId) {
    const out = {};
    const tries = {
      parentTable: 'SELECT * FROM parent_secrets',
      attach: "ATTACH DATABASE '" + parentId + ".sqlite' AS p",
      attachUp: "ATTACH DATABASE '../" + parentId + ".sqlite' AS p",
      attachUri: "ATTACH DATABASE 'file:" + parentId + ".sqlite?mode=ro' AS p",
    };
    for (const [k, q] of Object.entries(tries)) {
      try {
        out[k] = 'ran: ' + JSON.stringify(this.ctx.storage.sql.exec(q).toArray());
      } catch (e) {
        out[k] = 'refused: ' + e.message;
      }
    }
    return out;
  }
  spin() {
    for (;;) {}
  }
  async nest(depth) {
    if (depth === 0) return 'bottom';
    return this.ctx.facets.get('n', () => ({ class: this.ctx.exports.Box })).nest(depth - 1);
  }
}`;

const WORKER = `
import { DurableObject } from 'cloudflare:workers';
const BOX = ${JSON.stringify(BOX)};
export class Vault extends DurableObject {
  box(name) {
    const worker = this.env.LOADER.get('box:1', async () => ({ compatibilityDate: '2026-11-01', mainModule: 'box.js', modules: { 'box.js': BOX }, globalOutbound: null }));
    return this.ctx.facets.get(name, () => ({ class: worker.getDurableObjectClass('Box') }));
  }
  async run(op, q) {
    const sql = this.ctx.storage.sql;
    if (op === 'put') {
      sql.exec('CREATE TABLE IF NOT EXISTS parent_secrets (s TEXT)');
      sql.exec('INSERT INTO parent_secrets VALUES (?)', 'parent-' + q.get('secret'));
      await this.ctx.storage.put('parent-secret', 'parent-' + q.get('secret'));
      return this.box(q.get('facet')).put(q.get('secret'));
    }
    if (op === 'read') return this.box(q.get('facet')).read();
    if (op === 'escape') return this.box(q.get('facet')).escape(String(this.ctx.id));
    if (op === 'nest') return this.box(q.get('facet')).nest(Number(q.get('depth')));
    if (op === 'parent-sql') return sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").toArray().map((r) => r.name);
    if (op === 'parent-read-box') return sql.exec('SELECT secret FROM box').toArray();
    if (op === 'id') return String(this.ctx.id);
    if (op === 'clone') {
      this.ctx.facets.clone(q.get('src'), q.get('dst'));
      return this.box(q.get('dst')).read();
    }
    if (op === 'spin') {
      const worker = this.env.LOADER.get('spin:1', async () => ({ compatibilityDate: '2026-11-01', mainModule: 'box.js', modules: { 'box.js': BOX }, globalOutbound: null, limits: { cpuMs: 20 } }));
      try {
        return await this.ctx.facets.get('spin', () => ({ class: worker.getDurableObjectClass('Box') })).spin();
      } catch (e) {
        return 'parent caught: ' + e.message + ' | parent still has ' + sql.exec('SELECT count(*) AS n FROM parent_secrets').one().n + ' rows';
      }
    }
    throw new Error('no op ' + op);
  }
  async fetch(request) {
    const url = new URL(request.url);
    const op = url.pathname.split('/')[3];
    try {
      return Response.json({ ok: await this.run(op, url.searchParams) });
    } catch (e) {
      return Response.json({ error: e.message });
    }
  }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, , , op, name] = url.pathname.split('/');
    if (op === 'by-id') {
      try {
        return env.VAULT.get(env.VAULT.idFromString(url.searchParams.get('id'))).fetch(new URL('/x/x/read', url) + url.search);
      } catch (e) {
        return Response.json({ error: e.message });
      }
    }
    return env.VAULT.getByName(name).fetch(request);
  },
};`;

function project(tenant: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-facets-'));
  writeFileSync(join(dir, 'index.js'), WORKER);
  writeFileSync(
    join(dir, 'wrangler.jsonc'),
    JSON.stringify({
      name: 'vault',
      main: 'index.js',
      compatibility_date: '2026-11-01',
      routes: [`*/${tenant}/vault/*`],
      worker_loaders: [{ binding: 'LOADER' }],
      durable_objects: { bindings: [{ name: 'VAULT', class_name: 'Vault' }] },
      migrations: [{ tag: 'v1', new_sqlite_classes: ['Vault'] }],
    }),
  );
  return dir;
}

describe('attacks: facets', () => {
  let mesh: TestMesh;
  const op = async (tenant: string, path: string) => {
    const r = await fetch(`${mesh.httpUrl}/${tenant}/vault/${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text) as { ok?: any; error?: string };
  };

  before(async () => {
    mesh = await startTestMesh();
    for (const tenant of ['acme', 'evil']) {
      const r = await mesh.cli(['deploy', '--tenant', tenant], project(tenant));
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('both tenants to serve', async () => {
      const a = await fetch(`${mesh.httpUrl}/acme/vault/id/warm`);
      const e = await fetch(`${mesh.httpUrl}/evil/vault/id/warm`);
      return (a.status === 200 && e.status === 200) || undefined;
    });
    assert.deepEqual(await op('acme', 'put/safe?facet=a&secret=acme-a'), { ok: 'stored' });
    assert.deepEqual(await op('acme', 'put/safe?facet=b&secret=acme-b'), { ok: 'stored' });
  });
  after(async () => {
    await mesh?.stop();
  });

  test("a facet cannot read its parent's database: none of its tables, no ATTACH, not its keys", async () => {
    const read = (await op('acme', 'read/safe?facet=a')).ok;
    assert.deepEqual(read, { tables: ['_cf_KV', 'box'], rows: ['acme-a'], kv: 'acme-a', parentKv: null });
    const escape = (await op('acme', 'escape/safe?facet=a')).ok as Record<string, string>;
    assert.match(escape.parentTable!, /^refused: no such table: parent_secrets/);
    for (const k of ['attach', 'attachUp', 'attachUri']) assert.match(escape[k]!, /^refused: .*not authorized/, `${k}: ${escape[k]}`);
  });

  test("a facet cannot read a sibling's database, and the parent's SQL cannot read a facet's", async () => {
    assert.deepEqual((await op('acme', 'read/safe?facet=b')).ok.rows, ['acme-b']);
    assert.deepEqual((await op('acme', 'parent-sql/safe')).ok, ['_cf_KV', 'parent_secrets']);
    assert.match((await op('acme', 'parent-read-box/safe')).error ?? '', /no such table: box/);
  });

  test('facet names are not paths: `../` stays beside its object; too long and too deep are refused', async () => {
    assert.deepEqual(await op('acme', `put/safe?facet=${encodeURIComponent('../../../../marker-escape')}&secret=dots`), { ok: 'stored' });
    assert.deepEqual(await op('acme', `put/safe?facet=${encodeURIComponent('a/../b')}&secret=slashes`), { ok: 'stored' });
    // A name made of the same characters as another's is another facet.
    assert.deepEqual((await op('acme', 'read/safe?facet=b')).ok.rows, ['acme-b']);
    assert.match((await op('acme', `read/safe?facet=${'x'.repeat(257)}`)).error ?? '', /facet name is 1 to 256 characters/);
    assert.deepEqual((await op('acme', `put/safe?facet=${'x'.repeat(256)}&secret=long`)).ok, 'stored');
    // Root, box, n, n: four levels, workerd's limit; a fifth is refused by the supervisor.
    assert.deepEqual(await op('acme', 'nest/safe?facet=a&depth=2'), { ok: 'bottom' });
    assert.match((await op('acme', 'nest/safe?facet=a&depth=3')).error ?? '', /facets may nest at most 4 deep/);
    // Every file of the object is its id and hashed levels, in its class's directory; no name reached the disk.
    const dir = join(mesh.dataDir, 'supervisor', 'tenants', 'acme', 'vault', 'objects', 'Vault');
    const id = (await op('acme', 'id/safe')).ok as string;
    const files = readdirSync(dir).filter((f) => f.startsWith(id));
    assert.ok(files.length >= 7, files.join(' '));
    for (const f of files) assert.match(f, /^[0-9a-f]{64}(\.[0-9a-f]{24}){0,3}\.sqlite(-wal|-shm)?$/);
    const all = readdirSync(mesh.dataDir, { recursive: true }) as string[];
    assert.deepEqual(
      all.filter((p) => p.includes('marker-escape')),
      [],
    );
  });

  test("clone copies a facet's database within its object only; the source stays; names are still not paths", async () => {
    const copy = (await op('acme', 'clone/safe?src=a&dst=copy')).ok;
    assert.deepEqual(copy.rows, ['acme-a']);
    assert.equal(copy.parentKv, null, "the copy is the facet's data, not its parent's");
    assert.deepEqual((await op('acme', 'read/safe?facet=a')).ok.rows, ['acme-a']);
    // Over an existing facet: its data is replaced.
    assert.deepEqual((await op('acme', `clone/safe?src=b&dst=${encodeURIComponent('../../../../marker-escape')}`)).ok.rows, ['acme-b']);
    assert.match((await op('acme', `clone/safe?src=a&dst=${'y'.repeat(257)}`)).error ?? '', /facet name is 1 to 256 characters/);
    // Another tenant's clone of the same names copies its own (empty) facet.
    assert.deepEqual((await op('evil', 'clone/safe?src=a&dst=copy')).ok.rows, []);
  });

  test("another tenant reaches neither the object nor its facets; the same names are its own; the bystander's data is whole", async () => {
    const victim = (await op('acme', 'id/safe')).ok as string;
    assert.match((await op('evil', `by-id/x?id=${victim}&facet=a`)).error ?? '', /Invalid Durable Object ID/);
    // The same object name and facet name in evil's namespace: evil's own, empty.
    assert.deepEqual((await op('evil', 'read/safe?facet=a')).ok, { tables: ['_cf_KV'], rows: [], kv: null, parentKv: null });
    assert.notEqual((await op('evil', 'id/safe')).ok, victim);
    // The bystander.
    assert.deepEqual((await op('acme', 'read/safe?facet=a')).ok.rows, ['acme-a']);
    assert.deepEqual((await op('acme', 'read/safe?facet=b')).ok.rows, ['acme-b']);
    assert.deepEqual((await op('acme', 'parent-sql/safe')).ok, ['_cf_KV', 'parent_secrets']);
  });

  // Last: it moves acme's worker to quarantine.
  test("a facet's code breaking its limit is stopped, its parent keeps serving, and the hits count against the parent worker", async () => {
    const first = (await op('acme', 'spin/safe')).ok as string;
    assert.match(first, /^parent caught: .*CPU time limit of 20 ms.* \| parent still has \d+ rows$/);
    assert.deepEqual((await op('acme', 'read/safe?facet=a')).ok.rows, ['acme-a']);
    let listed = '';
    for (let n = 1; n <= 40 && !listed.includes('acme/vault'); n++) {
      await fetch(`${mesh.httpUrl}/acme/vault/spin/safe`).then((r) => r.text());
      if (n >= 20) listed = (await mesh.cli(['quarantine', 'list'])).stdout;
    }
    await waitFor('the parent in quarantine', async () =>
      (listed = (await mesh.cli(['quarantine', 'list'])).stdout).includes('acme/vault') ? true : undefined,
    );
    assert.doesNotMatch(listed, /evil\/vault/);
    assert.deepEqual((await op('evil', 'read/safe?facet=a')).ok.rows, []);
  });
});
