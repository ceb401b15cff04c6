/**
 * `cordon/client` against the admin HTTP API, in one run on one mesh: a 3-step workflow
 * (bench/workflow-worker.ts) created and followed to completion, N one after another (create →
 * complete latency) and N with 16 at a time (instances/s). Over the WebSocket the completion is
 * pushed (watch); over HTTP it is polled (GET the instance every 10 ms), as an HTTP client must.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from '../test/helpers/mesh.ts';
import { connect, type Cordon } from '../client/index.ts';

const N = Number(process.env.BENCH_CLIENT_INSTANCES || 200);
const say = (s: string) => process.stdout.write(s + '\n');

type Run = () => Promise<void>;

async function measure(run: Run): Promise<{ p50: number; p99: number; perSecond: number }> {
  const latencies: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await run();
    latencies.push(performance.now() - t);
  }
  latencies.sort((a, b) => a - b);
  let left = N;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (left-- > 0) await run();
    }),
  );
  return { p50: latencies[Math.floor(N / 2)]!, p99: latencies[Math.floor(N * 0.99)]!, perSecond: N / ((performance.now() - t) / 1000) };
}

function overClient(cordon: Cordon): Run {
  const flow = cordon.workflows('flow');
  return async () => {
    const instance = await flow.create({ params: { sleepMs: 0 } });
    let watch: Disposable | undefined;
    await new Promise<void>((resolve, reject) => {
      void instance
        .watch((e) => {
          if (e.type === 'status' && e.status.status === 'complete') resolve();
          if (e.type === 'status' && e.status.status === 'errored') reject(new Error('errored'));
        })
        .then((w) => (watch = w as unknown as Disposable), reject);
    });
    watch?.[Symbol.dispose]();
    instance[Symbol.dispose]();
  };
}

function overHttp(mesh: TestMesh): Run {
  const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const base = `${mesh.adminUrl}/v1/workflows/default/flow/instances`;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  return async () => {
    const r = await fetch(base, { method: 'POST', headers, body: JSON.stringify({ params: { sleepMs: 0 } }) });
    const { id } = (await r.json()) as { id: string };
    for (let i = 0; i < 6000; i++) {
      const s = (await (await fetch(`${base}/${id}`, { headers })).json()) as { status: string };
      if (s.status === 'complete') return;
      if (s.status === 'errored') throw new Error('errored');
      await new Promise((res) => setTimeout(res, 10));
    }
    throw new Error(`${id} did not complete`);
  };
}

export async function clientBench(): Promise<void> {
  say(`7. cordon/client over WebSocket vs the admin HTTP API: a 3-step workflow, create → complete (${N} instances)`);
  const dir = mkdtempSync(join(tmpdir(), 'cordon-clientbench-'));
  writeFileSync(
    join(dir, 'wrangler.jsonc'),
    JSON.stringify({ name: 'flow', main: join(ROOT, 'bench/workflow-worker.ts'), workflows: [{ name: 'flow', binding: 'FLOW', class_name: 'ThreeSteps' }] }),
  );
  const mesh = await startTestMesh();
  let cordon: Cordon | undefined;
  try {
    const d = await mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc')]);
    if (d.code !== 0) throw new Error(d.stderr);
    const token = (await mesh.cli(['tokens', 'create', '--scope', 'workflows'])).stdout.trim();
    cordon = await connect(`${mesh.adminUrl.replace('http:', 'ws:')}/rpc`, { token });
    const ws = overClient(cordon);
    const http = overHttp(mesh);
    await waitFor('a first instance', async () => (await ws().then(() => true)) || undefined, 60_000);
    const a = await measure(ws);
    const b = await measure(http);
    const line = (label: string, x: typeof a) =>
      `  ${label.padEnd(24)} create → complete p50 ${x.p50.toFixed(1).padStart(6)} ms   p99 ${x.p99.toFixed(1).padStart(6)} ms   ${x.perSecond.toFixed(0).padStart(5)} instances/s (16 at a time)`;
    say(line('client, WebSocket', a));
    say(line('admin HTTP (polled)', b));
  } finally {
    cordon?.[Symbol.dispose]();
    await mesh.stop();
  }
}
