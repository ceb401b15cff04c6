/**
 * Quarantine in a cluster: services as `cordon run` processes over a 3-node NATS cluster, and the
 * dedicated-cordon agent (`cordon run dedicated`) on the operator's host, beside the mesh secret. A
 * quarantined tenant's worker gets a sandbox process of its own from the agent and is served from it;
 * killed, that process is restarted; released, it stops. A bystander worker is served throughout.
 * Also: the agent's bad settings are one line and a non-zero exit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { waitFor } from './helpers/mesh.ts';
import { cli, runCluster, runService, sandboxNode, SANDBOX_FLAGS, type RunCluster, type Running } from './helpers/cluster.ts';
import { natsServerMissing } from '../lib/rpc/testing/nats-server.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

/** The cordon the sandbox process `pid` runs (its CORDON_CORDON). */
function cordonOf(pid: number): string | undefined {
  return /(?:^|\0)CORDON_CORDON=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))?.[1];
}

describe('quarantine and debug cordons in a cluster: the dedicated-cordon agent', { skip: missing }, () => {
  let cluster: RunCluster;
  let agent: Running;
  const get = async (path: string) => {
    const res = await fetch(`${cluster.httpUrl}${path}`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, text: await res.text() };
  };
  /** The bystander, asked all along in the background; every failure is kept. */
  const bystander = { sent: 0, failures: [] as string[], stop: false, done: Promise.resolve() };

  before(async () => {
    cluster = await runCluster({ cordons: ['standard'], auth: { user: 'cordon', pass: randomBytes(12).toString('hex') } });
    for (const role of ['supervisor', 'egress', 'ingress']) cluster.start(role);
    cluster.start('sandbox', { cordon: 'standard' });
    // The agent runs where the mesh secret is: the operator's dir, with no keyring of its own.
    agent = runService(['dedicated', ...SANDBOX_FLAGS], { ...cluster.base, CORDON_DATA_DIR: cluster.operator });
    cluster.services.push(agent);
    await cluster.healthy();
    for (const args of [
      ['deploy', '--config', 'test/fixtures/cluster/wrangler.jsonc', '--tenant', 'acme'],
      ['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*'],
    ]) {
      const r = await cli(args, cluster.adminEnv);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(
      'both workers to serve',
      async () => ((await get('/cluster/replica')).status === 200 && (await get('/hello')).status === 200) || undefined,
      30_000,
    );
    bystander.done = (async () => {
      const deadline = Date.now() + 240_000;
      for (let i = 0; i < 2000 && !bystander.stop && Date.now() < deadline; i++) {
        bystander.sent++;
        try {
          const r = await get('/hello');
          if (r.status !== 200) bystander.failures.push(`${r.status} ${r.text.slice(0, 200)}`);
        } catch (e) {
          bystander.failures.push((e as Error).message);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  });

  after(async () => {
    bystander.stop = true;
    await bystander.done;
    await cluster?.stop();
  });

  let cordon: string;
  let dedicatedReplica: string;

  test('a quarantined worker gets a process of its own from the agent, and is served from it', async () => {
    const shared = (await get('/cluster/replica')).text;
    assert.equal(sandboxNode(cluster.operator), undefined, 'no dedicated sandbox before the quarantine');
    const q = await cli(['quarantine', 'tenant', 'acme', '--reason', 'test'], cluster.adminEnv);
    assert.equal(q.code, 0, q.stderr);
    cordon = /quarantined in (q-[0-9a-z-]+)/.exec(q.stdout)![1]!;
    const pid = await waitFor('the agent to start the dedicated sandbox', () => sandboxNode(cluster.operator), 60_000, 200).catch((e) => {
      throw new Error(`${(e as Error).message}\n${agent.output()}`);
    });
    assert.equal(cordonOf(pid), cordon, 'the process runs the quarantine cordon');
    dedicatedReplica = await waitFor(
      'the worker to be served from its own process',
      async () => {
        const r = await get('/cluster/replica');
        return r.status === 200 && r.text !== shared ? r.text : undefined;
      },
      60_000,
      200,
    );
    // It stays there: every answer now comes from the one isolate of the dedicated process.
    for (let i = 0; i < 10; i++) assert.equal((await get('/cluster/replica')).text, dedicatedReplica);
    assert.match(agent.output(), new RegExp(`starting a dedicated sandbox for cordon ${cordon}`));
  });

  test('kill -9 the dedicated sandbox: the agent restarts it and the worker is served again', async () => {
    const victim = sandboxNode(cluster.operator);
    assert.ok(victim, 'the dedicated sandbox runs');
    process.kill(victim, 'SIGKILL');
    const pid = await waitFor(
      'a new dedicated sandbox',
      () => {
        const p = sandboxNode(cluster.operator);
        return p && p !== victim ? p : undefined;
      },
      60_000,
      200,
    );
    assert.equal(cordonOf(pid), cordon);
    await waitFor(
      'the worker to be served by the new process',
      async () => {
        const r = await get('/cluster/replica');
        return r.status === 200 && r.text !== dedicatedReplica ? true : undefined;
      },
      60_000,
      200,
    );
  });

  test('release: the dedicated process stops and the worker is served from its cordon again', async () => {
    const r = await cli(['quarantine', 'release-tenant', 'acme'], cluster.adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the dedicated process to stop', () => (sandboxNode(cluster.operator) === undefined ? true : undefined), 60_000, 200);
    await waitFor('the worker back on standard', async () => ((await get('/cluster/replica')).status === 200 ? true : undefined), 60_000, 200);
    assert.match(agent.output(), new RegExp(`stopping the sandbox of cordon ${cordon}`));
  });

  test('the bystander was served throughout', async () => {
    bystander.stop = true;
    await bystander.done;
    process.stderr.write(`# ${bystander.sent} bystander requests: ${bystander.failures.length} failed\n`);
    assert.ok(bystander.sent > 10, 'the bystander was asked all along');
    assert.deepEqual(bystander.failures, []);
  });

  test('bad settings: one line, exit ≠ 0, no process left', async () => {
    const noSecret = await cli(['run', 'dedicated', ...SANDBOX_FLAGS], { ...cluster.base, CORDON_DATA_DIR: cluster.dir('elsewhere') });
    assert.notEqual(noSecret.code, 0);
    assert.match(noSecret.stderr, /no mesh secret here .*run the agent on the operator's host/);
    assert.equal(noSecret.stderr.trim().split('\n').length, 1, noSecret.stderr);
    const keyring = await cli(['run', 'dedicated', ...SANDBOX_FLAGS], {
      ...cluster.base,
      CORDON_DATA_DIR: cluster.operator,
      CORDON_MESH_KEYRING_FILE: cluster.keyFile('standard'),
    });
    assert.notEqual(keyring.code, 0);
    assert.match(keyring.stderr, /takes none: unset CORDON_MESH_KEYRING_FILE/);
    const cordonFlag = await cli(['run', 'dedicated', '--cordon', 'x'], { ...cluster.base, CORDON_DATA_DIR: cluster.operator });
    assert.notEqual(cordonFlag.code, 0);
    assert.match(cordonFlag.stderr, /--cordon is for a sandbox only/);
    const badNats = await cli(['run', 'dedicated', ...SANDBOX_FLAGS], {
      ...cluster.base,
      CORDON_DATA_DIR: cluster.operator,
      CORDON_NATS_URL: 'nats://user:pw@127.0.0.1:1',
    });
    assert.notEqual(badNats.code, 0);
    assert.equal(badNats.stderr.trim().split('\n').length, 1, badNats.stderr);
  });
});
