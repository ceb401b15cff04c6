/**
 * Dynamic Workers end to end: the platform example (examples/dynamic-apps) deployed with the CLI from
 * its wrangler.jsonc, loading two customers' apps — module kinds (ES, CommonJS, text, JSON), a
 * stub of the platform's API with props, an egress gateway — cached by id while in use, unloaded
 * when idle, each load counted against the platform; and a dynamic workflow (an app's own Workflow
 * class run by the platform's workflow, its jobs scoped to the app).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('Dynamic Workers (worker_loaders)', () => {
  let mesh: TestMesh;
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    return `${r.status} ${await r.text()}`;
  };
  const created = async () => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const r = await fetch(`${mesh.adminUrl}/v1/workers/default/platform`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };

  before(async () => {
    // Idle loaded Workers are unloaded after a second here (a minute by default).
    mesh = await startTestMesh({ CORDON_DYNAMIC_WORKER_IDLE_SECONDS: '1' });
    const d = await mesh.cli(['deploy', '--config', 'examples/dynamic-apps/wrangler.jsonc']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the platform', async () => ((await fetch(`${mesh.httpUrl}/apps/none/`)).status === 404 ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
  });

  test("two customers' apps, each with its own modules, env and a platform stub with its props", async () => {
    assert.equal(await get('/apps/alice/'), '200 Alice’s shop blue | hello alice, from the platform | alice');
    assert.equal(await get('/apps/bob/'), '200 Bob’s blog, visit 1 | bob');
  });

  test('get(id) keeps the Worker while it is in use: the same isolate answers again', async () => {
    assert.equal(await get('/apps/bob/'), '200 Bob’s blog, visit 2 | bob');
    assert.equal(await get('/apps/bob/'), '200 Bob’s blog, visit 3 | bob');
  });

  test("an app's fetch goes through the platform's gateway, which refuses hosts not on that customer's list", async () => {
    assert.equal(await get('/apps/alice/outbound?host=evil.example'), '200 outbound: 403 egress to evil.example is not allowed for alice');
  });

  test("dynamic workflows: an app's job runs the app's own Workflow class durably, and its jobs are its own", async () => {
    const started = await get('/apps/alice/job?n=5');
    const id = started.replace(/^200 /, '');
    assert.match(id, /^alice-[0-9a-f-]{36}$/, started);
    const done = await waitFor(
      'the job to complete',
      async () => {
        const r = await get(`/apps/alice/job-status?id=${id}`);
        return /"status":"(complete|errored)"/.test(r) ? r : undefined;
      },
      30_000,
      250,
    );
    assert.equal(done, '200 {"status":"complete","output":11}');
    // Another app names alice's job: its Jobs stub is scoped to bob, so there is no such job.
    assert.equal(await get(`/apps/bob/?job=${id}`), '404 no such job');
  });

  test('an idle Worker is unloaded; the next request loads it afresh; every load is counted against the platform', async () => {
    await sleep(3000); // three times the idle time set above: the sweeper has run
    assert.equal(await get('/apps/bob/'), '200 Bob’s blog, visit 1 | bob');
    // alice, bob, bob again (counts reach the supervisor in batches, once a second)
    await waitFor('the loads counted', async () => ((await created()) >= 3 ? true : undefined), 10_000);
  });
});
