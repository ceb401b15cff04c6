/**
 * ws.send on an object's WebSockets: what one tick sends is one call to the supervisor, not one per
 * message (counted, not timed), in order; any other call on the sockets sends what came before it
 * first; a large burst is cut into bounded batches; and a batch the supervisor refuses is the error of
 * the next call. A real isolate (WorkerRuntime) with the supervisor's sockets capability faked.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './runtime/index.ts';
import { ObjectSocketsForwarder } from './object-sockets.ts';
import { MAX_SEND_BATCH } from '../../schemas/object-socket-batches.ts';
import type { WorkerBundle } from '../../schemas/worker.ts';
import type { LogEntry } from '../../schemas/services.ts';

const SID = 'a'.repeat(32);

const bundle = {
  workerId: 't/room',
  version: 'v'.repeat(64),
  mainModule: 'w.js',
  modules: [
    {
      name: 'w.js',
      type: 'esm',
      content: `import { DurableObject } from 'cloudflare:workers';
export class Room extends DurableObject {
  async webSocketMessage(ws, message) {
    const [what, n] = message.split(' ');
    if (what === 'burst') for (let i = 0; i < Number(n); i++) ws.send('m' + i);
    if (what === 'then-close') { ws.send('last'); ws.close(1000, 'done'); }
    if (what === 'ticks') for (let i = 0; i < Number(n); i++) { ws.send('t' + i); await null; }
    if (what === 'after-refusal') { try { ws.send('next'); } catch (e) { ws.send('caught: ' + e.message); } }
  }
}
export default { fetch: () => new Response('') };`,
    },
  ],
  limits: { cpuMs: 1000, wallMs: 15_000, memoryMb: 128 },
  vars: {},
  bindings: [],
  objectClasses: ['Room'],
} as unknown as WorkerBundle;

/** The supervisor's sockets capability as the sandbox sees it: each method call is one RPC message; `send` batches recorded. */
function fakeSupervisor() {
  const calls: string[] = [];
  const batches: [string, string | Uint8Array][][] = [];
  let refuseNext = false;
  const stub = {
    send: async (batch: [string, string | Uint8Array][]) => {
      calls.push('send');
      if (refuseNext) {
        refuseNext = false;
        throw new Error('no such WebSocket on this Durable Object (it closed, or it belongs to another object)');
      }
      batches.push(batch);
    },
    close: async () => void calls.push('close'),
  };
  return { calls, batches, sockets: new ObjectSocketsForwarder(() => stub), refuse: () => (refuseNext = true) };
}

const runtime = new WorkerRuntime({ spares: 0 });
after(() => runtime.dispose());
const logs: LogEntry[] = [];
const storage = { call: async () => null };

/** A message event for a socket of object `object` (each test its own object: a socket's state lives in its instance). */
async function message(sockets: ObjectSocketsForwarder, data: string, object = data.split(' ')[0]!): Promise<void> {
  const event = { type: 'message', socket: { sid: SID, tags: [], attachment: null, autoResponseAt: null }, hibernatable: true, data };
  const out = await runtime.objectCall(
    bundle,
    { key: `t/room:Room:${object}`, className: 'Room', id: 'c'.repeat(64), name: null, storage, sockets },
    { kind: 'websocket', method: 'message', payload: JSON.stringify(event) },
    { log: (e) => logs.push(...e) },
  );
  assert.ok(!out.startsWith('!'), out);
}

test('100 sends in one tick are one call to the supervisor, in order', async () => {
  const s = fakeSupervisor();
  await message(s.sockets, 'burst 100');
  assert.deepEqual(s.calls, ['send']);
  assert.deepEqual(
    s.batches[0],
    Array.from({ length: 100 }, (_, i) => [SID, `m${i}`]),
  );
});

test('a burst past the batch bound is cut into bounded batches; another call sends what came before it first', async () => {
  const s = fakeSupervisor();
  await message(s.sockets, `burst ${MAX_SEND_BATCH + 10}`);
  assert.deepEqual(s.calls, ['send', 'send']);
  assert.deepEqual(
    s.batches.map((b) => b.length),
    [MAX_SEND_BATCH, 10],
  );
  assert.deepEqual(s.batches[1]!.at(-1), [SID, `m${MAX_SEND_BATCH + 9}`]);
  const t = fakeSupervisor();
  await message(t.sockets, 'then-close');
  assert.deepEqual(t.calls, ['send', 'close']);
  // Sends a tick apart are a call each (nothing waits for more).
  const u = fakeSupervisor();
  await message(u.sockets, 'ticks 3');
  assert.deepEqual(u.calls, ['send', 'send', 'send']);
});

test('a batch the supervisor refuses is the error of the next call on the sockets, once', async () => {
  const s = fakeSupervisor();
  s.refuse();
  await message(s.sockets, 'burst 2', 'refused');
  await message(s.sockets, 'after-refusal', 'refused');
  assert.deepEqual(s.batches, [[[SID, 'caught: no such WebSocket on this Durable Object (it closed, or it belongs to another object)']]]);
});
