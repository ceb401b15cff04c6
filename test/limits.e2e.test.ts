/**
 * Every limit through the real mesh (ingress → sandbox → isolate): each misbehaviour ends only its
 * own request with a 5xx and a clear line in the worker's log, the worker serves again afterwards,
 * and a co-tenant is served while the misbehaviour is still running.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('limits through the mesh', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
    assert.equal(
      (
        await mesh.cli([
          'deploy',
          'examples/misbehave/index.ts',
          '--name',
          'misbehave',
          '--route',
          '*/misbehave/*',
          '--memory-mb',
          '32',
          '--cpu-ms',
          '500',
          '--wall-ms',
          '4000',
        ])
      ).code,
      0,
    );
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor(
      'both workers',
      async () => ((await fetch(`${mesh.httpUrl}/misbehave/ok`)).status === 200 && (await fetch(`${mesh.httpUrl}/hello`)).status === 200) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
  });

  const cases: [path: string, log: RegExp][] = [
    ['loop', /CPU time limit of 500 ms/],
    // Near its memory limit V8 collects garbage again and again: on a busy machine that CPU can run out first.
    ['bomb', /memory limit of 32 MB|CPU time limit of 500 ms/],
    ['giant', /Array buffer allocation failed|memory limit of 32 MB/],
    ['promises', /CPU time limit of 500 ms/],
    ['timers', /too many pending timers/],
    ['hang', /wall time limit of 4000 ms/],
    ['recurse', /Maximum call stack size exceeded/],
  ];

  for (const [path, log] of cases) {
    test(`${path}: a 5xx for that request, a clear log line, the worker serves again, a co-tenant is served meanwhile`, async () => {
      const lines = async () => (await mesh.cli(['logs', 'misbehave'])).stdout.split('\n').filter((l) => log.test(l)).length;
      const seen = await lines();
      let settled = false;
      const bad = fetch(`${mesh.httpUrl}/misbehave/${path}`).then(async (r) => {
        settled = true;
        return { status: r.status, body: await r.text() };
      });
      // While the misbehaving request is still running (or just ended), another tenant is answered.
      const hello = await fetch(`${mesh.httpUrl}/hello`);
      assert.equal(hello.status, 200);
      if (path === 'loop') assert.equal(settled, false, 'the co-tenant was answered while the loop still ran');
      const res = await bad;
      assert.ok(res.status >= 500 && res.status < 600, `${path}: status ${res.status}`);
      assert.doesNotMatch(res.body, /\/work\/|node_modules|at .*\.ts:\d+/, 'no host paths or stack frames reach the client');
      const fine = await fetch(`${mesh.httpUrl}/misbehave/ok`);
      assert.equal(fine.status, 200);
      assert.equal(await fine.text(), 'fine');
      await waitFor(`a new log line for ${path}`, async () => ((await lines()) > seen ? true : undefined), 10_000);
    });
  }
});
