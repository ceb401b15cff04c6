/** A tenant's KV namespaces, D1 databases and queues: names checked as paths, and how many a tenant may have. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlPool } from './sql-pool.ts';
import { TenantResources } from './tenant-resources.ts';

const body = (s: string) => new TextEncoder().encode(s);

test('tenant resources: a tenant may have so many of each kind; those it has count once; the limit holds at open too', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-resources-'));
  const pool = new SqlPool({ processes: 1 });
  try {
    const r = new TenantResources(dir, pool, { quotaBytes: 1e7, perTenant: 2 });
    await r.open('kv', 'acme', 'a').call('put', ['k', body('v'), null, null, 0], Date.now() + 10_000);
    r.checkDeclared('acme', [
      { kind: 'kv', name: 'a' },
      { kind: 'kv', name: 'b' },
      { kind: 'queue', name: 'a' },
    ]);
    assert.throws(
      () =>
        r.checkDeclared('acme', [
          { kind: 'kv', name: 'b' },
          { kind: 'kv', name: 'c' },
        ]),
      /tenant acme would have 3 KV namespaces; the limit is 2/,
    );
    r.checkDeclared('other', [
      { kind: 'kv', name: 'b' },
      { kind: 'kv', name: 'c' },
    ]);
    await r.open('kv', 'acme', 'b').call('delete', ['x'], Date.now() + 10_000);
    assert.throws(() => r.open('kv', 'acme', 'c'), /would have 3 KV namespaces/);
    assert.throws(() => r.open('kv', 'acme', '../x'), /names and ids are/);
    assert.throws(() => r.open('kv', '../acme', 'a'));
    assert.deepEqual(r.names('kv', 'acme').sort(), ['a', 'b']);
  } finally {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
