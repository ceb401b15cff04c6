/**
 * The cluster's hello-world throughput, as ratios measured in one run: the mesh over NATS (a 3-node
 * nats-server cluster, every service a `cordon run` process) beside the mesh over Unix sockets, and
 * the cordon served by two sandbox processes beside one. Skipped without nats-server.
 */
import { randomBytes } from 'node:crypto';
import autocannon from 'autocannon';
import { startTestMesh, waitFor } from '../test/helpers/mesh.ts';
import { cli, runCluster } from '../test/helpers/cluster.ts';
import { natsServerMissing } from '../lib/rpc/testing/nats-server.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const say = (s: string) => process.stdout.write(s + '\n');

async function rps(url: string, label: string): Promise<number> {
  say(`  ${label}: ${SECONDS} s of load on ${url} …`);
  return (await autocannon({ url, connections: 32, duration: SECONDS, pipelining: 1 })).requests.average;
}

export async function clusterBench(): Promise<void> {
  say('6. the cluster: hello world over NATS vs Unix sockets, 2 sandbox processes of the cordon vs 1');
  const missing = natsServerMissing();
  if (missing) {
    say(`  skipped: ${missing}`);
    return;
  }
  const mesh = await startTestMesh();
  let unix: number;
  try {
    await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('hello on the mesh', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
    unix = await rps(`${mesh.httpUrl}/hello`, 'Unix sockets, 1 sandbox');
  } finally {
    await mesh.stop();
  }
  const cluster = await runCluster({ cordons: ['standard'], auth: { user: 'cordon', pass: randomBytes(12).toString('hex') } });
  try {
    for (const role of ['supervisor', 'egress', 'ingress']) cluster.start(role);
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox-1' });
    await cluster.healthy();
    const r = await cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*'], cluster.adminEnv);
    if (r.code !== 0) throw new Error(r.stderr);
    const url = `${cluster.httpUrl}/hello`;
    await waitFor('hello on the cluster', async () => (await fetch(url)).status === 200 || undefined, 30_000);
    const one = await rps(url, 'NATS, 1 sandbox');
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox-2' });
    // The second replica is listed within a roll call; a few seconds of traffic warm its isolate.
    await new Promise((r) => setTimeout(r, 3000));
    await autocannon({ url, connections: 32, duration: 2 });
    const two = await rps(url, 'NATS, 2 sandboxes');
    const line = (label: string, v: number, note: string) => say(`  ${label.padEnd(26)} ${v.toFixed(0).padStart(8)} req/s   ${note}`);
    line('Unix sockets, 1 sandbox', unix, '');
    line('NATS, 1 sandbox', one, `${(one / unix).toFixed(2)}x Unix sockets`);
    line('NATS, 2 sandboxes', two, `${(two / one).toFixed(2)}x 1 sandbox (this machine has ${(await import('node:os')).availableParallelism()} cores)`);
  } finally {
    await cluster.stop();
  }
}
