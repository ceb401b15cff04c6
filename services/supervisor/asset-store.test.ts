import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CodeStore, type VersionInput } from './store.ts';
import { History } from './history.ts';
import { AssetPartsCap } from './assets.ts';
import { ASSET_LIMITS, AssetRouting } from '../../schemas/assets.ts';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function open(quota?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-assets-store-'));
  return { dir, store: new CodeStore(join(dir, 'code.db'), randomBytes(32), new History(join(dir, 'git')), '', quota) };
}

const input = (files: { path: string; bytes: Buffer }[], over: Partial<VersionInput> = {}): VersionInput => ({
  tenant: 'acme',
  name: 'site',
  cordon: 'standard',
  mainModule: 'w.js',
  modules: [{ name: 'w.js', type: 'esm', content: 'export default {}' }],
  limits: { cpuMs: 1000, wallMs: 30000, memoryMb: 128 },
  vars: {},
  bindings: [],
  origins: [],
  routes: [],
  assets: {
    routing: AssetRouting.parse({}),
    files: files.map((f) => ({ path: f.path, hash: sha256(f.bytes), size: f.bytes.length })),
    redirects: [],
    headers: [],
  },
  ...over,
});

test('a file is stored in sealed parts and read back part by part; a rollback finds its bytes again', async () => {
  const { store } = open();
  const big = randomBytes(ASSET_LIMITS.partBytes * 2 + 17);
  const small = Buffer.from('hello');
  for (const b of [big, small]) store.assets.put('acme/site', sha256(b), b);
  const v1 = await store.deploy(
    input([
      { path: '/big.bin', bytes: big },
      { path: '/a.txt', bytes: small },
    ]),
    'operator',
  );
  const { bundle } = store.bundleForKey(v1.codeKey)!;
  const cap = new AssetPartsCap(store.assets, bundle);
  const parts = await Promise.all([0, 1, 2].map((i) => cap.part(sha256(big), i)));
  assert.deepEqual(
    parts.map((p) => p.byteLength),
    [ASSET_LIMITS.partBytes, ASSET_LIMITS.partBytes, 17],
  );
  assert.ok(Buffer.concat(parts).equals(big));
  assert.equal(Buffer.from(await cap.part(sha256(small), 0)).toString(), 'hello');
  // A second version without big.bin; the first is rolled back to: its bytes are still there.
  const other = Buffer.from('other');
  store.assets.put('acme/site', sha256(other), other);
  await store.deploy(input([{ path: '/a.txt', bytes: other }]), 'operator');
  const stray = Buffer.from('uploaded, never deployed');
  store.assets.put('acme/site', sha256(stray), stray);
  const before = store.assets.storedBytes('acme/site');
  store.assets.collect('acme/site');
  assert.equal(store.assets.storedBytes('acme/site'), before, 'an upload younger than an hour is kept (its deploy may be on the way)');
  store.assets.collect('acme/site', Date.now() + 2 * 3600_000);
  assert.deepEqual(store.assets.missing('acme/site', [sha256(stray), sha256(big), sha256(other)]), [sha256(stray)], 'only the unlisted upload went');
  assert.equal(store.assets.storedBytes('acme/site'), before - stray.length);
  const back = store.rollback('acme/site', v1.version);
  const again = new AssetPartsCap(store.assets, store.bundleForKey(back.codeKey)!.bundle);
  assert.ok(Buffer.from(await again.part(sha256(big), 2)).equals(big.subarray(ASSET_LIMITS.partBytes * 2)));
});

test("the $assets capability serves only its version's files, in range", async () => {
  const { store } = open();
  const mine = Buffer.from('mine');
  const notListed = Buffer.from('uploaded, never listed');
  store.assets.put('acme/site', sha256(mine), mine);
  store.assets.put('acme/site', sha256(notListed), notListed);
  store.assets.put('acme/other', sha256(Buffer.from('theirs')), Buffer.from('theirs'));
  const v = await store.deploy(input([{ path: '/m.txt', bytes: mine }]), 'operator');
  const cap = new AssetPartsCap(store.assets, store.bundleForKey(v.codeKey)!.bundle);
  await assert.rejects(cap.part(sha256(notListed), 0), /no such part of an asset of this worker version/);
  await assert.rejects(cap.part(sha256(Buffer.from('theirs')), 0), /no such part/);
  await assert.rejects(cap.part(sha256(mine), 1), /no such part/);
  await assert.rejects(cap.part('../../x', 0), /asset hash/);
  await assert.rejects(cap.part(sha256(mine), -1), /part index/);
});

test('a sealed part moved to another worker, file or place does not open; a deploy listing an unsent file is refused', async () => {
  const { dir, store } = open();
  const a = Buffer.from('file a');
  const b = Buffer.from('file b');
  store.assets.put('acme/site', sha256(a), a);
  store.assets.put('acme/site', sha256(b), b);
  store.assets.put('evil/site', sha256(b), b);
  const db = new Database(join(dir, 'code.db'));
  // Swap the sealed bytes of a and b within one worker, and copy acme's part of b under evil's name.
  const part = (w: string, h: string) => db.prepare('SELECT sealed FROM asset_parts WHERE worker_id = ? AND hash = ?').pluck().get(w, h) as Buffer;
  const [pa, pb] = [part('acme/site', sha256(a)), part('acme/site', sha256(b))];
  db.prepare('UPDATE asset_parts SET sealed = ? WHERE worker_id = ? AND hash = ?').run(pb, 'acme/site', sha256(a));
  db.prepare('UPDATE asset_parts SET sealed = ? WHERE worker_id = ? AND hash = ?').run(pa, 'evil/site', sha256(b));
  db.close();
  assert.throws(() => store.assets.part('acme/site', sha256(a), 0), /failed its integrity check/);
  assert.throws(() => store.assets.part('evil/site', sha256(b), 0), /failed its integrity check/);
  assert.equal(Buffer.from(store.assets.part('acme/site', sha256(b), 0)).toString(), 'file b');
  await assert.rejects(store.deploy(input([{ path: '/x', bytes: Buffer.from('never sent') }]), 'operator'), /were not uploaded \(first: \/x\)/);
});

test('uploads: the hash is checked, the quota counts every version, a worker deleted takes its assets along', () => {
  const { store } = open(10);
  assert.throws(() => store.assets.put('acme/site', sha256(Buffer.from('a')), Buffer.from('b')), /hash to/);
  store.assets.put('acme/site', sha256(Buffer.from('123456')), Buffer.from('123456'));
  assert.throws(() => store.assets.put('acme/site', sha256(Buffer.from('78901')), Buffer.from('78901')), /CORDON_ASSETS_QUOTA_MB/);
  store.assets.put('acme/site', sha256(Buffer.from('123456')), Buffer.from('123456')); // stored already: nothing added
  assert.equal(store.assets.storedBytes('acme/site'), 6);
  store.assets.collect('acme/site', Date.now() + 2 * 3600_000);
  assert.equal(store.assets.storedBytes('acme/site'), 0, 'an upload no version lists goes after an hour');
  store.assets.put('acme/site', sha256(Buffer.from('abc')), Buffer.from('abc'));
  store.delete('acme/site');
  assert.equal(store.assets.storedBytes('acme/site'), 0);
  assert.deepEqual(store.assets.missing('acme/site', [sha256(Buffer.from('abc'))]), [sha256(Buffer.from('abc'))]);
});
