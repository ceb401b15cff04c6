import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RpcTarget, type RpcStub } from 'capnweb';
import { LoadedFacets } from './loaded-facets.ts';
import type { ObjectStorageApi } from '../../../schemas/durable-objects.ts';
import type { LoadedWorkerHost } from '../../../schemas/loaded-cordon.ts';
import { createLogger } from '../../../lib/log.ts';

const ID = 'a'.repeat(64);
const place = { binding: 'LOADER', token: 'id:app' };
const facet = { className: 'App', id: ID, name: null };
const rpc = { kind: 'rpc' as const, method: 'm', payload: '[]' };

class FakeStorage extends RpcTarget {
  readonly label: string;
  constructor(label: string) {
    super();
    this.label = label;
  }
  async databaseSize(): Promise<number> {
    return this.label.length;
  }
}

/** A loaded cordon's process that records what it is handed, and keeps the storage as a real one would. */
function fakeHost(log: string[]) {
  const kept = new Map<string, ObjectStorageApi>();
  const runner = {
    childObjectCall: async (_ref: string, _b: string, _t: string, f: { key: string }, storage: ObjectStorageApi) => {
      if (!kept.has(f.key)) kept.set(f.key, storage);
      log.push(`call ${f.key}`);
      return `size ${await kept.get(f.key)!.databaseSize()}`;
    },
    childObjectDrop: async (_ref: string, _b: string, _t: string, key: string) => void log.push(`drop ${key}`),
  } as unknown as RpcStub<LoadedWorkerHost>;
  return { runner, kept };
}

test('a facet of a loaded class gets its storage once per lease; the lease ending, an abort or another class revokes it there', async () => {
  const log: string[] = [];
  const { runner, kept } = fakeHost(log);
  const facets = new LoadedFacets(createLogger('test', {}, () => {}));
  const host = { runner, parentRef: 't/w@v1' };
  let opened = 0;
  const open = async () => new FakeStorage(`db${++opened}`) as unknown as ObjectStorageApi;
  assert.equal(await facets.call('t/w:C:x', 1, '.f', host, place, facet, rpc, open), 'size 3');
  assert.equal(await facets.call('t/w:C:x', 1, '.f', host, place, facet, rpc, open), 'size 3');
  assert.equal(opened, 1, 'opened once for the lease');
  assert.deepEqual(log, ['call t/w:C:x.f#1', 'call t/w:C:x.f#1']);
  const first = kept.get('t/w:C:x.f#1')!;

  // The lease ends (moved, evicted): what the process kept is dead, and it is told to drop the instance.
  facets.drop('t/w:C:x', '', 'lease ended');
  await assert.rejects(async () => first.databaseSize(), /capability revoked: lease ended/);
  assert.equal(log.at(-1), 'drop t/w:C:x.f#1');
  assert.equal(facets.size, 0);

  // A new lease: a new hand-out, a new instance key.
  log.length = 0;
  assert.equal(await facets.call('t/w:C:x', 2, '.f', host, place, facet, rpc, open), 'size 3');
  assert.equal(await facets.call('t/w:C:x', 2, '.f.g', host, place, facet, rpc, open), 'size 3');
  assert.deepEqual(log, ['call t/w:C:x.f#2', 'call t/w:C:x.f.g#3']);
  // Another class for the name: the old instance goes first.
  log.length = 0;
  await facets.call('t/w:C:x', 2, '.f', host, place, { ...facet, className: 'Other' }, rpc, open);
  assert.deepEqual(log, ['drop t/w:C:x.f#2', 'call t/w:C:x.f#4']);
  await assert.rejects(async () => kept.get('t/w:C:x.f#2')!.databaseSize(), /capability revoked/);
  // Dropping a subtree (abort, delete, clone-over of `.f`) takes its facets with it, not a sibling's.
  log.length = 0;
  await facets.call('t/w:C:x', 2, '.h', host, place, facet, rpc, open);
  facets.drop('t/w:C:x', '.f', 'aborted');
  assert.deepEqual(log.slice(1).sort(), ['drop t/w:C:x.f#4', 'drop t/w:C:x.f.g#3']);
  assert.equal(await kept.get('t/w:C:x.h#5')!.databaseSize(), 3, 'the sibling keeps its storage');
  assert.equal(facets.size, 1);
});

test('a facet whose storage cannot be opened (its lease moved meanwhile) is not kept: the next call tries afresh', async () => {
  const log: string[] = [];
  const { runner } = fakeHost(log);
  const facets = new LoadedFacets(createLogger('test', {}, () => {}));
  const host = { runner, parentRef: 't/w@v1' };
  await assert.rejects(
    facets.call('k', 1, '.f', host, place, facet, rpc, async () => {
      throw new Error('fence is stale');
    }),
    /fence is stale/,
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(facets.size, 0);
  assert.equal(await facets.call('k', 1, '.f', host, place, facet, rpc, async () => new FakeStorage('db') as unknown as ObjectStorageApi), 'size 2');
});
