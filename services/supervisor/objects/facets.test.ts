import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcStub } from 'capnweb';
import { facetSuffix, facetSuffixes, objectBytes } from './facets.ts';
import { DurableObjects } from './service.ts';
import { ObjectIds } from './ids.ts';
import { ObjectRegistry } from './registry.ts';
import { createLogger } from '../../../lib/log.ts';
import type { ObjectHost, ObjectStorageApi } from '../../../schemas/durable-objects.ts';
import type { CodeStore } from '../store.ts';
import type { AuditLog } from '../audit.ts';

const ID = 'a'.repeat(64);

test('a facet name is hashed into its level: path tricks stay names; length and depth are bounded as in workerd', () => {
  const a = facetSuffix('', 'a');
  assert.match(a, /^\.[0-9a-f]{24}$/);
  assert.equal(facetSuffix('', 'a'), a, 'the same name, the same file');
  for (const name of ['../a', '../../etc/passwd', 'a/../b', '/', '\0', '.', 'x'.repeat(256)]) assert.match(facetSuffix('', name), /^\.[0-9a-f]{24}$/);
  assert.notEqual(facetSuffix('', 'a/b'), facetSuffix(a, 'b'), "a name with '/' is not a nested facet");
  assert.throws(() => facetSuffix('', ''), /facet name cannot be empty/);
  assert.throws(() => facetSuffix('', 'x'.repeat(257)), /at most 256 characters/);
  assert.throws(() => facetSuffix('', 7), /invalid facet name/);
  const three = facetSuffix(facetSuffix(a, 'b'), 'c');
  assert.equal(three.length, 75);
  assert.throws(() => facetSuffix(three, 'd'), /nest at most 4 deep/);
});

test("an object's facet files are found by their prefix, a subtree with its root; other objects' are not", () => {
  const dir = mkdtempSync(join(tmpdir(), 'facets-'));
  const a = facetSuffix('', 'a');
  const ab = facetSuffix(a, 'b');
  const c = facetSuffix('', 'c');
  for (const f of [
    `${ID}.sqlite`,
    `${ID}${a}.sqlite`,
    `${ID}${ab}.sqlite`,
    `${ID}${ab}.sqlite-wal`,
    `${ID}${c}.sqlite`,
    `${'b'.repeat(64)}${a}.sqlite`,
    `${ID}.junk.sqlite`,
  ])
    writeFileSync(join(dir, f), 'x'.repeat(10));
  assert.deepEqual(facetSuffixes(dir, ID, '').sort(), [a, ab, c].sort());
  assert.deepEqual(facetSuffixes(dir, ID, a).sort(), [a, ab].sort());
  assert.deepEqual(facetSuffixes(dir, ID, ab), [ab]);
  assert.deepEqual(facetSuffixes(join(dir, 'none'), ID, ''), []);
  // The object's bytes but those of one facet's files (database and WAL): what is left of its quota for that facet.
  assert.equal(objectBytes(dir, ID, `${ID}${ab}`), 40);
});

test("a facet's storage is under its parent's lease: once the parent's lease moves on, the facet's old storage is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'facets-'));
  const calls: string[] = [];
  const created: string[] = [];
  const registry = new ObjectRegistry(join(dir, 'objects.db'));
  const objects = new DurableObjects({
    ids: new ObjectIds(Buffer.alloc(32, 7)),
    registry,
    store: { worker: () => ({ cordon: 'standard', codeKey: 'k' }), bundleForKey: () => undefined } as unknown as CodeStore,
    audit: { append: () => {} } as unknown as AuditLog,
    database: (_w, _c, _id, facet = '') => ({
      fresh: !calls.some((c) => c.startsWith(`${facet}:`)),
      call: async (method) => void calls.push(`${facet}:${method}`),
    }),
    facets: () => [],
    leaseMs: 300,
    log: createLogger('test', {}, () => {}),
    created: (_w, kind) => void created.push(kind),
  });
  try {
    const storages: RpcStub<ObjectStorageApi>[] = [];
    let paused = false;
    const host = (pausable: boolean) =>
      ({
        ping: () => (pausable && paused ? new Promise<string[]>(() => {}) : Promise.resolve([])),
        drop: async () => {},
        call: async (_a: unknown, storage: RpcStub<ObjectStorageApi>) => void storages.push(storage),
        onRpcBroken: () => {},
        [Symbol.dispose]: () => {},
      }) as unknown as RpcStub<ObjectHost>;
    objects.addHost('standard', host(true));
    await objects.call('t/w', 'C', ID, null, 'rpc', 'm', '[]');
    const facet = await storages[0]!.facet('app');
    await facet.databaseSize();
    assert.deepEqual(created, ['durable-object', 'facet']);
    await assert.rejects(facet.facet('x'.repeat(257)), /at most 256 characters/);
    // The holder stops answering past its lease; the next call grants the object to another host.
    paused = true;
    objects.addHost('standard', host(false));
    await new Promise((r) => setTimeout(r, 700));
    await objects.call('t/w', 'C', ID, null, 'rpc', 'm', '[]');
    assert.equal(storages.length, 2);
    const before = calls.length;
    await assert.rejects(facet.databaseSize(), /lease has moved on/);
    await assert.rejects(facet.facet('deeper'), /lease has moved on/);
    await assert.rejects(storages[0]!.deleteFacet('app'), /lease has moved on/);
    assert.equal(calls.length, before, 'nothing reached the database');
    // The new holder's facet storage works.
    await (await storages[1]!.facet('app')).databaseSize();
    assert.equal(created.filter((k) => k === 'facet').length, 1, 'the facet existed: not created again');
  } finally {
    objects.stop();
    registry.close();
  }
});
