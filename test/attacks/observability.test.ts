/**
 * Attacks on what the dashboard's charts and the traces are built from. Only ingress reports request
 * metrics: a compromised sandbox (its keyring taken from its environment) calling the report is
 * refused, and so is egress; a report from ingress's own role is checked (known workers only, bounded
 * in size, no negative or impossible counts). A tenant-bound token reads only its own tenant's
 * metrics. A workflow instance's trace id cannot be computed by anyone without the supervisor's key
 * (a client's traceparent is honoured at ingress). The bystander's numbers — what ingress really
 * counted for its real traffic — are unharmed throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { LATENCY_BUCKETS, MAX_WORKERS_PER_REPORT } from '../../lib/request-stats.ts';
import type { SupervisorForIngress } from '../../schemas/services.ts';

interface Minute {
  requests: number;
  errors: number;
  p99Ms: number | null;
}

const keyringOf = (pid: number) => Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))![1]!);
const report = (workerId: string, requests: number, errors = 0) => {
  const latency = new Array<number>(LATENCY_BUCKETS).fill(0);
  latency[0] = requests;
  return { workerId, requests, errors, latency };
};

describe('attacks on request metrics and traces', () => {
  let mesh: TestMesh;
  let operator: string;
  const sessions: MeshSession<any>[] = [];
  const api = (path: string, token = operator) => fetch(`${mesh.adminUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const total = async (worker: string, token?: string) => {
    const r = await api(`/v1/workers/${worker}/metrics`, token);
    assert.equal(r.status, 200);
    const { minutes } = (await r.json()) as { minutes: Minute[] };
    assert.equal(minutes.length, 60);
    return minutes.reduce((a, m) => ({ requests: a.requests + m.requests, errors: a.errors + m.errors }), { requests: 0, errors: 0 });
  };
  /** The supervisor's main as a peer of `role` sees it (a stolen or a real keyring). */
  const asPeer = async (keyring: Keyring, name: string) => {
    const s = await connectUnixSession<any>(socketPath(mesh.dataDir, 'supervisor'), { keyring, name, expect: 'supervisor' });
    sessions.push(s);
    return s;
  };

  before(async () => {
    mesh = await startTestMesh();
    operator = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    for (const args of [
      ['deploy', 'examples/hello/index.ts', '--name', 'bystander', '--route', '*/bystander*'],
      ['deploy', 'examples/hello/index.ts', '--name', 'other', '--tenant', 'acme', '--route', '*/acme-other*'],
      ['deploy', '--config', 'examples/workflows/wrangler.jsonc'],
    ]) {
      const r = await mesh.cli(args);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('the bystander', async () => (await fetch(`${mesh.httpUrl}/bystander`)).status === 200 || undefined);
    for (let i = 0; i < 9; i++) assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
    // Ingress reports every few seconds: the ten requests arrive in one or two reports.
    await waitFor('ingress to report the bystander’s requests', async () => ((await total('default/bystander')).requests === 10 ? true : undefined), 30_000);
  });
  after(async () => {
    for (const s of sessions) s.close();
    await mesh?.stop();
  });

  test('ingress’s report is what the charts show: the real traffic, per worker', async () => {
    assert.deepEqual(await total('default/bystander'), { requests: 10, errors: 0 });
  });

  test('a compromised sandbox cannot report metrics: the supervisor gives sandboxes no such call', async () => {
    const pid = await waitFor('the untrusted sandbox', () => sandboxNodes(mesh).get('untrusted'));
    const stolen = keyringOf(pid);
    const s = await asPeer(stolen, 'untrusted');
    await assert.rejects(
      async () => await (s.remote as unknown as SupervisorForIngress).requestStats([report('default/bystander', 1_000_000, 1_000_000)]),
      /not a function|requestStats/,
    );
    // Nor can egress's role.
    const egress = await asPeer(Keyring.forRole(loadMeshSecret(mesh.dataDir), 'egress'), 'egress');
    await assert.rejects(
      async () => await (egress.remote as unknown as SupervisorForIngress).requestStats([report('default/bystander', 1_000_000)]),
      /not a function|requestStats/,
    );
    assert.deepEqual(await total('default/bystander'), { requests: 10, errors: 0 }, 'the bystander’s numbers are unharmed');
  });

  test('a report from ingress’s role is checked: unknown workers skipped, malformed or oversized reports refused', async () => {
    const ingress = await asPeer(Keyring.forRole(loadMeshSecret(mesh.dataDir), 'ingress'), 'ingress');
    const remote = ingress.remote as unknown as SupervisorForIngress;
    // Workers that do not exist take no memory: a flood of made-up names is skipped.
    await remote.requestStats(Array.from({ length: MAX_WORKERS_PER_REPORT }, (_, i) => report(`nobody/w${i}`, 1)));
    assert.equal((await api('/v1/workers/nobody/w1/metrics')).status, 404);
    for (const bad of [
      Array.from({ length: MAX_WORKERS_PER_REPORT + 1 }, () => report('default/bystander', 1)),
      [report('default/bystander', 1, 2)],
      [report('default/bystander', -5)],
      [{ ...report('default/bystander', 1), latency: [1] }],
      [{ ...report('default/bystander', 1), extra: 'x'.repeat(1000) }],
    ])
      await assert.rejects(async () => await remote.requestStats(bad as never), /request stats/);
    assert.deepEqual(await total('default/bystander'), { requests: 10, errors: 0 }, 'refused reports changed nothing');
    // The session is still usable: a refusal fails the call alone.
    await remote.requestStats([report('acme/other', 3, 1)]);
    assert.deepEqual(await total('acme/other'), { requests: 3, errors: 1 });
  });

  test('a tenant-bound token reads its own tenant’s metrics only', async () => {
    const r = await mesh.cli(['tokens', 'create', '--scope', 'read', '--tenant', 'acme']);
    assert.equal(r.code, 0, r.stderr);
    const acme = r.stdout.trim();
    assert.equal((await api('/v1/workers/default/bystander/metrics', acme)).status, 403);
    assert.equal((await total('acme/other', acme)).requests, 3);
  });

  test('an instance’s trace id is keyed by the supervisor: not computable from its name', async () => {
    const created = await mesh.cli(['workflows', 'create', 'signup', '--id', 'guessable', '--params', JSON.stringify({ user: 'ada' })]);
    assert.equal(created.code, 0, created.stderr);
    const r = await api('/v1/workflows/default/signup/instances/guessable');
    const { traceId } = (await r.json()) as { traceId: string };
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const unkeyed = createHash('sha256').update('cordon trace\0workflow\0default\0signup\0guessable').digest('hex').slice(0, 32);
    assert.notEqual(traceId, unkeyed);
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200, 'the bystander still serves');
  });
});
