import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CodeStore, RouteConflictError, TamperedError, type VersionInput } from './store.ts';
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
  const a = await s.deploy(input());
  assert.match(a.version, /^[0-9a-f]{64}$/);
  const unlocked = (await s.verifiedBundleForKey(a.codeKey))!;
  assert.equal(unlocked.bundle.workerId, 'acme/api');
  assert.equal(unlocked.bundle.version, a.version);
  const again = await s.deploy(input());
  assert.equal(again.version, a.version, 'same code and settings, same version');
  assert.notEqual(again.codeKey, a.codeKey);
  assert.equal(s.bundleForKey(a.codeKey), undefined, 'the old key stops working');
  const b = await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }));
  assert.notEqual(b.version, a.version);
  assert.equal(s.bundleForKey(b.codeKey)!.bundle.modules[0]!.content, 'export default {}');
  assert.equal(s.bundleForKey('x'.repeat(43)), undefined);
  s.close();
});

test('a route belongs to one tenant: another tenant cannot take it, and nothing is stored when it tries', async () => {
  const { store: s } = open();
  await s.deploy(input());
  await assert.rejects(s.deploy(input({ tenant: 'evil', routes: ['api.acme.test/*'] })), RouteConflictError);
  assert.equal(s.worker('evil/api'), undefined);
  assert.deepEqual(s.workers().map((w) => w.id), ['acme/api']);
  await s.deploy(input({ name: 'api2' }));
  const routes = s.routes();
  assert.equal(routes.length, 1);
  assert.equal(routes[0]!.target.workerId, 'acme/api2');
  s.close();
});

test('code is encrypted at rest: the database holds no source text', async () => {
  const { dir, store: s } = open();
  await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default { secret: "TOP-SECRET-MARKER" }' }] }));
  s.close();
  assert.doesNotMatch(readFileSync(join(dir, 'code.db')).toString('latin1'), /TOP-SECRET-MARKER/);
});

test('every deploy is a commit in the tenant git repository, readable with plain git', async () => {
  const { dir, store: s } = open();
  const a = await s.deploy(input());
  const b = await s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }));
  await s.deploy(input({ tenant: 'other', name: 'x', routes: [] }));
  s.close();
  const clone = mkdtempSync(join(tmpdir(), 'cordon-clone-'));
  execFileSync('git', ['clone', '-q', join(dir, 'git', 'acme.git'), join(clone, 'acme')]);
  const log = execFileSync('git', ['-C', join(clone, 'acme'), 'log', '--format=%s'], { encoding: 'utf8' }).trim().split('\n');
  assert.deepEqual(log, [`deploy acme/api ${b.version.slice(0, 12)}`, `deploy acme/api ${a.version.slice(0, 12)}`]);
  const manifest = JSON.parse(readFileSync(join(clone, 'acme', 'api', 'manifest.json'), 'utf8')) as { version: string; modules: { sha256: string }[] };
  assert.equal(manifest.version, b.version);
  execFileSync('git', ['-C', join(dir, 'git', 'acme.git'), 'fsck', '--strict'], { stdio: 'pipe' });
  assert.throws(() => execFileSync('git', ['-C', join(dir, 'git', 'acme.git'), 'cat-file', '-e', `main:x/manifest.json`], { stdio: 'pipe' }), 'tenants have separate repositories');
});

test('a tampered bundle is detected and refused, not served', async () => {
  const { dir, key, store: s } = open();
  const w = await s.deploy(input());
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
  const a = await s.deploy(input({ name: 'a', routes: [] }));
  const b = await s.deploy(input({ name: 'a', routes: [], modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }));
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
  const w = await s.deploy(input());
  s.close();
  const other = open(dir, randomBytes(32)).store;
  await assert.rejects(other.verifiedBundleForKey(w.codeKey), TamperedError);
  other.close();
});
