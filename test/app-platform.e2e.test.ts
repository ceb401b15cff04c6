/**
 * Facets end to end: the app platform example (examples/app-platform) deployed with the CLI from its
 * wrangler.jsonc. Each customer's app is loaded with the Worker Loader and runs as a facet of that
 * customer's AppRunner object: two apps each keep their own SQL data; an app without allowed hosts has
 * no network (`globalOutbound: null`), one with them reaches those only, through the platform's
 * Gateway; the platform's own SQL cannot see an app's database; a new version keeps the app's data,
 * deleting the app deletes it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

/** A customer's app: notes in its own SQLite database, and a fetch() to show what its network reaches. */
const NOTES_APP = (label: string) => `
import { DurableObject } from 'cloudflare:workers';
export class App extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.storage.sql.exec('CREATE TABLE IF NOT EXISTS notes (text TEXT)');
  }
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/add') this.ctx.storage.sql.exec('INSERT INTO notes VALUES (?)', url.searchParams.get('text'));
    if (url.pathname === '/fetch') {
      try {
        const r = await fetch(url.searchParams.get('url'));
        return new Response(r.status + ' ' + (await r.text()));
      } catch (e) {
        return new Response('threw: ' + e.message);
      }
    }
    const notes = this.ctx.storage.sql.exec('SELECT text FROM notes').toArray().map((r) => r.text);
    return Response.json({ app: '${label}', customer: this.env.CUSTOMER, notes });
  }
}`;

describe('app platform (facets of loaded classes)', () => {
  let mesh: TestMesh;
  let server: Server;
  let origin: string;
  const call = async (path: string, init?: RequestInit) => {
    const r = await fetch(`${mesh.httpUrl}${path}`, init);
    const text = await r.text();
    // No step expects a 500: one comes with the platform's log, so that a failure says why.
    return { status: r.status, text: r.status === 500 ? `${text}${(await mesh.cli(['logs', 'default/app-platform'])).stdout.slice(-4000)}` : text };
  };
  const json = async (path: string) => {
    const r = await call(path);
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return JSON.parse(r.text) as { app: string; customer: string; notes: string[] };
  };

  before(async () => {
    server = createServer((_req, res) => res.end('hello from the allowed host'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    mesh = await startTestMesh();
    // The loopback server is an origin the platform may reach (egress refuses private addresses otherwise).
    const d = await mesh.cli(['deploy', '--config', 'examples/app-platform/wrangler.jsonc', '--origin', `http://${origin}`]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the platform', async () => ((await call('/customers/nobody/')).status === 404 ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
    server?.close();
  });

  test("two customers' apps each keep their own SQL data", async () => {
    assert.equal((await call('/customers/alice/app', { method: 'PUT', body: NOTES_APP('notes') })).text, 'alice: version 1\n');
    assert.equal((await call(`/customers/bob/app?allow=${origin}`, { method: 'PUT', body: NOTES_APP('notes') })).text, 'bob: version 1\n');
    await json('/customers/alice/add?text=alice-secret');
    await json('/customers/bob/add?text=bob-1');
    await json('/customers/bob/add?text=bob-2');
    assert.deepEqual(await json('/customers/alice/'), { app: 'notes', customer: 'alice', notes: ['alice-secret'] });
    assert.deepEqual(await json('/customers/bob/'), { app: 'notes', customer: 'bob', notes: ['bob-1', 'bob-2'] });
  });

  test('an app without allowed hosts has no network; one with them reaches those only, through the Gateway', async () => {
    assert.match((await call(`/customers/alice/fetch?url=http://${origin}/`)).text, /^threw: This worker is not permitted to access the internet/);
    assert.equal((await call(`/customers/bob/fetch?url=http://${origin}/`)).text, '200 hello from the allowed host');
    assert.equal((await call('/customers/bob/fetch?url=https://example.com/')).text, '403 the platform does not let bob reach example.com');
  });

  test("the platform's own SQL cannot read an app's database", async () => {
    const tables = await call(`/customers/alice/_platform/sql?q=${encodeURIComponent("SELECT name FROM sqlite_master WHERE type = 'table'")}`);
    assert.equal(tables.status, 200, tables.text);
    assert.ok(!tables.text.includes('notes'), tables.text);
    const read = await call(`/customers/alice/_platform/sql?q=${encodeURIComponent('SELECT text FROM notes')}`);
    assert.equal(read.status, 400);
    assert.match(read.text, /no such table: notes/);
    const attach = await call(`/customers/alice/_platform/sql?q=${encodeURIComponent("ATTACH DATABASE 'x.sqlite' AS app")}`);
    assert.equal(attach.status, 400);
    assert.match(attach.text, /not authorized|not allowed/i);
    // The app's rows are on disk beside the platform's object, in a database of their own.
    const dir = join(mesh.dataDir, 'supervisor', 'tenants', 'default', 'app-platform', 'objects', 'AppRunner');
    const files = readdirSync(dir).filter((f) => f.endsWith('.sqlite'));
    const facetFiles = files.filter((f) => /^[0-9a-f]{64}\.[0-9a-f]{24}\.sqlite$/.test(f));
    assert.equal(facetFiles.length, 2, files.join(' '));
    assert.ok(facetFiles.some((f) => readFileSync(join(dir, f)).includes('alice-secret') || readWal(dir, f).includes('alice-secret')));
  });

  test("a new version of an app is a new class for the facet; the app's data stays", async () => {
    assert.equal((await call('/customers/alice/app', { method: 'PUT', body: NOTES_APP('notes v2') })).text, 'alice: version 2\n');
    assert.deepEqual(await json('/customers/alice/'), { app: 'notes v2', customer: 'alice', notes: ['alice-secret'] });
  });

  test('facet creations are counted against the platform', async () => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const created = await waitFor('the facets counted', async () => {
      const r = await fetch(`${mesh.adminUrl}/v1/workers/default/app-platform`, { headers: { authorization: `Bearer ${token}` } });
      const c = ((await r.json()) as { created: Record<string, number> }).created;
      return (c.facet ?? 0) >= 2 ? c : undefined;
    });
    assert.equal(created.facet, 2);
    assert.equal(created['durable-object'], 3, 'nobody, alice and bob: one AppRunner each');
  });

  test("deleting an app deletes its database; the other customer's app is unharmed", async () => {
    assert.equal((await call('/customers/alice/app', { method: 'DELETE' })).text, 'alice: deleted\n');
    assert.equal((await call('/customers/alice/')).status, 404);
    assert.equal((await call('/customers/alice/app', { method: 'PUT', body: NOTES_APP('notes v3') })).text, 'alice: version 3\n');
    assert.deepEqual(await json('/customers/alice/'), { app: 'notes v3', customer: 'alice', notes: [] });
    assert.deepEqual(await json('/customers/bob/'), { app: 'notes', customer: 'bob', notes: ['bob-1', 'bob-2'] });
  });

  test("the operator's `cordon objects delete` wipes the object's facets with it", async () => {
    const list = await mesh.cli(['objects', 'list', 'app-platform']);
    assert.equal(list.code, 0, list.stderr);
    const id = /AppRunner\t([0-9a-f]{64})\tbob\t/.exec(list.stdout)?.[1];
    assert.ok(id, list.stdout);
    const del = await mesh.cli(['objects', 'delete', 'app-platform', 'AppRunner', id]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await call('/customers/bob/')).status, 404, 'the platform object is empty');
    assert.equal((await call('/customers/bob/app', { method: 'PUT', body: NOTES_APP('notes') })).text, 'bob: version 1\n');
    assert.deepEqual(await json('/customers/bob/'), { app: 'notes', customer: 'bob', notes: [] }, "the app's database went with it");
    assert.deepEqual((await json('/customers/alice/')).notes, [], 'alice unharmed (deleted earlier, empty since)');
  });
});

function readWal(dir: string, file: string): Buffer {
  try {
    return readFileSync(join(dir, `${file}-wal`));
  } catch {
    return Buffer.alloc(0);
  }
}
