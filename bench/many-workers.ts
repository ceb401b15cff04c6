/**
 * Many workers (issue 17's density figure): `BENCH_WORKERS` (50,000) workers deployed through the admin
 * API, 16 at a time, each with a route of its own; then `BENCH_WARM` (5,000) of them warmed and served
 * round-robin for BENCH_SECONDS. Printed: deploys a second, the memory of every Cordon process (RSS from
 * /proc, summed, and per warm worker), and p50/p99 of the round-robin load beside one warm worker alone.
 * The sandbox is allowed as many isolates as there are warm workers (CORDON_MAX_ISOLATES) and memory to
 * hold them, so the figure is what warm workers cost, not an eviction storm. Long: ~15 min at 50,000 on
 * 2 cores (each deploy is a durable, audited, git-committed write); use smaller numbers to try it.
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { startTestMesh, waitFor, type TestMesh } from '../test/helpers/mesh.ts';
import { loadAdminToken } from '../lib/admin-token.ts';

const WORKERS = Number(process.env.BENCH_WORKERS || 50_000);
const WARM = Math.min(WORKERS, Number(process.env.BENCH_WARM || 5000));
const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const say = (s: string) => process.stdout.write(s + '\n');
const MiB = 1024 * 1024;

/** RSS of the mesh's processes (launcher's children and theirs, bwrap included), in bytes. */
function meshRss(mesh: TestMesh): number {
  const pids = new Set([mesh.launcher.pid!]);
  const children = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  for (const pid of pids) for (const c of children(pid)) pids.add(c);
  let total = 0;
  for (const pid of pids) {
    try {
      total += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // gone
    }
  }
  return total;
}

export async function manyWorkersBench(): Promise<void> {
  say(`9. ${WORKERS} workers deployed, ${WARM} of them warm and served round-robin (BENCH_WORKERS, BENCH_WARM)`);
  const mesh = await startTestMesh({ CORDON_MAX_ISOLATES: String(WARM + 100), CORDON_SANDBOX_MEMORY_MB: String(Math.max(2048, WARM * 6)) });
  try {
    const token = loadAdminToken(mesh.dataDir);
    const deploy = (i: number) =>
      fetch(`${mesh.adminUrl}/v1/workers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          tenant: `t${i % 100}`,
          name: `w${i}`,
          mainModule: 'w.js',
          routes: [`*/w${i}/*`],
          modules: [{ name: 'w.js', type: 'esm', content: `export default { fetch() { return new Response("w${i}") } }` }],
        }),
      }).then(async (r) => {
        if (r.status !== 201) throw new Error(`deploy w${i}: ${r.status} ${await r.text()}`);
        await r.arrayBuffer();
      });
    const idle = meshRss(mesh);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = next++; i < WORKERS; i = next++) {
          await deploy(i);
          if ((i + 1) % 5000 === 0) say(`  … ${i + 1} deployed, ${((i + 1) / ((performance.now() - started) / 1000)).toFixed(0)}/s`);
        }
      }),
    );
    const deploySeconds = (performance.now() - started) / 1000;
    const deployed = meshRss(mesh);
    await waitFor('the last route at ingress', async () => (await fetch(`${mesh.httpUrl}/w${WORKERS - 1}/`)).status === 200 || undefined, 60_000);
    // Warm WARM workers: the first request to each makes its isolate.
    const warmStarted = performance.now();
    for (let i = 0; i < WARM; i += 32)
      await Promise.all(
        Array.from({ length: Math.min(32, WARM - i) }, async (_, k) => {
          const r = await fetch(`${mesh.httpUrl}/w${i + k}/`);
          if ((await r.text()) !== `w${i + k}`) throw new Error(`w${i + k} did not answer`);
        }),
      );
    const warmSeconds = (performance.now() - warmStarted) / 1000;
    const warm = meshRss(mesh);
    let n = 0;
    const roundRobin = await autocannon({
      url: mesh.httpUrl,
      connections: 32,
      duration: SECONDS,
      requests: [{ setupRequest: (req) => ({ ...req, path: `/w${n++ % WARM}/` }) }],
    });
    const one = await autocannon({ url: `${mesh.httpUrl}/w0/`, connections: 32, duration: SECONDS });
    say(`  deploys          ${(WORKERS / deploySeconds).toFixed(0)}/s (${deploySeconds.toFixed(0)} s for ${WORKERS})`);
    say(
      `  memory           ${(idle / MiB).toFixed(0)} MiB empty, ${(deployed / MiB).toFixed(0)} MiB with ${WORKERS} deployed, ${(warm / MiB).toFixed(0)} MiB with ${WARM} warm: ${((warm - deployed) / WARM / MiB).toFixed(2)} MiB per warm worker (${Math.floor((1024 * MiB * WARM) / Math.max(1, warm - deployed))} per GiB; target ≥ 1,000)`,
    );
    say(`  first requests   ${(WARM / warmSeconds).toFixed(0)} new workers/s warmed`);
    say(
      `  round-robin      ${roundRobin.requests.average.toFixed(0)} req/s   p50 ${roundRobin.latency.p50} ms   p99 ${roundRobin.latency.p99} ms   (one warm worker: ${one.requests.average.toFixed(0)} req/s, p99 ${one.latency.p99} ms; p99 ${(roundRobin.latency.p99 / Math.max(1, one.latency.p99)).toFixed(2)}x)`,
    );
  } finally {
    await mesh.stop();
  }
}
