/**
 * Durable Objects through the real mesh, deployed with the CLI from a wrangler.jsonc as a user would:
 * ids, RPC with structured clone, fetch, the storage APIs, one live instance per id under concurrent
 * callers from two routes, Cloudflare's input-gate example, deleteAll, alarms, and the operator's list.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { objectsProject } from './helpers/objects.ts';

describe('Durable Objects', () => {
  let mesh: TestMesh;
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text);
  };

  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_LEASE_MS: '2000', CORDON_OBJECT_IDLE_SECONDS: '2' });
    const r = await mesh.cli(['deploy', '--route', '*/second/*'], objectsProject());
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker to serve', async () => (await fetch(`${mesh.httpUrl}/objects/whoami/warm`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('ids: 64 hex, the same for a name, bound to their namespace', async () => {
    const ids = await get('/objects/ids/lobby');
    assert.match(ids.byName, /^[0-9a-f]{64}$/);
    assert.match(ids.unique, /^[0-9a-f]{64}$/);
    assert.equal(ids.same, true);
    assert.equal(ids.back, true);
    assert.match(ids.otherRefused, /Invalid Durable Object ID/);
    assert.equal(ids.other, 'other');
    const who = await get('/objects/whoami/lobby');
    assert.equal(who.id, ids.byName);
    assert.equal(who.name, 'lobby');
  });

  test('RPC carries structured clones both ways; a thrown error reaches the caller with its name and message, marked remote', async () => {
    assert.deepEqual(await get('/objects/echo/e'), { date: 5, map: 2, u: true, big: true });
    // Marked remote, as workerd marks what an object threw (services/sandbox/runtime/workers-rpc.test.ts compares with it).
    assert.deepEqual(await get('/objects/fail/e'), {
      name: 'RangeError',
      message: 'nope',
      remote: true,
      fetch: { name: 'URIError', message: 'from fetch', remote: true },
    });
  });

  test('functions by reference both ways: the object calls back the caller, the caller calls a function the object returned', async () => {
    assert.deepEqual(await get('/objects/callback/cb'), { doubled: 42, triple: 48 });
    // Across the two routes (another request, another session), the same: nothing is left of the first.
    assert.deepEqual(await get('/second/callback/cb'), { doubled: 42, triple: 48 });
  });

  test('an RpcTarget returned by an object is called by reference and released by dispose', async () => {
    const first = (await get('/objects/tally/t')) as { sums: number[]; before: number };
    assert.deepEqual(first.sums, [11, 13], 'calls on the target run in the object, on its state');
    // The release reaches the object after the answer: wait for it (bounded).
    await waitFor(
      'the target to be released in the object',
      async () => ((await get('/objects/released/t')) as number) > first.before || undefined,
      10_000,
      100,
    );
  });

  test('after ctx.abort() a stub got again in a later request reaches the new instance at once; what the old instance returned is refused', async () => {
    // A request kept in flight, so that the isolate's request scope, and the sessions of its stubs, go on meanwhile.
    const held = get('/objects/hold/reset?ms=4000');
    held.catch(() => {});
    const before = (await get('/objects/whoami/reset')) as { instance: string };
    assert.equal(await get('/objects/abort/reset'), 'Error: asked to');
    // getByName hands out the isolate's one stub of the object; its session was to the aborted instance.
    const after = (await get('/objects/whoami/reset')) as { instance: string };
    assert.notEqual(after.instance, before.instance, 'a new instance answers');
    assert.equal(await get('/objects/tag/reset'), after.instance, "a getter read over the same session is the new instance's");
    assert.deepEqual(await get('/objects/tally-after-abort/reset'), {
      refused: 'this was returned by an instance of the Durable Object that has since been reset',
    });
    assert.equal(await held, 'held');
  });

  test('fetch() on a stub reaches the object with method, URL and body', async () => {
    assert.deepEqual(await get('/objects/fetch/f'), { status: 201, text: 'POST /path hi from f', tagged: true });
  });

  test('one live instance per id under concurrent callers from two routes; the input gate keeps read-then-write atomic', async () => {
    const calls = Array.from({ length: 40 }, (_, i) => get(`/${i % 2 ? 'objects' : 'second'}/next/shared`));
    const values = (await Promise.all(calls)) as number[];
    assert.deepEqual(
      [...values].sort((a, b) => a - b),
      Array.from({ length: 40 }, (_, i) => i + 1),
      'every caller got a different number: no two instances, no interleaving inside next()',
    );
    const a = await get('/objects/whoami/shared');
    const b = await get('/second/whoami/shared');
    assert.equal(a.instance, b.instance);
  });

  test('storage: synchronous KV, async KV with arrays and options, transactions, cursors', async () => {
    await get('/objects/next/kv');
    assert.deepEqual(await get('/objects/kv/kv'), { a: true, listed: ['a', 'b', 'c', 'n'], deleted: true, rows: { n: 1 } });
    assert.deepEqual(await get('/objects/async-kv/kv'), {
      many: [
        ['k1', 1],
        ['k3', 3],
      ],
      reversed: ['k3', 'k2'],
      after: ['k2'],
      n: 2,
      rolledBack: true,
      t: 1,
      columns: ['n'],
      raw: [[1]],
      size: true,
    });
    assert.deepEqual(await get('/objects/wipe/kv'), { tables: 0 });
  });

  test('an idle object is evicted (a new instance next time) and its storage stays', async () => {
    assert.equal(await get('/objects/next/idle'), 1);
    const first = await get('/objects/whoami/idle');
    await waitFor(
      'the object to be evicted',
      async () => {
        const r = await mesh.cli(['objects', 'list', 'objects']);
        return r.stdout.split('\n').some((l) => l.includes('\tidle\tidle\t')) || undefined;
      },
      20_000,
      250,
    );
    const again = await get('/objects/whoami/idle');
    assert.notEqual(again.instance, first.instance, 'a new instance');
    assert.equal(await get('/objects/next/idle'), 2, 'the same storage');
  });

  test('alarms: alarm() runs at its time, is retried with back-off when it throws, and is cleared after', async () => {
    await get('/objects/alarm/alarmed?ms=200');
    const ran = await waitFor('the alarm to run', async () => (await get('/objects/alarm-state/alarmed')).ran, 15_000, 100);
    assert.equal(ran.retryCount, 0);
    assert.equal((await get('/objects/alarm-state/alarmed')).pending, null);
    await get('/objects/fail-alarms/retried?n=1');
    await get('/objects/alarm/retried?ms=100');
    const retried = await waitFor('the alarm to run again after failing once', async () => (await get('/objects/alarm-state/retried')).ran, 20_000, 200);
    assert.equal(retried.retryCount, 1, 'the second attempt knows it is a retry');
  });

  test('an alarm set before kill -9 of the sandbox and the supervisor still runs after the restart', async () => {
    await get('/objects/alarm/survivor?ms=3000');
    for (const [service, pid] of mesh.servicePids()) if (service === 'supervisor' || service.startsWith('sandbox:')) process.kill(pid, 'SIGKILL');
    const ran = await waitFor(
      'the alarm to run after the restart',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/objects/alarm-state/survivor`).catch(() => undefined);
        return r?.status === 200 ? ((await r.json()) as { ran?: unknown }).ran : undefined;
      },
      60_000,
      250,
    );
    assert.ok(ran);
  });

  test('an acknowledged write survives kill -9 of the sandbox and the supervisor; the object comes back with its state', async () => {
    for (let i = 1; i <= 5; i++) assert.equal(await get('/objects/next/durable'), i);
    for (const [service, pid] of mesh.servicePids()) if (service === 'supervisor' || service.startsWith('sandbox:')) process.kill(pid, 'SIGKILL');
    const next = await waitFor(
      'the object to answer after the restart',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/objects/next/durable`).catch(() => undefined);
        return r?.status === 200 ? ((await r.json()) as number) : undefined;
      },
      60_000,
      200,
    );
    assert.equal(next, 6, 'the five acknowledged increments were on disk');
  });

  test('objects are listed for the operator with their names, and counted', async () => {
    const r = await mesh.cli(['objects', 'list', 'objects']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Counter\t[0-9a-f]{64}\tshared\t/);
    assert.match(r.stdout, /created: \d+/);
  });
});
