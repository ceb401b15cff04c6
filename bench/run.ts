/**
 * `npm run bench`: Cordon against its peers, measured in one run on this machine, printed as ratios.
 *   1. hello-world through the whole mesh (ingress → sandbox → isolate) vs the same worker on workerd,
 *      with a plain Node http server as the floor (autocannon, keep-alive), and our runtime alone;
 *   2. cold start: code already fetched → first response, per new worker (our runtime), back to
 *      back and with a pause before each (a spare isolate ready);
 *   3. memory per idle isolate: ours (full Workers API) vs a bare isolated-vm isolate;
 *   4. workflows: 3-step instances/s on Cordon vs miniflare vs the SQLite floor; sleeping instances' memory;
 *   5. Dynamic Workers: new Workers a second, sustained, and their time to first response, vs workerd;
 *   6. Workers RPC calls/s between two workers vs fetch between them vs two workerd workers (bench/workers-rpc.ts);
 *   7. a 3-step workflow driven by cordon/client over WebSocket vs the admin HTTP API (bench/client.ts);
 *   8. the cluster: hello over NATS vs Unix sockets, and with 2 sandbox processes of the cordon vs 1;
 *   9. Durable Objects: RPC round trips/s on one object and over 1,000 vs workerd with local-disk
 *      storage, idle objects per GiB, the time to wake an evicted object (bench/durable-objects.ts).
 * Never part of `npm test`: numbers, not assertions.
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import autocannon from 'autocannon';
import ivm from 'isolated-vm';
import { freePort, ROOT, startTestMesh, waitFor } from '../test/helpers/mesh.ts';
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';
import { workflowsBench } from './workflows.ts';
import { dynamicWorkersBench } from './dynamic-workers.ts';
import { workersRpcBench } from './workers-rpc.ts';
import { clientBench } from './client.ts';
import { clusterBench } from './cluster.ts';
import { durableObjectsBench } from './durable-objects.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const say = (s: string) => process.stdout.write(s + '\n');

async function load(url: string, label: string): Promise<{ rps: number; p50: number; p99: number }> {
  say(`  ${label}: ${SECONDS} s of load on ${url} …`);
  const r = await autocannon({ url, connections: 32, duration: SECONDS, pipelining: 1 });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 };
}

function row(label: string, x: { rps: number; p50: number; p99: number }, peer?: { rps: number }): string {
  return `  ${label.padEnd(22)} ${x.rps.toFixed(0).padStart(8)} req/s   p50 ${String(x.p50).padStart(4)} ms   p99 ${String(x.p99).padStart(4)} ms${peer ? `   ${(x.rps / peer.rps).toFixed(2)}x workerd` : ''}`;
}

async function throughput(): Promise<void> {
  say('1. hello world, requests per second');
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-'));
  const bundle = await build({ entryPoints: [join(ROOT, 'examples/hello/index.ts')], bundle: true, format: 'esm', write: false, platform: 'neutral' });
  writeFileSync(join(dir, 'worker.js'), bundle.outputFiles[0]!.text);
  const wport = await freePort();
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .hello) ],
  sockets = [ (name = "http", address = "127.0.0.1:${wport}", http = (), service = "main") ],
);
const hello :Workerd.Worker = ( modules = [ (name = "worker.js", esModule = embed "worker.js") ], compatibilityDate = "2026-07-01" );
`,
  );
  // The real workerd binary, from its npm package for this platform.
  const workerd = spawn(join(ROOT, 'node_modules/@cloudflare/workerd-linux-64/bin/workerd'), ['serve', join(dir, 'config.capnp')], { stdio: 'ignore' });
  const floor = createServer((_req, res) => res.end('Hello, world! (from a plain Node server)\n'));
  await new Promise<void>((r) => floor.listen(0, '127.0.0.1', () => r()));
  const mesh = await startTestMesh();
  try {
    await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('hello on the mesh', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
    await waitFor('workerd', async () => (await fetch(`http://127.0.0.1:${wport}/`)).status === 200 || undefined);
    const peer = await load(`http://127.0.0.1:${wport}/`, 'workerd');
    const ours = await load(`${mesh.httpUrl}/hello`, 'cordon mesh');
    const node = await load(`http://127.0.0.1:${(floor.address() as { port: number }).port}/`, 'plain node http');
    say(row('workerd (peer)', peer));
    say(row('cordon mesh', ours, peer));
    say(row('plain node (floor)', node, peer));
    const alone = await runtimeAlone(bundle.outputFiles[0]!.text);
    say(
      `  ${'cordon runtime alone'.padEnd(22)} ${alone.toFixed(0).padStart(8)} req/s   (the isolates without HTTP or RPC, in-process: ${(alone / peer.rps).toFixed(2)}x workerd)`,
    );
  } finally {
    workerd.kill('SIGKILL');
    floor.close();
    await mesh.stop();
  }
}

/**
 * The same worker straight through the sandbox's runtime, 32 requests in flight, for SECONDS: what
 * the isolates cost before any mesh hop (the rest of the mesh figure is HTTP and RPC).
 */
async function runtimeAlone(code: string): Promise<number> {
  say(`  cordon runtime alone: ${SECONDS} s in-process …`);
  const rt = new WorkerRuntime({ maxIsolates: 10 });
  const bundle = {
    workerId: 'bench/hello',
    version: 'c'.repeat(64),
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm' as const, content: code }],
    limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
    vars: {},
    bindings: [],
  };
  const req = {
    method: 'GET',
    url: 'http://127.0.0.1/hello',
    headers: [
      ['host', '127.0.0.1'],
      ['user-agent', 'bench'],
    ] as [string, string][],
    body: null,
  };
  try {
    await rt.handle(bundle, req, { log() {} });
    const until = performance.now() + SECONDS * 1000;
    let n = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (performance.now() < until) {
          await rt.handle(bundle, req, { log() {} });
          n++;
        }
      }),
    );
    return n / SECONDS;
  } finally {
    rt.dispose();
  }
}

async function coldStart(): Promise<void> {
  say('2. cold start: code in hand → first response');
  const rt = new WorkerRuntime({ maxIsolates: 1000 });
  const mk = (i: number) => ({
    workerId: `bench/w${i}`,
    version: 'a'.repeat(64),
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm' as const, content: `export default { fetch() { return new Response('hi ${i}') } }` }],
    limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
    vars: {},
    bindings: [],
  });
  const req = { method: 'GET', url: 'http://bench/', headers: [] as [string, string][], body: null };
  await rt.handle(mk(0), req, { log() {} });
  // Back to back, spare isolates never get made (they wait for a pause): the cost of a burst.
  const timed = async (from: number, pauseMs: number) => {
    const out: number[] = [];
    for (let i = from; i < from + 100; i++) {
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      const t = performance.now();
      await rt.handle(mk(i), req, { log() {} });
      out.push(performance.now() - t);
    }
    return out.sort((a, b) => a - b);
  };
  const times = await timed(1, 0);
  // With a pause before each, a spare isolate is ready: the cost of an occasional cold start.
  const paused = await timed(1000, 60);
  const bare: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    const iso = new ivm.Isolate({ memoryLimit: 128 });
    const ctx = await iso.createContext();
    await ctx.eval('1 + 1');
    bare.push(performance.now() - t);
    iso.dispose();
  }
  bare.sort((a, b) => a - b);
  say(
    `  cordon, back to back       p50 ${times[50]!.toFixed(1)} ms   p99 ${times[98]!.toFixed(1)} ms   (${(times[50]! / bare[50]!).toFixed(1)}x a bare isolate)`,
  );
  say(
    `  cordon, spare ready        p50 ${paused[50]!.toFixed(1)} ms   p99 ${paused[98]!.toFixed(1)} ms   (${(paused[50]! / bare[50]!).toFixed(1)}x a bare isolate)`,
  );
  say(`  bare isolated-vm isolate   p50 ${bare[50]!.toFixed(1)} ms   p99 ${bare[98]!.toFixed(1)} ms`);
  rt.dispose();
}

async function idleMemory(): Promise<void> {
  say('3. memory per idle isolate');
  const measure = (kind: string) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, ['--no-node-snapshot', '--expose-gc', join(ROOT, 'bench', 'idle-memory.ts'), kind], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`idle-memory ${kind} exited with ${code}`))));
    });
  const ours = await measure('cordon');
  const bare = await measure('bare');
  const mib = (b: number) => (b / 1024 / 1024).toFixed(2);
  say(`  cordon idle isolate   ${mib(ours)} MiB   ${Math.floor(1024 ** 3 / ours)} per GiB   (${(ours / bare).toFixed(1)}x a bare isolate)`);
  say(`  bare isolated-vm      ${mib(bare)} MiB   ${Math.floor(1024 ** 3 / bare)} per GiB`);
}

say(`Cordon benchmarks (${SECONDS} s load phases; BENCH_SECONDS to change)`);
await throughput();
await coldStart();
await idleMemory();
await workflowsBench();
await dynamicWorkersBench();
await workersRpcBench();
await clientBench();
await clusterBench();
await durableObjectsBench();
