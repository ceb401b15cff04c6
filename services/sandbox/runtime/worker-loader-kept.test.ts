/**
 * ParentLoaders keeping a loaded Worker's code for its facets' hibernatable WebSockets, with a stand-in pool:
 * unloaded while a facet holds a socket, the Worker is made again from the kept code on the next event (and
 * counted); once its sockets close (or the facet is deleted) the code goes with the isolate; the bound in bytes
 * refuses an accept with the setting's name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParentLoaders, type IsolatePool, type ParentSide } from './worker-loader.ts';
import type { WorkerInstance } from './instance.ts';
import { Limits, type WorkerBundle } from '../../../schemas/worker.ts';

const CODE = {
  compatibilityDate: '2026-01-01',
  mainModule: 'room.js',
  modules: [{ name: 'room.js', type: 'esm', content: 'export class Room {}' }],
  vars: {},
  stubs: {},
  globalOutbound: null,
  limits: {},
};
const BYTES = CODE.modules[0]!.content.length;

function setup(keptCodeBytes?: number) {
  const live = new Map<string, WorkerInstance>();
  const made: WorkerBundle[] = [];
  const pool: IsolatePool = {
    held: (key) => live.get(key),
    instance: async (key, bundle) => {
      made.push(bundle);
      const n = made.length;
      const instance = {
        disposed: false,
        active: 0,
        objectCall: async () => `isolate ${n}`,
        objectDrop() {},
        async unitAhead() {},
      } as unknown as WorkerInstance;
      live.set(key, instance);
      return instance;
    },
    drop: (key) => void live.delete(key),
  };
  const counts = { created: 0, released: 0 };
  const back: ParentSide = {
    connect: () => Promise.reject(new Error('unused')),
    outbound: () => Promise.reject(new Error('unused')),
    log: () => {},
    events: { created: () => counts.created++, limitHit: () => {} },
    release: () => counts.released++,
  };
  const loaders = new ParentLoaders(
    pool,
    'acme/app@v1',
    { workerId: 'acme/app', version: 'v1', limits: Limits.parse({}) },
    { perWorker: 8, loadsPerSecond: 100, keptCodeBytes },
    { log: () => {} },
  );
  /** The isolate's idle unload (the runtime's sweeper). */
  const unload = () => live.clear();
  const event = () => loaders.objectCall('LOADER', 'id:room', {} as never, { kind: 'websocket', method: 'message', payload: '{}' });
  return { loaders, back, counts, made, unload, event };
}

test('a Worker whose facet holds a WebSocket is made again from its kept code after an unload; closed, it is not', async () => {
  const { loaders, back, counts, made, unload, event } = setup();
  await loaders.load('LOADER', 'id:room', CODE, back);
  const sockets = loaders.facetSockets('LOADER', 'id:room', 'acme/app:Host:1/room');
  sockets.accepting();
  sockets.accepted('s1');
  unload();
  assert.equal(await event(), 'isolate 2', 'made again');
  assert.deepEqual(made[1], made[0], 'from the same bundle');
  assert.equal(counts.created, 2, 'the new isolate is counted');
  assert.equal(loaders.empty, false);
  // Its socket closes: unloaded again, it is gone; its way back is let go.
  sockets.closed('s1');
  unload();
  await assert.rejects(event(), /the Dynamic Worker was unloaded/);
  assert.equal(counts.released, 1);
  assert.equal(loaders.empty, true);
});

test("a deleted facet's sockets no longer keep its Worker's code; a failed accept keeps nothing", async () => {
  const { loaders, back, unload, event } = setup();
  await loaders.load('LOADER', 'id:room', CODE, back);
  const sockets = loaders.facetSockets('LOADER', 'id:room', 'acme/app:Host:1/room');
  sockets.accepting();
  sockets.accepted(undefined);
  sockets.accepting();
  sockets.accepted('s1');
  loaders.facetSockets('LOADER', 'id:room', 'acme/app:Host:1/room/sub').accepting();
  loaders.facetSockets('LOADER', 'id:room', 'acme/app:Host:1/room/sub').accepted('s2');
  loaders.facetDeleted('acme/app:Host:1/room');
  unload();
  await assert.rejects(event(), /the Dynamic Worker was unloaded/);
});

test('the code kept is bounded in bytes per parent: past it an accept is refused, naming the setting', async () => {
  const { loaders, back } = setup(BYTES - 1);
  await loaders.load('LOADER', 'id:room', CODE, back);
  assert.throws(() => loaders.facetSockets('LOADER', 'id:room', 'k').accepting(), /at most \d+ bytes in all \(CORDON_DYNAMIC_WORKER_KEPT_CODE_KB\)/);
  const fits = setup(BYTES);
  await fits.loaders.load('LOADER', 'id:room', CODE, fits.back);
  fits.loaders.facetSockets('LOADER', 'id:room', 'k').accepting();
});

test("a newer version of the parent took over: an older version's kept code goes", async () => {
  const { loaders, back, counts, unload, event } = setup();
  await loaders.load('LOADER', 'id:room', CODE, back);
  const sockets = loaders.facetSockets('LOADER', 'id:room', 'acme/app:Host:1/room');
  sockets.accepting();
  sockets.accepted('s1');
  unload();
  loaders.forgetSockets();
  await assert.rejects(event(), /the Dynamic Worker was unloaded/);
  assert.equal(counts.released, 1);
  assert.equal(loaders.empty, true);
});
