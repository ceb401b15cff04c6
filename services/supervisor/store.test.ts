import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CodeStore, RouteConflictError, type VersionInput } from './store.ts';

const input = (over: Partial<VersionInput> = {}): VersionInput => ({
  tenant: 'acme',
  name: 'api',
  cordon: 'standard',
  mainModule: 'worker.js',
  modules: [{ name: 'worker.js', type: 'esm', content: 'export default { fetch() { return new Response("v1") } }' }],
  limits: { cpuMs: 1000, wallMs: 30000, memoryMb: 128 },
  vars: {},
  bindings: [],
  routes: ['api.acme.test/*'],
  ...over,
});

function store(): CodeStore {
  return new CodeStore(join(mkdtempSync(join(tmpdir(), 'cordon-store-')), 'code.db'));
}

test('versions are content-addressed and immutable; a redeploy rotates the code key', () => {
  const s = store();
  const a = s.deploy(input());
  assert.match(a.version, /^[0-9a-f]{64}$/);
  const unlocked = s.bundleForKey(a.codeKey)!;
  assert.equal(unlocked.bundle.workerId, 'acme/api');
  assert.equal(unlocked.bundle.version, a.version);
  const again = s.deploy(input());
  assert.equal(again.version, a.version, 'same code and settings, same version');
  assert.notEqual(again.codeKey, a.codeKey);
  assert.equal(s.bundleForKey(a.codeKey), undefined, 'the old key stops working');
  const b = s.deploy(input({ modules: [{ name: 'worker.js', type: 'esm', content: 'export default {}' }] }));
  assert.notEqual(b.version, a.version);
  assert.equal(s.bundleForKey(b.codeKey)!.bundle.modules[0]!.content, 'export default {}');
  assert.equal(s.bundleForKey('x'.repeat(43)), undefined);
  s.close();
});

test('a route belongs to one tenant: another tenant cannot take it, and nothing is stored when it tries', () => {
  const s = store();
  s.deploy(input());
  assert.throws(() => s.deploy(input({ tenant: 'evil', routes: ['api.acme.test/*'] })), RouteConflictError);
  assert.equal(s.worker('evil/api'), undefined);
  assert.deepEqual(s.workers().map((w) => w.id), ['acme/api']);
  // The same tenant may move a route between its own workers.
  s.deploy(input({ name: 'api2' }));
  const routes = s.routes();
  assert.equal(routes.length, 1);
  assert.equal(routes[0]!.target.workerId, 'acme/api2');
  s.close();
});

test('the store survives reopening (WAL, synchronous=FULL)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-store-'));
  const s1 = new CodeStore(join(dir, 'code.db'));
  const w = s1.deploy(input());
  s1.close();
  const s2 = new CodeStore(join(dir, 'code.db'));
  assert.equal(s2.bundleForKey(w.codeKey)!.bundle.version, w.version);
  assert.deepEqual(s2.workers('acme').map((x) => x.id), ['acme/api']);
  assert.deepEqual(s2.workers('other'), []);
  s2.close();
});
