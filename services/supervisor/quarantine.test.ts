import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { codeHash, CodeStore, type VersionInput } from './store.ts';
import { History } from './history.ts';
import { AuditLog } from './audit.ts';
import { Quarantine } from './quarantine.ts';

const code = (text: string) => [{ name: 'w.js', type: 'esm' as const, content: text }];
const input = (tenant: string, name: string, text: string, over: Partial<VersionInput> = {}): VersionInput => ({
  tenant,
  name,
  cordon: 'standard',
  mainModule: 'w.js',
  modules: code(text),
  limits: { cpuMs: 1000, wallMs: 30000, memoryMb: 128 },
  vars: {},
  bindings: [],
  origins: [],
  routes: [],
  ...over,
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-quarantine-'));
  const store = new CodeStore(join(dir, 'code.db'), randomBytes(32), new History(join(dir, 'git')));
  const moved: string[] = [];
  const file = join(dir, 'cordons.json');
  const q = new Quarantine(new Database(':memory:'), store, new AuditLog(dir, randomBytes(32)), file, { moved: (id) => moved.push(id) });
  const dynamic = () => (JSON.parse(readFileSync(file, 'utf8')) as { dynamic: string[] }).dynamic;
  return { store, q, moved, dynamic };
}

test('quarantine follows the code: any stored version, under a new name, with other settings; not other tenants', async () => {
  const { store, q, dynamic } = setup();
  await store.deploy(input('evil', 'bad', 'v1'), 'operator');
  await store.deploy(input('evil', 'bad', 'v2'), 'operator');
  q.quarantine('evil/bad', 'test');
  const cordon = q.cordonOf('evil/bad')!;
  for (const text of ['v1', 'v2'])
    assert.deepEqual(q.placement('evil/new', 'evil', codeHash('w.js', code(text))), { cordon, reason: 'the same code as quarantined evil/bad' }, text);
  assert.equal(q.placement('evil/new', 'evil', codeHash('w.js', code('v3'))), undefined, 'other code is not held');
  assert.equal(q.placement('good/new', 'good', codeHash('w.js', code('v2'))), undefined, 'another tenant deploying the same code is not held');
  // Deployed where placement says: recorded, and sharing the cordon (one process).
  const placement = q.placement('evil/new', 'evil', codeHash('w.js', code('v2')))!;
  await store.deploy(input('evil', 'new', 'v2', { cordon: placement.cordon, vars: { X: '1' } }), 'operator');
  q.admitted('evil/new', 'untrusted', placement);
  assert.deepEqual(
    q.list().map((e) => [e.worker, e.cordon, e.previousCordon]),
    [
      ['evil/bad', cordon, 'standard'],
      ['evil/new', cordon, 'untrusted'],
    ],
  );
  assert.deepEqual(dynamic(), [cordon]);
  assert.deepEqual(q.placement('evil/new', 'evil', 'anything'), { cordon }, 'a held worker stays held across redeploys');
  // Releasing the original forgets its code; the copy stays held until released itself.
  assert.equal(q.release('evil/bad'), true);
  assert.equal(q.placement('evil/third', 'evil', codeHash('w.js', code('v2'))), undefined);
  assert.equal(q.cordonOf('evil/new'), cordon);
  assert.equal(q.release('evil/new'), true);
  assert.equal(store.worker('evil/new')!.cordon, 'untrusted');
  assert.deepEqual(dynamic(), []);
});

test('a quarantined tenant: its workers and later deploys share one cordon until the tenant is released', async () => {
  const { store, q, dynamic } = setup();
  await store.deploy(input('evil', 'a', 'a'), 'operator');
  await store.deploy(input('evil', 'b', 'b', { cordon: 'untrusted' }), 'operator');
  await store.deploy(input('good', 'a', 'a'), 'operator');
  await store.deploy(input('evil', 'own', 'own'), 'operator');
  q.quarantine('evil/own', 'test');
  const own = q.cordonOf('evil/own')!;
  const cordon = q.quarantineTenant('evil', 'abuse', 'token:root');
  assert.equal(store.worker('evil/a')!.cordon, cordon);
  assert.equal(store.worker('evil/b')!.cordon, cordon);
  assert.equal(store.worker('evil/own')!.cordon, own, 'already held on its own');
  assert.equal(store.worker('good/a')!.cordon, 'standard', 'other tenants untouched');
  assert.deepEqual(q.placement('evil/c', 'evil', 'new code'), { cordon, reason: 'tenant evil is quarantined: abuse' });
  assert.deepEqual(
    q.tenants().map((t) => t.tenant),
    ['evil'],
  );
  assert.deepEqual(dynamic().sort(), [cordon, own].sort());
  // Releasing one worker of a held tenant moves it to the tenant's cordon, not out.
  assert.equal(q.release('evil/own'), true);
  assert.equal(store.worker('evil/own')!.cordon, cordon);
  assert.equal(q.releaseTenant('evil', 'token:root'), true);
  assert.equal(store.worker('evil/a')!.cordon, 'standard');
  assert.equal(store.worker('evil/b')!.cordon, 'untrusted');
  assert.equal(store.worker('evil/own')!.cordon, 'standard');
  assert.equal(q.placement('evil/c', 'evil', 'new code'), undefined);
  assert.equal(q.releaseTenant('evil', 'token:root'), false);
  assert.deepEqual(dynamic(), []);
});
