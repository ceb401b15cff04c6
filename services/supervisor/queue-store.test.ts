/** The queue file alone: claims under a lease, outcomes, leases ended at restart, dedup by id (dead letters sent twice). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueStore } from './queue-store.ts';
import { KvStore } from './kv-store.ts';

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
    assert.deepEqual(q.backlog(200), { ready: 2, oldest: 50 });
    const claimed = q.claim(200, 10, 5000);
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
      q.claim(3000, 10, 9000).map((m) => [m.id, m.attempts]),
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

test('kv store: expired keys are never returned, list pages by cursor, the quota refuses a put with a KV message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-kv-'));
  try {
    const kv = new KvStore(join(dir, 'kv.sqlite'), 64 * 1024);
    kv.put('gone', body('x'), 100, null, 0);
    kv.put('kept', body('y'), null, '{"m":1}', 0);
    assert.deepEqual(kv.get(['gone', 'kept'], 100, 1e6), [
      [null, null, null],
      [body('y'), '{"m":1}', null],
    ]);
    for (const k of ['p/1', 'p/2', 'p/3']) kv.put(k, body(k), null, null, 0);
    const first = kv.list('p/', 2, null, 0);
    assert.deepEqual(
      first.keys.map((k) => k[0]),
      ['p/1', 'p/2'],
    );
    assert.deepEqual(kv.list('p/', 2, first.cursor, 0), { keys: [['p/3', null, null]], cursor: null });
    assert.deepEqual(
      kv.list('', 10, null, 200).keys.map((k) => k[0]),
      ['kept', 'p/1', 'p/2', 'p/3'],
    );
    assert.throws(() => kv.put('big', new Uint8Array(200 * 1024), null, null, 0), /KV PUT failed: 413 the namespace's storage quota/);
    kv.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
