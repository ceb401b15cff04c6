/** A KV namespace file alone: expiration, list pages, the quota. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvStore } from './kv-store.ts';

const body = (s: string) => new TextEncoder().encode(s);

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
