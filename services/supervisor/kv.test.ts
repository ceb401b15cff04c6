/** The KV capability alone: Cloudflare's limits with workerd's messages, expirations from the supervisor's clock, what is audited. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlPool } from './sql-pool.ts';
import { KvCap } from './kv.ts';

const bytes = (s: string) => new TextEncoder().encode(s);

test('KV capability: limits and options as KV checks them; a malformed call is a refusal, a limit is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-kvcap-'));
  const pool = new SqlPool({ processes: 1 });
  const audited: string[] = [];
  try {
    const kv = new KvCap(pool.database(join(dir, 'ns.sqlite'), 1e8, 'acme', 'kv'), (action, e) => audited.push(`${action}: ${e.message}`), 10_000, 'acme/w');
    await kv.put('a', bytes('1'), { expirationTtl: 60, metadata: '{"x":1}' });
    const [[v, meta, exp]] = (await kv.get(['a'])) as [Uint8Array, string, number][];
    assert.equal(new TextDecoder().decode(v), '1');
    assert.equal(meta, '{"x":1}');
    assert.ok(Math.abs(exp - (Math.floor(Date.now() / 1000) + 60)) <= 2);
    for (const [call, message] of [
      [() => kv.put('', bytes('1'), {}), /Key name cannot be empty\.$/],
      [() => kv.put('..', bytes('1'), {}), /"\.\." is not allowed as a key name\.$/],
      [() => kv.put('é'.repeat(257), bytes('1'), {}), /KV PUT failed: 414 UTF-8 encoded length of 514 exceeds key length limit of 512/],
      [() => kv.put('a', bytes('1'), { expirationTtl: 0 }), /Please specify integer greater than 0/],
      [() => kv.put('a', bytes('1'), { expiration: 1 }), /greater than the current number of seconds/],
      [() => kv.put('a', bytes('1'), { metadata: 'not json' }), /metadata must be JSON/],
      [() => kv.get(Array.from({ length: 101 }, (_, i) => `k${i}`)), /You can request a maximum of 100 keys/],
      [() => kv.get([]), /You must request a minimum of 1 key/],
      [() => kv.list({ limit: -1 }), /KV GET failed: 400 Invalid key_count_limit of -1. Please specify an integer greater than 0/],
    ] as const)
      await assert.rejects(call, message);
    assert.deepEqual(audited, [], "the tenant's own mistakes are not refusals");
    await assert.rejects(() => kv.put(42, bytes('1'), {}), /invalid key/);
    await assert.rejects(() => kv.put('a', 'not bytes', {}), /invalid value/);
    await assert.rejects(() => kv.list({ prefix: 'a', namespace: 'other' }), /invalid list options/);
    assert.equal(audited.length, 3, 'what no honest sandbox sends is audited');
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
