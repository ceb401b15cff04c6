/**
 * Dynamic Workers: new Workers a second, sustained, and the time to each one's first response. A parent
 * worker loads a fresh Worker on every request (`env.LOADER.load(code)`, never cached) and answers with
 * its response; requests are sent open-loop at `BENCH_DW_RATE` a second (300: the seed's figure) for
 * `BENCH_DW_SECONDS` (10), through the whole mesh, and the same worker on the real workerd (its loader
 * needs `--experimental`). Printed: Workers made a second, p50/p99 time to first response, ratios.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMesh, waitFor } from '../test/helpers/mesh.ts';
import { startWorkerd } from '../test/helpers/workerd.ts';

const RATE = Number(process.env.BENCH_DW_RATE || 300);
const SECONDS = Number(process.env.BENCH_DW_SECONDS || 10);
/** Requests left waiting at most; beyond it a request is counted as not served rather than queued without end. */
const MAX_IN_FLIGHT = 512;
const say = (s: string) => process.stdout.write(s + '\n');

const PARENT = `export default { async fetch(req, env) {
  const n = new URL(req.url).searchParams.get('n');
  const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
    modules: { 'w.js': 'export default { fetch() { return new Response("dynamic ' + n + '") } }' } });
  return w.getEntrypoint().fetch('http://dynamic/');
} }`;

interface Result {
  made: number;
  perSecond: number;
  failed: number;
  /** Why requests were not served, the most frequent first. */
  why: string;
  p50: number;
  p99: number;
}

/** Open loop: request i leaves at i / RATE seconds whatever happened to the ones before it. */
async function drive(url: string): Promise<Result> {
  const total = RATE * SECONDS;
  const times: number[] = [];
  let failed = 0;
  let inFlight = 0;
  const reasons = new Map<string, number>();
  const fail = (why: string) => {
    failed++;
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  };
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (inFlight >= MAX_IN_FLIGHT) {
      fail(`${MAX_IN_FLIGHT} requests already waiting`);
      continue;
    }
    inFlight++;
    const t = performance.now();
    pending.push(
      fetch(`${url}?n=${i}`)
        .then(async (r) => {
          const body = await r.text();
          if (r.status === 200 && body === `dynamic ${i}`) times.push(performance.now() - t);
          else fail(`${r.status} ${body.slice(0, 80).trim()}`);
        })
        .catch((e: Error) => fail(e.message))
        .finally(() => void inFlight--),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(times.length * q))] ?? NaN;
  const why = [...reasons]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n}× ${k}`)
    .join('; ');
  return { made: times.length, perSecond: times.length / elapsed, failed, why, p50: at(0.5), p99: at(0.99) };
}

function row(label: string, r: Result, peer?: Result): string {
  return `  ${label.padEnd(16)} ${r.perSecond.toFixed(0).padStart(5)} new Workers/s   p50 ${r.p50.toFixed(1).padStart(6)} ms   p99 ${r.p99.toFixed(1).padStart(6)} ms   ${r.failed} not served${peer ? `   ${(r.perSecond / peer.perSecond).toFixed(2)}x workerd's rate, p99 ${(r.p99 / peer.p99).toFixed(2)}x` : ''}`;
}

export async function dynamicWorkersBench(): Promise<void> {
  say(`5. Dynamic Workers: a new Worker per request, ${RATE}/s offered for ${SECONDS} s, time to its first response`);
  const workerd = await startWorkerd({
    files: { 'parent.js': PARENT },
    experimental: true,
    config: (ports) => `const config :Workerd.Config = (
  services = [ (name = "main", worker = .parent) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ],
);
const parent :Workerd.Worker = (
  modules = [ (name = "parent.js", esModule = embed "parent.js") ],
  compatibilityDate = "2026-07-01",
  compatibilityFlags = ["experimental"],
  bindings = [ (name = "LOADER", workerLoader = ()) ],
);`,
  });
  const dir = workerd.dir;
  const wport = workerd.ports[0];
  // The default per-worker load rate (500/s) is above the rate offered; as many Workers kept as made in a second or two.
  const mesh = await startTestMesh({ CORDON_DYNAMIC_WORKERS_PER_WORKER: '1000', CORDON_DYNAMIC_WORKER_IDLE_SECONDS: '2' });
  try {
    writeFileSync(join(dir, 'wrangler.jsonc'), JSON.stringify({ name: 'dw', main: 'parent.js', routes: ['*/dw*'], worker_loaders: [{ binding: 'LOADER' }] }));
    const d = await mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc')]);
    if (d.code !== 0) throw new Error(d.stderr);
    await waitFor('the parent on the mesh', async () => (await fetch(`${mesh.httpUrl}/dw?n=x`)).status === 200 || undefined);
    await waitFor('workerd', async () => (await fetch(`http://127.0.0.1:${wport}/?n=x`)).status === 200 || undefined);
    const peer = await drive(`http://127.0.0.1:${wport}/`);
    const ours = await drive(`${mesh.httpUrl}/dw`);
    say(row('workerd (peer)', peer));
    say(row('cordon mesh', ours, peer));
    for (const [label, r] of [
      ['workerd', peer],
      ['cordon', ours],
    ] as const)
      if (r.why) say(`    not served by ${label}: ${r.why.slice(0, 300)}`);
  } finally {
    workerd.stop();
    await mesh.stop();
  }
}
