import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RpcStub } from 'capnweb';
import { ObjectFacets, RemoteFacets, type FacetRunner } from './facets.ts';
import type { ObjectStorageApi } from '../../schemas/durable-objects.ts';
import type { FacetPlace } from './runtime/index.ts';

const ID = 'c'.repeat(64);

/** A storage capability as the supervisor's: facet(name) makes a child one; calls are recorded. */
function fakeStorage(path: string, log: string[]): RpcStub<ObjectStorageApi> {
  return {
    facet: async (name: string) => {
      log.push(`open ${path}/${name}`);
      return fakeStorage(`${path}/${name}`, log);
    },
    deleteFacet: async (name: string) => void log.push(`delete ${path}/${name}`),
    cloneFacet: async (src: string, dst: string) => void log.push(`clone ${path}/${src} ${path}/${dst}`),
    facetIn: async (name: string, place: { token: string }, facet: { className: string }, kind: string, method: string) => {
      log.push(`in ${path}/${name} ${place.token} ${facet.className} ${kind} ${method}`);
      return 'remote ok';
    },
    dropFacet: async (name: string) => void log.push(`drop-in ${path}/${name}`),
    databaseSize: async () => {
      log.push(`size ${path}`);
      return 4096;
    },
    [Symbol.dispose]: () => void log.push(`dispose ${path}`),
  } as unknown as RpcStub<ObjectStorageApi>;
}

function fakeRunner(log: string[], remote = false) {
  const hosts = new Map<string, ObjectFacets>();
  const runner: FacetRunner = {
    remote,
    call: async (place: FacetPlace, object, call) => {
      hosts.set(object.key, object.storage as ObjectFacets);
      log.push(`run ${place ? place.token : 'own'} ${object.key} ${object.className} ${call.method}`);
      return 'ok';
    },
    drop: (place, key) => void log.push(`drop ${place ? place.token : 'own'} ${key}`),
  };
  return { runner, hosts };
}

const call = (name: string, cls: string, binding: string | null, token: string | null, method = 'm') =>
  ['call', name, cls, binding, token, ID, null, 'rpc', method, '[]'] as unknown[];

test("an object's facet calls open the facet's storage once, under a key no name can forge, and run where the class lives", async () => {
  const log: string[] = [];
  const { runner, hosts } = fakeRunner(log);
  const root = new ObjectFacets(fakeStorage('root', log), 't/w:C:x', null, runner);
  assert.equal(await root.call('$obj:t/w:C:x', 'facet', call('a/b', 'App', 'LOADER', 'id:app:1')), 'ok');
  assert.equal(await root.call('$obj:t/w:C:x', 'facet', call('a/b', 'App', 'LOADER', 'id:app:1', 'n')), 'ok');
  assert.deepEqual(log, ['open root/a/b', 'run id:app:1 t/w:C:x/a%2Fb App m', 'run id:app:1 t/w:C:x/a%2Fb App n']);
  // Other methods on the handle are the object's storage (only storage methods pass).
  assert.equal(await root.call('$obj:t/w:C:x', 'databaseSize', []), 4096);
  await assert.rejects(root.call('$obj:t/w:C:x', 'facet', ['bogus']), /unknown facet operation/);
  await assert.rejects(root.call('$obj:t/w:C:x', 'deleteFacet', ['a/b']), /not a method of Durable Object storage/);
  await assert.rejects(root.call('$obj:t/w:C:x', 'facet', call('x'.repeat(257), 'App', null, null)), /facet call/);
  // The facet's own facets: its classes only (a Dynamic Worker has no loader), in its isolate.
  const child = hosts.get('t/w:C:x/a%2Fb')!;
  log.length = 0;
  assert.equal(await child.call('$obj:…', 'facet', call('n', 'App', null, null)), 'ok');
  assert.deepEqual(log, ['open root/a/b/n', 'run id:app:1 t/w:C:x/a%2Fb/n App m']);
  await assert.rejects(child.call('$obj:…', 'facet', call('m', 'App', 'LOADER', 'id:other:1')), /only be used by an object of the worker that loaded it/);
});

test('abort drops the instance (and its facets) but not the data; delete wipes it; clone stops dst first; a new class restarts it; the parent going takes all', async () => {
  const log: string[] = [];
  const { runner } = fakeRunner(log);
  const root = new ObjectFacets(fakeStorage('root', log), 'k', null, runner);
  await root.call('h', 'facet', call('a', 'App', 'LOADER', 'id:app:1'));
  await root.call('h', 'facet', call('b', 'App', null, null));
  log.length = 0;
  await root.call('h', 'facet', ['abort', 'a']);
  assert.deepEqual(log, ['drop id:app:1 k/a', 'dispose root/a']);
  log.length = 0;
  await root.call('h', 'facet', call('a', 'App', 'LOADER', 'id:app:2'));
  // Started with another class without an abort (its parent's instance was reset): the old one goes first.
  await root.call('h', 'facet', call('a', 'App', 'LOADER', 'id:app:3'));
  assert.deepEqual(log, ['open root/a', 'run id:app:2 k/a App m', 'drop id:app:2 k/a', 'dispose root/a', 'open root/a', 'run id:app:3 k/a App m']);
  log.length = 0;
  await root.call('h', 'facet', ['delete', 'b']);
  assert.deepEqual(log, ['drop own k/b', 'dispose root/b', 'delete root/b']);
  log.length = 0;
  await root.call('h', 'facet', call('c', 'App', null, null));
  await root.call('h', 'facet', ['clone', 'a', 'c']);
  assert.deepEqual(log, ['open root/c', 'run own k/c App m', 'drop own k/c', 'dispose root/c', 'clone root/a root/c']);
  log.length = 0;
  root.dispose();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['drop id:app:3 k/a', 'dispose root/a']);
});

test('an object has at most 64 facet calls in flight, as it has storage calls', async () => {
  const log: string[] = [];
  const release: (() => void)[] = [];
  const runner: FacetRunner = {
    remote: false,
    call: () => new Promise<string>((r) => release.push(() => r('ok'))),
    drop: () => {},
  };
  const root = new ObjectFacets(fakeStorage('root', log), 'k', null, runner);
  const calls = Array.from({ length: 64 }, () => root.call('h', 'facet', call('a', 'App', null, null)));
  await new Promise((r) => setImmediate(r));
  await assert.rejects(root.call('h', 'facet', call('a', 'App', null, null)), /too many facet calls in flight/);
  for (const r of release) r();
  assert.deepEqual(new Set(await Promise.all(calls)), new Set(['ok']));
  assert.equal(await Promise.race([root.call('h', 'facet', call('a', 'App', null, null)), new Promise((r) => setImmediate(() => r('pending')))]), 'pending');
  for (const r of release) r();
});

test('with a loaded cordon, a facet of a loaded class runs there through the supervisor: this process never opens its storage', async () => {
  const log: string[] = [];
  const { runner } = fakeRunner(log, true);
  const root = new ObjectFacets(fakeStorage('root', log), 'k', null, runner);
  assert.equal(await root.call('h', 'facet', call('a', 'App', 'LOADER', 'id:app:1')), 'remote ok');
  // Its own classes (ctx.exports) still run here, with storage opened here.
  assert.equal(await root.call('h', 'facet', call('b', 'Own', null, null)), 'ok');
  assert.deepEqual(log, ['in root/a id:app:1 App rpc m', 'open root/b', 'run own k/b Own m']);
  log.length = 0;
  // A name moving from a loaded class to one of its own (and back) ends the other instance first.
  await root.call('h', 'facet', call('a', 'Own', null, null));
  await root.call('h', 'facet', call('b', 'App', 'LOADER', 'id:app:1'));
  assert.deepEqual(log, ['drop-in root/a', 'open root/a', 'run own k/a Own m', 'drop own k/b', 'dispose root/b', 'in root/b id:app:1 App rpc m']);
  log.length = 0;
  await root.call('h', 'facet', ['abort', 'b']);
  assert.deepEqual(log, ['drop-in root/b']);
  log.length = 0;
  await root.call('h', 'facet', call('c', 'App', 'LOADER', 'id:app:1'));
  // delete and clone go to the supervisor, which drops the instance there itself.
  await root.call('h', 'facet', ['delete', 'c']);
  assert.deepEqual(log, ['in root/c id:app:1 App rpc m', 'delete root/c']);
  log.length = 0;
  await root.call('h', 'facet', call('d', 'App', 'LOADER', 'id:app:1'));
  root.dispose();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['in root/d id:app:1 App rpc m', 'drop-in root/d', 'drop own k/a', 'dispose root/a']);
});

test('in the loaded cordon, a facet keeps the storage of its first call, runs in its Worker, and lets it all go when dropped', async () => {
  const log: string[] = [];
  const { runner, hosts } = fakeRunner(log);
  const facets = new RemoteFacets();
  const storage = (path: string) => {
    const s = fakeStorage(path, log) as unknown as Record<string | symbol, unknown>;
    s.dup = () => s;
    return s as unknown as RpcStub<ObjectStorageApi>;
  };
  const place = { binding: 'LOADER', token: 'id:app:1' };
  const object = { className: 'App', id: ID, name: null };
  const rpc = { kind: 'rpc', method: 'm', payload: '[]' };
  assert.equal(await facets.call('o.f#1', storage('first'), place, runner, object, rpc), 'ok');
  assert.equal(await facets.call('o.f#1', storage('second'), place, runner, object, rpc), 'ok');
  assert.deepEqual(log, ['run id:app:1 o.f#1 App m', 'run id:app:1 o.f#1 App m']);
  // Its own facets open under the storage it was given first, and run in the same Worker.
  assert.equal(await hosts.get('o.f#1')!.call('h', 'facet', call('n', 'Own', null, null)), 'ok');
  assert.deepEqual(log.slice(2), ['open first/n', 'run id:app:1 o.f#1/n Own m']);
  await assert.rejects(
    hosts.get('o.f#1')!.call('h', 'facet', call('m', 'App', 'LOADER', 'id:app:2')),
    /only be used by an object of the worker that loaded it/,
  );
  log.length = 0;
  facets.drop('o.f#1');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(log, ['drop id:app:1 o.f#1', 'dispose first', 'drop id:app:1 o.f#1/n', 'dispose first/n']);
  await assert.rejects(async () => facets.call('o.g#2', 'not a capability' as never, place, runner, object, rpc), /storage must be a capability/);
});
