import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CodeStore, TamperedError, type VersionInput } from './store.ts';
import { HostNotAssignedError, RouteConflictError } from './hosts.ts';
import { History } from './history.ts';

const input = (over: Partial<VersionInput> = {}): VersionInput => ({
  tenant: 'acme',
  name: 'api',
  cordon: 'standard',
  mainModule: 'worker.js',
  modules: [{ name: 'worker.js', type: 'esm', content: 'export default { fetch() { return new Response("v1") } }' }],
  limits: { cpuMs: 1000, wallMs: 30000, memoryMb: 128 },
  vars: {},
  bindings: [],
  origins: [],
  routes: ['api.acme.test/*'],
  ...over,
});

function open(dir = mkdtempSync(join(tmpdir(), 'cordon-store-')), key = randomBytes(32)) {
  return { dir, key, store: new CodeStore(join(dir, 'code.db'), key, new History(join(dir, 'git'))) };
}

test('versions are content-addressed and immutable; a redeploy rotates the code key', async () => {
  const { store: s } = open();
  const a = await s.deploy(input(), 'operator');
  assert.match(a.version, /^[0-9a-f]{64}$/);
  const unlocked = (await s.verifiedBundleForKey(a.codeKey))!;
  assert.equal(unlocked.bundle.workerId, 'acme/api');
  assert.equal(unlocked.bundle.version, a.version);
  const again = await s.deploy(input(), 'operator');
  assert.equal(again.version, a.version, 'same code and settings, same version');
  assert.notEqual(again.codeKey, a.codeKey);
  assert.equal(s.bundleForKey(a.codeKey), undefined, 'the old key stops working');
  const b = await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }), 'operator');
  assert.notEqual(b.version, a.version);
  assert.equal(s.bundleForKey(b.codeKey)!.bundle.modules[0]!.content, 'export default {}');
  assert.equal(s.bundleForKey('x'.repeat(43)), undefined);
  s.close();
});

test('a route belongs to one tenant: another tenant cannot take it, and nothing is stored when it tries', async () => {
  const { store: s } = open();
  await s.deploy(input(), 'operator');
  await assert.rejects(s.deploy(input({ tenant: 'evil', routes: ['api.acme.test/*'] }), 'operator'), RouteConflictError);
  assert.equal(s.worker('evil/api'), undefined);
  assert.deepEqual(
    s.workers().map((w) => w.id),
    ['acme/api'],
  );
  await s.deploy(input({ name: 'api2' }), 'operator');
  const { routes } = s.routingTable();
  assert.equal(routes.length, 1);
  assert.equal(routes[0]!.target.workerId, 'acme/api2');
  await assert.rejects(
    s.deploy(input({ tenant: 'evil', routes: ['API.ACME.TEST./*'] }), 'operator'),
    RouteConflictError,
    'the same pattern in another spelling',
  );
  s.close();
});

test('hosts have owners: a tenant-bound deploy routes only inside its own hosts; the operator assigns and transfers', async () => {
  const { store: s } = open();
  assert.deepEqual(s.assignHost('Admin.B.Example.', 'b'), { host: 'admin.b.example', previous: undefined, stranded: [] });
  s.assignHost('a.example', 'a');
  await s.deploy(input({ tenant: 'b', name: 'site', routes: ['admin.b.example/*'] }), 'tenant');
  for (const steal of ['*admin.b.example/*', 'admin.b.example/login*', 'ADMIN.B.EXAMPLE/*', 'admin.b.example./*', 'ａｄｍｉｎ.b.example/*', '*/*']) {
    await assert.rejects(s.deploy(input({ tenant: 'a', name: 'thief', routes: [steal] }), 'tenant'), (e: Error) => {
      assert.ok(e instanceof RouteConflictError, `${steal}: ${e.message}`);
      assert.doesNotMatch(e.message, /admin\.b\.example[^/]|tenant b/, 'a tenant-bound deployer is not told whose host it is');
      return true;
    });
  }
  await assert.rejects(s.deploy(input({ tenant: 'a', name: 'thief', routes: ['nobody.example/*'] }), 'tenant'), HostNotAssignedError);
  await assert.rejects(
    s.deploy(input({ tenant: 'a', name: 'thief', routes: ['admin.b.example/x'] }), 'operator'),
    /assigned to tenant b/,
    "even the operator cannot route inside another tenant's host",
  );
  assert.equal(s.worker('a/thief'), undefined);
  await s.deploy(input({ tenant: 'a', name: 'site', routes: ['A.example/*'] }), 'tenant');
  await s.deploy(input({ tenant: 'a', name: 'wide', routes: ['*/wide*'] }), 'operator');
  assert.throws(() => s.assignHost('*.b.example', 'a'), RouteConflictError, 'assigned hosts of two tenants never overlap');
  const moved = s.assignHost('admin.b.example', 'a');
  assert.equal(moved.previous, 'b');
  assert.deepEqual(
    moved.stranded.map((r) => r.pattern),
    ['admin.b.example/*'],
    "b's route no longer serves",
  );
  const table = s.routingTable();
  assert.deepEqual(table.hosts, [
    { host: 'a.example', tenant: 'a' },
    { host: 'admin.b.example', tenant: 'a' },
  ]);
  assert.deepEqual(
    table.routes.map((r) => [r.pattern, r.tenant]),
    [
      ['admin.b.example/*', 'b'],
      ['a.example/*', 'a'],
      ['*/wide*', 'a'],
    ],
    'oldest first, normalised',
  );
  assert.deepEqual(s.releaseHost('ADMIN.b.example'), { host: 'admin.b.example', tenant: 'a' });
  assert.equal(s.releaseHost('admin.b.example'), undefined);
  s.close();
});

test('code is encrypted at rest: the database holds no source text', async () => {
  const { dir, store: s } = open();
  await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default { secret: "TOP-SECRET-MARKER" }' }] }), 'operator');
  s.close();
  assert.doesNotMatch(readFileSync(join(dir, 'code.db')).toString('latin1'), /TOP-SECRET-MARKER/);
});

test('every deploy is a commit in the tenant git repository, readable with plain git', async () => {
  const { dir, store: s } = open();
  const a = await s.deploy(input(), 'operator');
  const b = await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }), 'operator');
  await s.deploy(input({ tenant: 'other', name: 'x', routes: [] }), 'operator');
  s.close();
  const clone = mkdtempSync(join(tmpdir(), 'cordon-clone-'));
  execFileSync('git', ['clone', '-q', join(dir, 'git', 'acme.git'), join(clone, 'acme')]);
  const log = execFileSync('git', ['-C', join(clone, 'acme'), 'log', '--format=%s'], { encoding: 'utf8' })
    .trim()
    .split('\n');
  assert.deepEqual(log, [`deploy acme/api ${b.version.slice(0, 12)}`, `deploy acme/api ${a.version.slice(0, 12)}`]);
  const manifest = JSON.parse(readFileSync(join(clone, 'acme', 'api', 'manifest.json'), 'utf8')) as { version: string; modules: { sha256: string }[] };
  assert.equal(manifest.version, b.version);
  execFileSync('git', ['-C', join(dir, 'git', 'acme.git'), 'fsck', '--strict'], { stdio: 'pipe' });
  assert.throws(
    () => execFileSync('git', ['-C', join(dir, 'git', 'acme.git'), 'cat-file', '-e', `main:x/manifest.json`], { stdio: 'pipe' }),
    'tenants have separate repositories',
  );
});

test('a tampered bundle is detected and refused, not served', async () => {
  const { dir, key, store: s } = open();
  const w = await s.deploy(input(), 'operator');
  s.close();
  const db = new Database(join(dir, 'code.db'));
  const sealed = db.prepare('SELECT sealed FROM versions').pluck().get() as Buffer;
  const flipped = Buffer.from(sealed);
  flipped[flipped.length - 1] ^= 1;
  db.prepare('UPDATE versions SET sealed = ?').run(flipped);
  db.close();
  const reopened = open(dir, key).store;
  await assert.rejects(reopened.verifiedBundleForKey(w.codeKey), TamperedError);
  assert.throws(() => reopened.bundleForKey(w.codeKey), TamperedError);
  reopened.close();
});

test('a bundle swapped for another validly sealed one is caught by the git record', async () => {
  const { dir, key, store: s } = open();
  const a = await s.deploy(input({ name: 'a', routes: [] }), 'operator');
  const b = await s.deploy(input({ name: 'a', routes: [], modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }), 'operator');
  s.close();
  // Point version b's row at version a's sealed bytes and commit (an insider "rolling forward" old code).
  const db = new Database(join(dir, 'code.db'));
  const rowA = db.prepare('SELECT sealed FROM versions WHERE version = ?').get(a.version) as { sealed: Buffer };
  db.prepare('UPDATE versions SET sealed = ? WHERE version = ?').run(rowA.sealed, b.version);
  db.close();
  const reopened = open(dir, key).store;
  await assert.rejects(reopened.verifiedBundleForKey(b.codeKey), /git commit recorded|failed its integrity check/);
  reopened.close();
});

test('the wrong master key opens nothing', async () => {
  const { dir, store: s } = open();
  const w = await s.deploy(input(), 'operator');
  s.close();
  const other = open(dir, randomBytes(32)).store;
  await assert.rejects(other.verifiedBundleForKey(w.codeKey), TamperedError);
  other.close();
});

test('workers_dev: false takes a worker off its default route, and a later deploy can put it back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-store-'));
  const s = new CodeStore(join(dir, 'code.db'), randomBytes(32), new History(join(dir, 'git')), 'workers.localhost');
  const patterns = () => s.routingTable().routes.map((r) => r.pattern);
  await s.deploy(input({ routes: [] }), 'operator');
  await s.deploy(input({ name: 'cron-only', routes: [], workersDev: false }), 'operator');
  assert.deepEqual(patterns(), ['api.acme.workers.localhost/*']);
  assert.equal(s.defaultRoute('acme', 'cron-only'), undefined);
  assert.equal(s.defaultRoute('acme', 'api'), 'api.acme.workers.localhost/*');
  await s.deploy(input({ name: 'cron-only', routes: [] }), 'operator');
  assert.deepEqual(patterns().sort(), ['api.acme.workers.localhost/*', 'cron-only.acme.workers.localhost/*']);
  s.close();
});
