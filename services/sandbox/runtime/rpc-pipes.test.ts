/** The host's carrying of Workers RPC pipes: what one isolate may put on them, and that a fault ends one pipe only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_PIPE_MESSAGE, MAX_PIPES, PipeTable, type PipePeer } from './rpc-pipes.ts';

function table() {
  const toIsolate: [number, string][] = [];
  const closedInIsolate: [number, string][] = [];
  const peers = new Map<string, { sent: string[]; closed?: string }>();
  const t = new PipeTable({
    isolate: { deliver: (id, m) => void toIsolate.push([id, m]), closed: (id, r) => void closedInIsolate.push([id, r]) },
    connect: async (target) => {
      if (target === 'NONE') throw new Error('no binding NONE');
      const record: { sent: string[]; closed?: string } = { sent: [] };
      peers.set(target, record);
      return { send: (m) => void record.sent.push(m), close: (r) => void (record.closed = r) } satisfies PipePeer;
    },
    servedEnded: () => {},
  });
  return { t, toIsolate, closedInIsolate, peers };
}

test('messages wait for the other end, then flow in order; an unknown binding closes the pipe with why', async () => {
  const { t, peers, closedInIsolate } = table();
  t.opened(-1, 'A');
  t.fromIsolate(-1, '["push",1]');
  t.fromIsolate(-1, '["pull",1]');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(peers.get('A')!.sent, ['["push",1]', '["pull",1]']);
  t.opened(-2, 'NONE');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(closedInIsolate, [[-2, 'no binding NONE']]);
});

test('an oversized message, a reused or positive id, and one pipe too many end that pipe alone', async () => {
  const { t, peers, closedInIsolate } = table();
  t.opened(-1, 'A');
  t.opened(-2, 'B');
  await new Promise((r) => setImmediate(r));
  t.fromIsolate(-1, 'x'.repeat(MAX_PIPE_MESSAGE + 1));
  assert.match(peers.get('A')!.closed!, /larger than/);
  assert.match(closedInIsolate.at(-1)![1], /larger than/);
  t.fromIsolate(-2, '["push",1]');
  assert.deepEqual(peers.get('B')!.sent, ['["push",1]']);
  t.opened(-2, 'C');
  t.opened(5, 'C');
  assert.deepEqual(
    closedInIsolate.slice(-2).map(([, r]) => r),
    ['malformed pipe', 'malformed pipe'],
  );
  for (let i = 0; i < MAX_PIPES; i++) t.opened(-10 - i, 'D');
  assert.match(closedInIsolate.at(-1)![1], /too many RPC sessions/);
  assert.equal(t.size, MAX_PIPES);
});
