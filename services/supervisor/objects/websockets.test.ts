/** ObjectSockets on its own: which socket a capability may reach, attach, limits, the auto-response, close events. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RpcStub } from 'capnweb';
import { ObjectSockets } from './websockets.ts';
import { CordonError } from '../../../lib/errors.ts';
import { createLogger } from '../../../lib/log.ts';
import type { ObjectSocketEvent } from '../../../schemas/durable-objects.ts';
import type { BrowserSocket } from '../../../schemas/http.ts';

const KEY_A = 'acme/chat:Room:a';
const KEY_B = 'acme/chat:Room:b';

function setup(limits = { perObject: 3, perTenant: 4 }) {
  const delivered: { key: string; event: ObjectSocketEvent }[] = [];
  const audited: string[] = [];
  let leaseOk = true;
  const sockets = new ObjectSockets({
    deliver: async (key, event) => {
      delivered.push({ key, event });
      return '';
    },
    ...limits,
    log: createLogger('test', {}, () => {}),
  });
  const fenced = () => {
    if (!leaseOk) throw new CordonError('the lease has moved on', { status: 409, refusal: true });
  };
  const cap = (key: string) => sockets.forObject(key, 'acme/chat', 'Room', fenced, (action, e) => audited.push(`${action}: ${e.message}`));
  return { sockets, cap, delivered, audited, expire: () => (leaseOk = false) };
}

/** The browser's end as ingress offers it; `calls`: how many calls the supervisor made on it to send. */
function browser() {
  const sent: (string | Uint8Array)[] = [];
  const closed: [number, string][] = [];
  const counts = { calls: 0 };
  const stub = {
    send: async (d: string | Uint8Array) => {
      counts.calls++;
      sent.push(d);
    },
    sendMany: async (ms: (string | Uint8Array)[]) => {
      counts.calls++;
      sent.push(...ms);
    },
    close: async (code: number, reason: string) => void closed.push([code, reason]),
    onRpcBroken: () => {},
    dup: () => stub,
    [Symbol.dispose]: () => {},
  };
  return { stub: stub as unknown as RpcStub<BrowserSocket>, sent, closed, counts };
}

const tick = () => new Promise((r) => setImmediate(r));

test("a capability reaches its own object's sockets only; attach only for the socket's worker and class, once", async () => {
  const { sockets, cap, audited } = setup();
  const sid = await cap(KEY_A).accept(['t'], true);
  await assert.rejects(cap(KEY_B).send([[sid, 'x']]), /no such WebSocket on this Durable Object/);
  await assert.rejects(cap(KEY_B).setAttachment(sid, null), /no such WebSocket/);
  assert.equal(audited.length, 2, 'the refusals are audited');
  assert.throws(() => sockets.attach('evil/chat', 'Room', sid, browser().stub), /no such WebSocket to attach/);
  assert.throws(() => sockets.attach('acme/chat', 'Other', sid, browser().stub), /no such WebSocket to attach/);
  const b = browser();
  // What it sent before the 101 went out waits, then goes first.
  await cap(KEY_A).send([[sid, 'early']]);
  sockets.attach('acme/chat', 'Room', sid, b.stub);
  assert.throws(() => sockets.attach('acme/chat', 'Room', sid, browser().stub), /attached already/);
  await cap(KEY_A).send([[sid, 'later']]);
  await tick();
  assert.deepEqual(b.sent, ['early', 'later']);
  assert.deepEqual(
    (await cap(KEY_A).list('t')).map((s) => s.sid),
    [sid],
  );
  assert.deepEqual(await cap(KEY_A).list('other'), []);
  assert.deepEqual(await cap(KEY_B).list(null), []);
  sockets.stop();
});

test('a stale lease reaches nothing', async () => {
  const { sockets, cap, expire } = setup();
  const sid = await cap(KEY_A).accept([], true);
  expire();
  await assert.rejects(cap(KEY_A).send([[sid, 'x']]), /lease has moved on/);
  await assert.rejects(cap(KEY_A).accept([], true), /lease has moved on/);
  sockets.stop();
});

test('limits: sockets per object and per tenant, tags, message and attachment sizes', async () => {
  const { sockets, cap } = setup({ perObject: 2, perTenant: 3 });
  await cap(KEY_A).accept([], true);
  const sid = await cap(KEY_A).accept([], true);
  await assert.rejects(cap(KEY_A).accept([], true), /holds its limit of 2 WebSockets/);
  await cap(KEY_B).accept([], true);
  await assert.rejects(cap(KEY_B).accept([], true), /tenant's Durable Objects hold their limit of 3/);
  await assert.rejects(
    cap(KEY_B).accept(
      Array.from({ length: 11 }, (_, i) => `t${i}`),
      true,
    ),
    /tags/,
  );
  await assert.rejects(cap(KEY_A).send([[sid, 'x'.repeat(1024 * 1024 + 1)]]), /at most 1048576 bytes/);
  await assert.rejects(cap(KEY_A).setAttachment(sid, 'x'.repeat(16 * 1024 + 1)), /attachment/);
  // Before its 101, a socket takes at most 1 MiB.
  await cap(KEY_A).send([[sid, 'x'.repeat(1024 * 1024)]]);
  await assert.rejects(cap(KEY_A).send([[sid, 'x']]), /at most 1048576 bytes may be sent on a WebSocket before its 101/);
  // A closed socket frees its place.
  await cap(KEY_A).close(sid, 1000, 'bye');
  await cap(KEY_A).accept([], true);
  sockets.stop();
});

test('the auto-response is answered without the object; other messages and the close are delivered once', async () => {
  const { sockets, cap, delivered } = setup();
  await cap(KEY_A).setAutoResponse('ping', 'pong');
  const sid = await cap(KEY_A).accept([], true);
  const b = browser();
  const end = sockets.attach('acme/chat', 'Room', sid, b.stub);
  await end.message('ping');
  await tick();
  assert.deepEqual(b.sent, ['pong']);
  assert.equal(delivered.length, 0, 'the object was not woken');
  await end.message(new Uint8Array([1, 2]));
  assert.equal(delivered[0]!.event.binary, true);
  assert.equal(delivered[0]!.event.data, 'AQI=');
  assert.ok(delivered[0]!.event.socket.autoResponseAt !== null, 'the auto-response time is known');
  await end.close(1000, 'bye');
  await end.close(1000, 'again');
  assert.deepEqual(
    delivered.filter((d) => d.event.type === 'close').map((d) => [d.event.code, d.event.reason, d.event.wasClean]),
    [[1000, 'bye', true]],
  );
  assert.equal(sockets.count(KEY_A), 0);
  sockets.stop();
});

test("the object's own close goes to the browser after what it sent; the client's answer is delivered once", async () => {
  const { sockets, cap, delivered } = setup();
  const sid = await cap(KEY_A).accept([], true);
  const b = browser();
  const end = sockets.attach('acme/chat', 'Room', sid, b.stub);
  await cap(KEY_A).send([[sid, 'last words']]);
  await cap(KEY_A).close(sid, 4000, 'done');
  await tick();
  await tick();
  assert.deepEqual(b.sent, ['last words']);
  assert.deepEqual(b.closed, [[4000, 'done']]);
  await assert.rejects(cap(KEY_A).send([[sid, 'more']]), /closing/);
  assert.deepEqual(await cap(KEY_A).list(null), [], 'a closing socket is not listed');
  await end.close(4000, 'done');
  assert.deepEqual(
    delivered.map((d) => [d.event.type, d.event.code]),
    [['close', 4000]],
  );
  await assert.rejects(cap(KEY_A).send([[sid, 'more']]), /no such WebSocket/);
  sockets.stop();
});

test('sockets waiting for their 101 are bounded, and so is what a client that does not read is owed', async () => {
  const { sockets, cap } = setup({ perObject: 100, perTenant: 100 });
  const sids: string[] = [];
  for (let i = 0; i < 64; i++) sids.push(await cap(KEY_A).accept([], true));
  await assert.rejects(cap(KEY_A).accept([], true), /64 WebSockets of this Durable Object are waiting for their 101/);
  // One reaches a browser that never takes a message: past 16 MiB owed, it is closed, and the object may accept again.
  const closed: [number, string][] = [];
  const stuck = {
    sendMany: () => new Promise<void>(() => {}),
    close: async (code: number, reason: string) => void closed.push([code, reason]),
    onRpcBroken: () => {},
    dup: () => stuck,
    [Symbol.dispose]: () => {},
  };
  sockets.attach('acme/chat', 'Room', sids[0]!, stuck as unknown as RpcStub<BrowserSocket>);
  await cap(KEY_A).accept([], true);
  const mib = 'x'.repeat(1024 * 1024);
  for (let i = 0; i < 16; i++) await cap(KEY_A).send([[sids[0]!, mib]]);
  assert.deepEqual(closed, []);
  await cap(KEY_A).send([[sids[0]!, mib]]);
  assert.deepEqual(closed, [[1011, 'the client does not read fast enough']]);
  await assert.rejects(cap(KEY_A).send([[sids[0]!, 'more']]), /closing/);
  sockets.stop();
});

test('what an object sends a socket in one tick goes to ingress in one call, in order, bounded as its ws.send batches; the close after it', async () => {
  const { sockets, cap } = setup();
  const sid = await cap(KEY_A).accept([], true);
  const b = browser();
  sockets.attach('acme/chat', 'Room', sid, b.stub);
  const hundred = Array.from({ length: 100 }, (_, i) => `m${i}`);
  await cap(KEY_A).send(hundred.map((m) => [sid, m]));
  await tick();
  assert.deepEqual(b.sent, hundred);
  assert.equal(b.counts.calls, 1, 'one call for 100 messages');
  // Past 1,024 messages (the batch bound of schemas/object-socket-batches.ts), a tick's messages take more calls.
  const many = Array.from({ length: 1024 }, (_, i) => [sid, `n${i}`] as [string, string]);
  await cap(KEY_A).send(many);
  await cap(KEY_A).send([[sid, 'last']]);
  await tick();
  assert.equal(b.sent.length, 100 + 1025);
  assert.equal(b.sent.at(-1), 'last');
  assert.equal(b.counts.calls, 3);
  // Sent and closed in one tick: the close goes once, after what was sent has reached ingress.
  await cap(KEY_A).send([
    [sid, 'a'],
    [sid, 'b'],
  ]);
  await cap(KEY_A).close(sid, 1000, 'bye');
  await tick();
  assert.deepEqual(b.sent.slice(-2), ['a', 'b']);
  assert.deepEqual(b.closed, [[1000, 'bye']]);
  sockets.stop();
});

test('a socket whose 101 never reached a browser closes, and its object hears it once; attached ones stay', async () => {
  const delivered: ObjectSocketEvent[] = [];
  const sockets = new ObjectSockets({
    deliver: async (_key, event) => (delivered.push(event), ''),
    perObject: 8,
    perTenant: 8,
    pendingMs: 50,
    log: createLogger('test', {}, () => {}),
  });
  const cap = sockets.forObject(
    KEY_A,
    'acme/chat',
    'Room',
    () => {},
    () => {},
  );
  const lost = await cap.accept(['t'], true);
  const kept = await cap.accept(['t'], true);
  sockets.attach('acme/chat', 'Room', kept, browser().stub);
  const deadline = Date.now() + 5_000;
  while (delivered.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 150));
  assert.deepEqual(
    delivered.map((e) => [e.type, e.socket.sid, e.code, e.wasClean]),
    [['close', lost, 1006, false]],
  );
  assert.deepEqual(
    (await cap.list(null)).map((s) => s.sid),
    [kept],
  );
  sockets.stop();
});

test("a deleted object's sockets close at once and it hears nothing more (a close delivered would make it again)", async () => {
  const { sockets, cap, delivered } = setup();
  const sid = await cap(KEY_A).accept([], true);
  const b = browser();
  const end = sockets.attach('acme/chat', 'Room', sid, b.stub);
  await cap(KEY_A).send([[sid, 'last']]);
  const other = await cap(KEY_B).accept([], true);
  const bystander = browser();
  const otherEnd = sockets.attach('acme/chat', 'Room', other, bystander.stub);
  sockets.dropObject(KEY_A);
  await tick();
  assert.deepEqual(b.closed, [[1001, 'the Durable Object was deleted']]);
  assert.equal(sockets.count(KEY_A), 0);
  // The client's answer to the close, and anything it still sends, reach no object.
  await end.message('late');
  await end.close(1001, 'bye');
  assert.equal(delivered.length, 0);
  await otherEnd.message('hi');
  assert.deepEqual(
    delivered.map((d) => [d.key, d.event.type]),
    [[KEY_B, 'message']],
  );
  sockets.stop();
});
