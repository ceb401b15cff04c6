/**
 * Service bindings and Workers RPC through the real mesh: two workers deployed from wrangler.jsonc
 * unchanged, the callee in another cordon (so in that cordon's sandbox process); methods, props,
 * RpcTargets by reference, callbacks both ways, fetch, workerd's error for a missing method, a named
 * entrypoint bound with --service, and another tenant's worker: refused until its owner grants it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const PROJECT = join(ROOT, 'test/fixtures/projects/service-bindings');

describe('service bindings', () => {
  let mesh: TestMesh;
  const front = (op: string, path = 'front') => fetch(`${mesh.httpUrl}/${path}?op=${op}`);

  before(async () => {
    mesh = await startTestMesh();
    const api = await mesh.cli(['deploy', '--cordon', 'untrusted'], join(PROJECT, 'api'));
    assert.equal(api.code, 0, api.stderr);
    const f = await mesh.cli(['deploy'], join(PROJECT, 'front'));
    assert.equal(f.code, 0, f.stderr);
    await waitFor('front to serve', async () => (await front('none')).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('a method call; the props are the binding’s; the callee has its own env', async () => {
    assert.equal(await (await front('add')).json(), 5);
    assert.deepEqual(await (await front('whoami')).json(), { props: { caller: 'front' }, hasOwnEnv: true });
  });

  test('RpcTargets by reference (using disposes), callbacks both ways, fetch as Request and Response', async () => {
    assert.equal(await (await front('counter')).json(), 11);
    assert.deepEqual(await (await front('callbacks')).json(), { twice: 7, seen: [5, 6], tripled: 21 });
    const r = await front('fetch');
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'api saw POST /hello: ping');
  });

  test('a capability to one workflow instance as an RPC result: it reaches that instance only', async () => {
    const r = await front('pipeline');
    assert.equal(r.status, 200, await r.clone().text());
    const out = (await r.json()) as { id: string; statusId: string; keys: string[] };
    assert.equal(out.statusId, out.id, 'status() of the handed-over instance names that instance, whatever it is asked');
    assert.deepEqual(out.keys, ['id', 'pause', 'restart', 'resume', 'sendEvent', 'status', 'terminate']);
    let last = '';
    const done = await waitFor(
      'the instance to complete on the event sent through the capability',
      async () => {
        last = (await mesh.cli(['workflows', 'status', 'pipeline', out.id, '--json'])).stdout;
        const status = JSON.parse(last) as { status: string; output?: unknown };
        return status.status === 'complete' ? status : undefined;
      },
      60_000,
      200,
    ).catch((e: Error) => assert.fail(`${e.message}; last status: ${last}`));
    assert.deepEqual(done.output, { n: 7, go: 'went' });
  });

  test('values as workerd clones them: a Map of a Set, a RegExp, a cycle', async () => {
    assert.deepEqual(await (await front('values')).json(), { map: [1, 2], re: '/a+/g', cycle: true });
  });

  test('ctx.waitUntil in the callee runs after the call returned: its KV write is there later', async () => {
    const key = `k${Date.now()}`;
    const r = await fetch(`${mesh.httpUrl}/front?op=later&key=${key}`);
    assert.equal(await r.json(), 'answered');
    const written = await waitFor(
      'the write from waitUntil',
      async () => {
        const n = (await (await fetch(`${mesh.httpUrl}/front?op=note&key=${key}`)).json()) as string | null;
        return n ?? undefined;
      },
      20_000,
      100,
    );
    assert.equal(written, 'written after the call');
  });

  test('a method the callee does not have: workerd’s error', async () => {
    const r = await front('missing');
    assert.equal(r.status, 500);
    assert.equal(await r.text(), 'The RPC receiver does not implement the method "nothing".');
  });

  test('the callee runs in its cordon’s process: with that process gone, calls fail and the caller still serves', async () => {
    const pid = mesh.servicePids().get('sandbox:untrusted');
    assert.ok(pid, 'the untrusted cordon runs');
    process.kill(pid, 'SIGKILL');
    const failed = await waitFor(
      'a call to fail while the callee’s cordon is down',
      async () => {
        const r = await front('add');
        return r.status !== 200 ? r : undefined;
      },
      10_000,
      20,
    );
    assert.equal(failed.status, 500);
    assert.equal((await front('none')).status, 404, 'the caller itself is unharmed');
    await waitFor('the cordon to be back', async () => ((await front('add')).status === 200 ? true : undefined), 60_000, 200);
    assert.equal(await (await front('add')).json(), 5);
  });

  test('--service BINDING=worker:Entrypoint binds a named entrypoint', async () => {
    const d = await mesh.cli(['deploy', join(PROJECT, 'front/index.ts'), '--name', 'front2', '--route', '*/front2*', '--service', 'API=api:Admin']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('front2 to serve', async () => (await front('none', 'front2')).status === 404 || undefined);
    // Admin has no add(): the binding reaches Admin, not the default entrypoint.
    const r = await front('missing', 'front2');
    assert.equal(await r.text(), 'The RPC receiver does not implement the method "nothing".');
    assert.equal((await front('add', 'front2')).status, 500);
  });

  test('another tenant’s worker: refused (and audited) until its owner grants the caller’s tenant', async () => {
    const d = await mesh.cli([
      'deploy',
      join(PROJECT, 'front/index.ts'),
      '--name',
      'front',
      '--tenant',
      'other',
      '--route',
      '*/other-front*',
      '--service',
      'API=default/api',
    ]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('other-front to serve', async () => (await front('none', 'other-front')).status === 404 || undefined);
    const refused = await front('add', 'other-front');
    assert.equal(refused.status, 500);
    assert.match(mesh.output() + (await mesh.cli(['logs', 'other/front'])).stdout, /has not granted other/);
    const audit = await mesh.cli(['audit', 'tail', '--limit', '200']);
    assert.match(audit.stdout, /capability\.service\.connect\tother\/front\tdenied/);
    // The owner of default/api grants tenant `other`, and the same binding now works.
    const grant = await mesh.cli(['deploy', '--cordon', 'untrusted', '--allow-rpc-from', 'other'], join(PROJECT, 'api'));
    assert.equal(grant.code, 0, grant.stderr);
    await waitFor('the grant to apply', async () => ((await front('add', 'other-front')).status === 200 ? true : undefined), 20_000, 100);
    assert.equal(await (await front('add', 'other-front')).json(), 5);
    // The default tenant's own caller was never affected.
    assert.equal(await (await front('add')).json(), 5);
  });
});
