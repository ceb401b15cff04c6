/** Cron triggers and scheduled() through the real mesh (a tick of the scheduler itself: services/supervisor/cron.test.ts). */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('scheduled() and cron triggers', () => {
  let mesh: TestMesh;
  // The runs `cordon trigger` made: not the worker's own */5 schedule, which may fire while a test runs
  // (its runs are at whole minutes; a trigger's scheduledTime is the moment it was asked for).
  const runs = async () =>
    ((await (await fetch(`${mesh.httpUrl}/cron`)).json()) as { cron: string; scheduledTime: number; type: string }[]).filter(
      (run) => run.scheduledTime % 60_000 !== 0,
    );
  before(async () => {
    mesh = await startTestMesh();
    const d = await mesh.cli(['deploy', '--config', 'examples/cron/wrangler.jsonc']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the cron worker', async () => (await fetch(`${mesh.httpUrl}/cron`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('cordon trigger runs scheduled() with the event Workers gives, waitUntil included', async () => {
    const before = Date.now();
    const r = await mesh.cli(['trigger', 'cron']);
    assert.equal(r.code, 0, r.stderr);
    const [run] = await runs();
    assert.equal(run!.cron, '*/5 * * * *', 'the first cron trigger of the worker');
    assert.equal(run!.type, 'scheduled');
    assert.ok(run!.scheduledTime >= before - 1000 && run!.scheduledTime <= Date.now());
    await mesh.cliOk(['trigger', 'cron', '--cron', '0 0 * * *']);
    assert.deepEqual(
      (await runs()).map((x) => x.cron),
      ['*/5 * * * *', '0 0 * * *'],
    );
  });

  test('a failing scheduled(), or a worker without one, is a clear error and a log line', async () => {
    const failing = await mesh.cli(['trigger', 'cron', '--cron', '13 13 13 1 *']);
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /500 .*this cron always fails/);
    await waitFor('the log line', async () =>
      /scheduled\(\) failed: Error: this cron always fails/.test((await mesh.cli(['logs', 'cron'])).stdout) ? true : undefined,
    );
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'plain', '--route', '*/plain*']);
    const none = await mesh.cli(['trigger', 'plain']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no scheduled\(event, env, ctx\) handler/);
  });

  test('bad cron expressions are refused at deploy, with nothing stored', async () => {
    for (const [cron, why] of [
      ['* * * *', /five fields/],
      ['61 * * * *', /not valid/],
      ['* * * * * *', /five fields/],
    ] as const) {
      const r = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'badcron', '--cron', cron]);
      assert.equal(r.code, 1, cron);
      assert.match(r.stderr, why, cron);
    }
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /badcron/);
  });
});
