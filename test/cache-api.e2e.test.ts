/**
 * The Cache API through the real mesh: caches.default and named caches in the worker's tenant's
 * partitions of the egress cache; Workers' rules; no hit across tenants or caches; entries survive a
 * restart of egress (disk tier) and the disk tier is bounded per tenant.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('the Cache API', () => {
  let mesh: TestMesh;
  const get = async (tenant: string, path: string) => {
    const r = await fetch(`${mesh.httpUrl}/${tenant}/cache/${path}`);
    return { status: r.status, text: await r.text(), hit: r.headers.get('x-cache') };
  };
  before(async () => {
    mesh = await startTestMesh({ CORDON_CACHE_TENANT_DISK_MB: '1' });
    for (const t of ['acme', 'globex']) {
      const d = await mesh.cli(['deploy', 'examples/cache/index.ts', '--name', 'cache', '--tenant', t, '--route', `*/${t}/cache/*`]);
      assert.equal(d.code, 0, d.stderr);
    }
    await waitFor('both workers', async () => ((await get('acme', 'match')).status === 404 && (await get('globex', 'match')).status === 404) || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('put, match (with cf-cache-status: HIT), delete; named caches apart from the default one', async () => {
    assert.equal((await get('acme', 'put?key=a')).text, 'stored');
    assert.deepEqual(await get('acme', 'match?key=a'), { status: 200, text: 'value of a ', hit: 'HIT' });
    assert.equal((await get('acme', 'match?key=a&cache=other')).status, 404, 'a named cache does not see the default one');
    await get('acme', 'put?key=a&cache=other&size=3');
    assert.equal((await get('acme', 'match?key=a&cache=other')).text, 'value of a xxx');
    assert.equal((await get('acme', 'delete?key=a')).text, 'true');
    assert.equal((await get('acme', 'delete?key=a')).text, 'false');
    assert.equal((await get('acme', 'match?key=a')).status, 404);
    assert.equal((await get('acme', 'match?key=a&cache=other')).status, 200, 'deleting from default left the named cache alone');
  });

  test("Workers' rules: no-store, private and Set-Cookie are not kept; POST is refused", async () => {
    for (const [key, extra] of [
      ['ns', 'cc=no-store'],
      ['pv', 'cc=private,max-age=60'],
      ['ck', 'cookie=1'],
    ]) {
      await get('acme', `put?key=${key}&${extra}`);
      assert.equal((await get('acme', `match?key=${key}`)).status, 404, key);
    }
    assert.match((await get('acme', 'put-post')).text, /^TypeError: .*only GET/);
  });

  test('no tenant is served what another put', async () => {
    await get('acme', 'put?key=secret');
    assert.equal((await get('acme', 'match?key=secret')).status, 200);
    assert.equal((await get('globex', 'match?key=secret')).status, 404);
    assert.equal((await get('globex', 'delete?key=secret')).text, 'false');
    assert.equal((await get('acme', 'match?key=secret')).status, 200, "globex's delete did not touch acme's entry");
  });

  test('entries survive a kill -9 of egress; the disk tier keeps each tenant under its bound', async () => {
    await get('acme', 'put?key=durable');
    const pid = mesh.servicePids().get('egress')!;
    process.kill(pid, 'SIGKILL');
    await waitFor('a new egress', () => {
      const p = mesh.servicePids().get('egress');
      return p && p !== pid ? p : undefined;
    });
    await waitFor('the entry, from disk', async () => (await get('acme', 'match?key=durable')).status === 200 || undefined);
    // 1 MiB per tenant on disk: three entries of ~400 KB cannot all stay; the least recently used goes.
    for (const k of ['big1', 'big2', 'big3']) await get('globex', `put?key=${k}&size=400000`);
    assert.equal((await get('globex', 'match?key=big1')).status, 404);
    assert.equal((await get('globex', 'match?key=big3')).status, 200);
    assert.equal((await get('acme', 'match?key=durable')).status, 200, "another tenant's entries were not evicted for globex");
  });
});
