/**
 * Replicas: two sandbox processes of one cordon (`cordon run sandbox` twice) over a 3-node NATS cluster
 * on loopback. Requests spread over both; one is SIGKILLed mid-load and no idempotent request fails
 * (those in flight on it are retried on the other, never one it had answered); a workflow running on it
 * resumes on the other and completes; a replica started afterwards takes load.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { waitFor } from './helpers/mesh.ts';
import { cli, runCluster, sandboxNode, type RunCluster } from './helpers/cluster.ts';
import { natsServerMissing } from '../lib/rpc/testing/nats-server.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

describe('sandbox replicas of one cordon over a NATS cluster', { skip: missing }, () => {
  let cluster: RunCluster;
  const get = async (path: string) => {
    const res = await fetch(`${cluster.httpUrl}/cluster${path}`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, text: await res.text() };
  };
  /** The distinct replicas (isolate ids) that answer `n` requests. */
  const replicasSeen = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await get('/replica');
      if (r.status === 200) seen.add(r.text);
    }
    return seen;
  };

  before(async () => {
    cluster = await runCluster({ cordons: ['standard'], auth: { user: 'cordon', pass: randomBytes(12).toString('hex') } });
    cluster.start('supervisor');
    cluster.start('egress');
    cluster.start('ingress');
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox-a' });
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox-b' });
    await cluster.healthy();
    const r = await cli(['deploy', '--config', 'test/fixtures/cluster/wrangler.jsonc'], cluster.adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker to serve', async () => ((await get('/replica')).status === 200 ? true : undefined), 30_000);
  });

  after(() => cluster?.stop());

  test('requests spread over both sandbox processes', async () => {
    // Both replicas' sessions open within a roll call or two; until then one may take everything.
    const seen = await waitFor('both replicas to answer', async () => ((await replicasSeen(20)).size === 2 ? true : undefined), 30_000, 200);
    assert.ok(seen);
  });

  test('one replica killed mid-load: no idempotent request fails, the workflow resumes on the other, a new replica takes load', async () => {
    const before = await replicasSeen(20);
    const started = await get('/start?stepMs=700&steps=6');
    assert.equal(started.status, 200, started.text);
    const { id } = JSON.parse(started.text) as { id: string };
    const victim = sandboxNode(cluster.dir('sandbox-a'));
    assert.ok(victim, 'replica a runs');
    const failures: string[] = [];
    let sent = 0;
    let killed = false;
    const deadline = Date.now() + 90_000;
    // Four clients at once, so that requests are in flight on the replica when it dies.
    const client = async (c: number) => {
      for (let i = 0; i < 60 && Date.now() < deadline; i++) {
        const n = sent++;
        if (n === 60 && !killed) {
          killed = true;
          process.kill(victim, 'SIGKILL');
        }
        try {
          const r = await get(`/put?key=k${c}-${i}&value=${n}`);
          if (r.status !== 200) failures.push(`#${n}: ${r.status} ${r.text.slice(0, 200)}`);
        } catch (e) {
          failures.push(`#${n}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(client));
    process.stderr.write(`# ${sent} requests over 2 replicas, one SIGKILLed at #60: ${failures.length} failed\n${failures.map((f) => `#   ${f}\n`).join('')}`);
    assert.ok(killed, 'the replica was killed mid-load');
    assert.equal(sent, 240, 'the load ran to its end within its time bound');
    assert.deepEqual(failures, [], 'no idempotent request failed');
    // Every acknowledged write is there.
    for (let c = 0; c < 4; c++) {
      const r = await get(`/get?key=k${c}-59`);
      assert.equal(r.status, 200);
      assert.notEqual(JSON.parse(r.text).value, null, `write k${c}-59 is stored`);
    }

    const status = await waitFor(
      `workflow ${id} to complete`,
      async () => {
        const s = JSON.parse((await get(`/status?id=${id}`)).text) as { status: string; output?: unknown; error?: unknown };
        if (s.status === 'errored' || s.status === 'terminated') throw new Error(`the workflow ended ${s.status}: ${JSON.stringify(s.error)}`);
        return s.status === 'complete' ? s : undefined;
      },
      90_000,
      250,
    );
    assert.deepEqual(status.output, { done: [0, 1, 2, 3, 4, 5] });

    // A replica started now takes load: a third isolate id shows up.
    const joined = Date.now();
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox-c' });
    await waitFor('the new replica to take load', async () => ([...(await replicasSeen(10))].some((r) => !before.has(r)) ? true : undefined), 60_000, 200);
    process.stderr.write(`# the new replica answered ${Date.now() - joined} ms after it was started (process start included)\n`);
  });
});
