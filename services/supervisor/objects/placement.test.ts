import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RpcStub } from 'capnweb';
import { Placement } from './placement.ts';
import type { ObjectHost } from '../../../schemas/durable-objects.ts';
import { createLogger } from '../../../lib/log.ts';

/** A host stub that answers pings unless paused (a paused one never answers, as a SIGSTOPped process). */
function fakeHost() {
  let paused = false;
  const dropped: string[] = [];
  const stub = {
    ping: () => (paused ? new Promise<string[]>(() => {}) : Promise.resolve([...held])),
    drop: async (key: string) => void dropped.push(key),
    call: async () => '',
    onRpcBroken: () => {},
    [Symbol.dispose]: () => {},
  };
  const held = new Set<string>();
  return { stub: stub as unknown as RpcStub<ObjectHost>, held, dropped, pause: (p: boolean) => (paused = p) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('one lease per object; a host that stops answering loses it to another, under a higher fence the old one fails', async () => {
  let fence = 0;
  const p = new Placement<string>({
    leaseMs: 300,
    nextFence: () => ({ fence: ++fence, created: fence === 1 }),
    storageFor: (key, f) => `${key}#${f}`,
    log: createLogger('test', {}, () => {}),
  });
  try {
    const a = fakeHost();
    const b = fakeHost();
    p.addHost('standard', a.stub);
    p.addHost('standard', b.stub);
    const first = await p.lease('w/x:C:1', 'standard');
    const again = await Promise.all([p.lease('w/x:C:1', 'standard'), p.lease('w/x:C:1', 'standard')]);
    assert.ok(
      again.every((l) => l === first),
      'concurrent callers share the one lease',
    );
    assert.equal(first.fence, 1);
    assert.ok(p.holds('w/x:C:1', 1));
    const holder = first.host.stub === a.stub ? a : b;
    holder.held.add('w/x:C:1');
    holder.pause(true);
    // Bounded: the lease ends within leaseMs of the last answer; wait at most 3 s.
    for (let i = 0; i < 30 && p.holds('w/x:C:1', 1); i++) await sleep(100);
    assert.ok(!p.holds('w/x:C:1', 1), 'a holder that stopped answering no longer holds its lease');
    const moved = await p.lease('w/x:C:1', 'standard');
    assert.equal(moved.fence, 2);
    assert.notEqual(moved.host, first.host, 'the object moved to the host that answers');
    assert.ok(!p.holds('w/x:C:1', 1), 'the old fence is stale for good');
    assert.ok(p.holds('w/x:C:1', 2));
    holder.pause(false);
    await sleep(250);
    assert.ok(!p.holds('w/x:C:1', 1), 'waking up does not give the old holder its lease back');
    await assert.rejects(p.lease('w/x:C:1', 'other'), /no sandbox process of cordon other/);
  } finally {
    p.stop();
  }
});

test("releasing a deleted object tells its holder and every other host of its cordon (one may have evicted it idle), and no other cordon's", async () => {
  let fence = 0;
  const p = new Placement<string>({
    leaseMs: 60_000,
    nextFence: () => ({ fence: ++fence, created: true }),
    storageFor: (key, f) => `${key}#${f}`,
    log: createLogger('test', {}, () => {}),
  });
  try {
    const [a, b, other] = [fakeHost(), fakeHost(), fakeHost()];
    p.addHost('standard', a.stub);
    p.addHost('standard', b.stub);
    p.addHost('trusted', other.stub);
    await p.lease('w/x:C:1', 'standard');
    p.release('w/x:C:1', 'standard');
    await sleep(10);
    assert.deepEqual([a.dropped, b.dropped, other.dropped], [['w/x:C:1'], ['w/x:C:1'], []]);
    assert.ok(!p.holds('w/x:C:1', 1));
    // No lease at all (evicted while idle): the cordon's hosts still hear it.
    p.release('w/x:C:2', 'standard');
    await sleep(10);
    assert.deepEqual([a.dropped, b.dropped, other.dropped], [['w/x:C:1', 'w/x:C:2'], ['w/x:C:1', 'w/x:C:2'], []]);
  } finally {
    p.stop();
  }
});
