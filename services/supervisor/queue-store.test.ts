/** The queue file alone: claims under a lease, outcomes, leases ended at restart, dedup by id (dead letters sent twice). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore } from './queue-store.ts';

const body = (s: string) => new TextEncoder().encode(s);

test('queue store: oldest first, a claimed message is invisible until settled or its lease is released, retries come back at their time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-queue-'));
  try {
    const q = new QueueStore(join(dir, 'q.sqlite'), 1e8);
    q.send([
      ['a', 1, 'text', body('a'), 100],
      ['b', 2, 'text', body('b'), 50],
      ['later', 3, 'text', body('l'), 10_000],
    ]);
    q.send([['a', 9, 'text', body('dup'), 0]]); // same id: kept once
    assert.deepEqual(q.backlog(200), { ready: 2, oldest: 50, next: 10_000 });
    const claimed = q.claim(200, 10, 5000, 1e6);
    assert.deepEqual(
      claimed.map((m) => [m.id, m.attempts, new TextDecoder().decode(m.body)]),
      [
        ['b', 1, 'b'],
        ['a', 1, 'a'],
      ],
    );
    assert.equal(q.backlog(200).ready, 0, 'leased');
    q.settle(['b'], [['a', 3000]]);
    assert.equal(q.backlog(2999).ready, 0, 'a retry waits for its delay');
    assert.deepEqual(
      q.claim(3000, 10, 9000, 1e6).map((m) => [m.id, m.attempts]),
      [['a', 2]],
    );
    q.release(); // a supervisor restart: the lease is void
    assert.equal(q.backlog(3000).ready, 1);
    assert.equal(q.count(), 2);
    q.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('queue store: a batch is bounded in bytes as well as in count, and always takes at least one message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-queue-'));
  try {
    const q = new QueueStore(join(dir, 'q.sqlite'), 1e8);
    q.send(Array.from({ length: 5 }, (_, i): [string, number, 'bytes', Uint8Array, number] => [`m${i}`, i, 'bytes', new Uint8Array(100), i]));
    assert.deepEqual(
      q.claim(10, 10, 1000, 250).map((m) => m.id),
      ['m0', 'm1'],
    );
    assert.deepEqual(
      q.claim(10, 10, 1000, 50).map((m) => m.id),
      ['m2'],
      'one message larger than the bound still goes alone',
    );
    assert.equal(q.backlog(10).ready, 2);
    q.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
