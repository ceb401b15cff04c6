/**
 * Workflows through the real mesh: deployed from a wrangler.jsonc unchanged, driven by the CLI and by
 * the worker's own binding; steps, sleeps, buffered events, retries, NonRetryableError, version
 * pinning, tenant scoping, and kill -9 of the supervisor and of the sandbox at random moments.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

interface Status {
  id: string;
  status: string;
  output?: unknown;
  error?: { name: string; message: string };
  steps: { name: string; type: string; status: string; attempts: number }[];
}

describe('workflows', () => {
  let mesh: TestMesh;
  const status = async (id: string, tenant = 'default') => {
    const r = await mesh.cli(['workflows', 'status', 'signup', id, '--json', '--tenant', tenant]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Status;
  };
  const until = (id: string, want: string, ms = 20_000) =>
    waitFor(`instance ${id} to be ${want}`, async () => ((await status(id)).status === want ? status(id) : undefined), ms, 100);
  const create = async (params: object, extra: string[] = []) => {
    const r = await mesh.cli(['workflows', 'create', 'signup', '--params', JSON.stringify(params), ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  before(async () => {
    mesh = await startTestMesh();
    const d = await mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('CLI: create, a step, a sleep, waiting for an event, the event, retries, complete with output and step history', async () => {
    const id = await create({ user: 'ada', sleepMs: 50 });
    const waiting = await until(id, 'waiting');
    assert.deepEqual(
      waiting.steps.map((s) => [s.name, s.type, s.status]),
      [
        ['create user', 'do', 'complete'],
        ['cool off', 'sleep', 'complete'],
        ['approval', 'waitForEvent', 'waiting'],
      ],
    );
    const sent = await mesh.cli(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"bob"}']);
    assert.equal(sent.code, 0, sent.stderr);
    const done = await until(id, 'complete');
    assert.deepEqual(done.output, { user: 'ada', approvedBy: 'bob', attempts: 3 });
    assert.equal(done.steps.find((s) => s.name === 'flaky')!.attempts, 3);
    const list = await mesh.cli(['workflows', 'list', 'signup', '--status', 'complete']);
    assert.match(list.stdout, new RegExp(`^${id}\\tcomplete`, 'm'));
  });

  test('the binding in env: create with an id, an event sent before the wait is buffered, status', async () => {
    const r = await fetch(`${mesh.httpUrl}/signup/start?id=early-bird&user=eve&sleep=300`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { id: 'early-bird' });
    assert.equal((await fetch(`${mesh.httpUrl}/signup/approve?id=early-bird&by=carol`)).status, 200, 'sent while the instance still sleeps');
    const done = await until('early-bird', 'complete');
    assert.deepEqual(done.output, { user: 'eve', approvedBy: 'carol', attempts: 3 });
    const viaBinding = (await (await fetch(`${mesh.httpUrl}/signup/status?id=early-bird`)).json()) as Status;
    assert.equal(viaBinding.status, 'complete');
    assert.deepEqual(viaBinding.output, done.output);
    const again = await fetch(`${mesh.httpUrl}/signup/start?id=early-bird&user=eve`);
    assert.equal(again.status, 500, 'an id in use is refused');
  });

  test('the binding in env: createBatch skips ids in use, list filters by status with decoded outputs, pause/resume/terminate/restart', async () => {
    const batch = await (await fetch(`${mesh.httpUrl}/signup/batch?ids=b1,b2,early-bird`)).json();
    assert.deepEqual(batch, ['b1', 'b2'], 'an id in use is skipped, not an error');
    await until('b1', 'waiting');
    await until('b2', 'waiting');
    const bind = (id: string, op: string) => fetch(`${mesh.httpUrl}/signup/control?id=${id}&op=${op}`);
    assert.equal((await bind('b1', 'pause')).status, 200);
    await until('b1', 'paused');
    assert.equal((await bind('b1', 'resume')).status, 200);
    assert.equal((await bind('b2', 'terminate')).status, 200);
    await until('b2', 'terminated');
    assert.equal((await bind('b2', 'restart')).status, 200);
    await until('b2', 'waiting');
    const completed = (await (await fetch(`${mesh.httpUrl}/signup/list?status=complete&limit=1`)).json()) as { id: string; status: string; output: unknown }[];
    assert.equal(completed.length, 1, 'the limit holds');
    assert.equal(completed[0]!.status, 'complete');
    assert.equal(typeof completed[0]!.output, 'object', 'outputs come decoded, as from status()');
    const all = (await (await fetch(`${mesh.httpUrl}/signup/list`)).json()) as { id: string }[];
    assert.ok(['b1', 'b2', 'early-bird'].every((id) => all.some((i) => i.id === id)));
    assert.equal((await fetch(`${mesh.httpUrl}/signup/list?status=nonsense`)).status, 500, 'a bad filter is refused');
  });

  test('NonRetryableError fails the step at once; an error after the last retry errors the instance', async () => {
    const id = await create({ user: 'x', fail: 'nonretryable' });
    const failed = await until(id, 'errored');
    assert.deepEqual(failed.error, { name: 'NonRetryableError', message: 'this user can never sign up' });
    assert.equal(failed.steps[0]!.attempts, 1);
    const id2 = await create({ user: 'y', fail: 'always', sleepMs: 1 });
    await until(id2, 'waiting');
    await mesh.cli(['workflows', 'event', 'signup', id2, 'approved']);
    const exhausted = await until(id2, 'errored');
    assert.equal(exhausted.error!.message, 'attempt 4 failed', 'limit 3: four attempts in all');
  });

  test('pause, resume, terminate, restart; bad input is refused clearly', async () => {
    const id = await create({ user: 'p', sleepMs: 1 });
    await until(id, 'waiting');
    await mesh.cliOk(['workflows', 'pause', 'signup', id]);
    await mesh.cli(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"q"}']);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await status(id)).status, 'paused', 'a paused instance does not run, even with its event there');
    await mesh.cliOk(['workflows', 'resume', 'signup', id]);
    await until(id, 'complete');
    assert.match((await mesh.cli(['workflows', 'resume', 'signup', id])).stderr, /409 .*not paused/);
    await mesh.cliOk(['workflows', 'restart', 'signup', id]);
    await until(id, 'waiting');
    assert.equal((await status(id)).steps.length, 3, 'restarted from the start: the history was erased');
    await mesh.cliOk(['workflows', 'terminate', 'signup', id]);
    assert.equal((await status(id)).status, 'terminated');
    assert.match((await mesh.cli(['workflows', 'event', 'signup', id, 'approved'])).stderr, /409 .*terminated/);
    assert.match((await mesh.cli(['workflows', 'create', 'signup', '--id', 'bad id!'])).stderr, /400 .*instance id/);
    assert.match((await mesh.cli(['workflows', 'create', 'nosuch'])).stderr, /404 .*no workflow nosuch/);
    assert.match((await mesh.cli(['workflows', 'create', 'signup', '--params', '{bad'])).stderr, /--params must be JSON/);
  });

  test('an instance keeps running the version it was created with', async () => {
    const id = await create({ user: 'v1', sleepMs: 1 });
    await until(id, 'waiting');
    // A new version whose flaky step gives up at once: the old instance must not notice.
    const d = await mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc', '--var', 'VERSION=2']);
    assert.equal(d.code, 0, d.stderr);
    await mesh.cli(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"old"}']);
    const done = await until(id, 'complete');
    assert.deepEqual(done.output, { user: 'v1', approvedBy: 'old', attempts: 3 });
  });

  test("no tenant reaches another tenant's instances: not by token, not by a binding of the same name", async () => {
    const id = await create({ user: 'secret', sleepMs: 1 });
    const token = (await mesh.cli(['tokens', 'create', '--scope', 'workflows', '--tenant', 'globex'])).stdout.trim();
    const res = await fetch(`${mesh.adminUrl}/v1/workflows/default/signup/instances/${id}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 403);
    const own = await fetch(`${mesh.adminUrl}/v1/workflows/globex/signup/instances/${id}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(own.status, 404, 'the same workflow name and id in another tenant is another (absent) instance');
    // globex deploys a worker binding a workflow called "signup" that it does not host: nothing of default's is reachable.
    const d = await mesh.cli(['deploy', 'examples/workflows/index.ts', '--name', 'spy', '--tenant', 'globex', '--route', '*/spy/*', '--storage', 'DB']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the spy', async () => (await fetch(`${mesh.httpUrl}/spy/none`)).status === 404 || undefined);
    const peek = await fetch(`${mesh.httpUrl}/spy/status?id=${id}`);
    assert.equal(peek.status, 500, 'the spy has no SIGNUP binding at all');
  });

  test('kill -9 of the supervisor and the sandbox at random moments: every instance completes, no committed step runs again', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await create({ user: `k${i}`, sleepMs: 20 + i * 30 }));
    for (let round = 0; round < 6; round++) {
      const victim = round % 2 === 0 ? 'supervisor' : 'sandbox:standard';
      await new Promise((r) => setTimeout(r, 50 + Math.floor(Math.random() * 400)));
      const pid = mesh.servicePids().get(victim)!;
      process.kill(pid, 'SIGKILL');
      await waitFor(`a new ${victim}`, () => {
        const p = mesh.servicePids().get(victim);
        return p && p !== pid ? p : undefined;
      });
      if (round === 2)
        for (const id of ids)
          await waitFor('the event to be taken', async () =>
            (await mesh.cli(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"k"}'])).code === 0 ? true : undefined,
          );
    }
    const runs = new Map<string, number>();
    for (const id of ids) {
      const done = await until(id, 'complete', 60_000);
      // Succeeds on its third attempt; a kill that interrupted an attempt counts it (docs/workflows.md), so
      // the attempt that succeeded is the step's last recorded one, the third or later.
      const flaky = done.steps.find((s) => s.name === 'flaky')!;
      assert.deepEqual(done.output, { user: `k${ids.indexOf(id)}`, approvedBy: 'k', attempts: flaky.attempts });
      assert.ok(flaky.attempts >= 3, `${id}: flaky succeeded on attempt ${flaky.attempts}`);
    }
    for (const row of (await (
      await waitFor('the worker', async () => {
        const r = await fetch(`${mesh.httpUrl}/signup/runs`);
        return r.status === 200 ? r : undefined;
      })
    ).json()) as { instance: string; step: string; n: number }[]) {
      runs.set(`${row.instance}/${row.step}`, row.n);
    }
    for (const id of ids) {
      for (const step of (await status(id)).steps.filter((s) => s.type === 'do')) {
        const n = runs.get(`${id}/${step.name}`) ?? 0;
        assert.ok(n >= 1 && n <= step.attempts, `${id} ${step.name}: ran ${n} times for ${step.attempts} recorded attempts`);
      }
    }
  });
});
