/**
 * `npm run bench`: Cordon against its peers, measured in one run on this machine, printed as ratios.
 *   1. the request path through the whole mesh vs workerd: hello, 64 KiB bodies, a streamed 10 MiB
 *      body, CPU per request per process (bench/request-path.ts); and our runtime alone;
 *   2. cold start: code already fetched → first response, per new worker (our runtime), back to
 *      back and with a pause before each (a spare isolate ready);
 *   3. memory per idle isolate: ours (full Workers API) vs a bare isolated-vm isolate, and the start-up
 *      snapshot's share;
 *   4. workflows: 3-step instances/s on Cordon vs miniflare vs the SQLite floor; sleeping instances' memory;
 *   5. Dynamic Workers: new Workers a second, sustained, and their time to first response, vs workerd;
 *   6. Workers RPC calls/s between two workers vs fetch between them vs two workerd workers (bench/workers-rpc.ts);
 *   7. a 3-step workflow driven by cordon/client over WebSocket vs the admin HTTP API (bench/client.ts);
 *   8. the cluster: hello over NATS vs Unix sockets, and with 2 sandbox processes of the cordon vs 1;
 *   9. the Hono and itty-router README apps through the mesh vs workerd, and our runtime alone (bench/frameworks.ts);
 *  10. Durable Objects: RPC round trips/s on one object and over 1,000 vs workerd with local-disk
 *      storage, idle objects per GiB, the time to wake an evicted object (bench/durable-objects.ts);
 *  11. many workers: 50,000 deployed, 5,000 warm and served round-robin (bench/many-workers.ts);
 *  12. bytes across the isolate boundary: CPU per MiB of a KV value put and read back (bench/isolate-bytes.ts);
 *  13. object WebSockets alone: messages/s one object sends to one client, on a mesh of its own (the
 *      send path's before/after; section 10 has it beside workerd).
 * In-process sections run with the sandbox's V8 flags (SERVICE_V8_FLAGS, passed by package.json's bench
 * script), as its isolates do.
 * Never part of `npm test`: numbers, not assertions. `npm run bench -- <section>…` runs only the sections
 * named (request-path, cold-start, idle-memory, workflows, dynamic-workers, workers-rpc, client, cluster,
 * frameworks, durable-objects, many-workers, isolate-bytes, object-websockets).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';
import ivm from 'isolated-vm';
import { ROOT } from '../test/helpers/mesh.ts';
import { SERVICE_V8_FLAGS } from '../cli/service-process.ts';
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';
import { bootstrap } from '../services/sandbox/runtime/bootstrap-bundle.ts';
import { workflowsBench } from './workflows.ts';
import { runtimeAlone } from './runtime-alone.ts';
import { dynamicWorkersBench } from './dynamic-workers.ts';
import { workersRpcBench } from './workers-rpc.ts';
import { clientBench } from './client.ts';
import { clusterBench } from './cluster.ts';
import { frameworksBench } from './frameworks.ts';
import { requestPathBench } from './request-path.ts';
import { durableObjectsBench, objectWebSocketSends } from './durable-objects.ts';
import { manyWorkersBench } from './many-workers.ts';
import { isolateBytesBench } from './isolate-bytes.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
const say = (s: string) => process.stdout.write(s + '\n');

async function runtimeAloneRow(): Promise<void> {
  const bundle = await build({ entryPoints: [join(ROOT, 'examples/hello/index.ts')], bundle: true, format: 'esm', write: false, platform: 'neutral' });
  say(`  cordon runtime alone: ${SECONDS} s in-process …`);
  const alone = await runtimeAlone('hello', bundle.outputFiles[0]!.text, '/hello');
  say(`  ${'cordon runtime alone'.padEnd(22)} ${alone.toFixed(0).padStart(8)} req/s   (hello through the isolates without HTTP or RPC, in-process)`);
}

async function coldStart(): Promise<void> {
  say('2. cold start: code in hand → first response');
  const rt = new WorkerRuntime({ maxIsolates: 1000 });
  // A hello-world, or (`url`) a worker that takes its request's URL apart, as most do.
  const mk = (i: number, url = false) => ({
    workerId: `bench/w${i}`,
    version: 'a'.repeat(64),
    mainModule: 'w.js',
    modules: [
      {
        name: 'w.js',
        type: 'esm' as const,
        content: url
          ? `export default { fetch(req) { const u = new URL(req.url); return new Response(u.pathname + u.searchParams.get('i') + ' ${i}') } }`
          : `export default { fetch() { return new Response('hi ${i}') } }`,
      },
    ],
    limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
    vars: {},
    bindings: [],
  });
  const req = { method: 'GET', url: 'http://bench/a?i=1', headers: [] as [string, string][], body: null };
  await rt.handle(mk(0), req, { log() {} });
  // Back to back, spare isolates never get made (they wait for a pause): the cost of a burst.
  const timed = async (from: number, pauseMs: number, url = false) => {
    const out: number[] = [];
    for (let i = from; i < from + 100; i++) {
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
      const t = performance.now();
      await rt.handle(mk(i, url), req, { log() {} });
      out.push(performance.now() - t);
    }
    return out.sort((a, b) => a - b);
  };
  // The main thread's CPU per cold start (the isolate is made on isolated-vm's pool where it has Isolate.createAsync).
  const mainBefore = process.threadCpuUsage();
  const times = await timed(1, 0);
  const main = process.threadCpuUsage(mainBefore);
  // With a pause before each, a spare isolate is ready: the cost of an occasional cold start.
  const paused = await timed(1000, 60);
  const pausedUrl = await timed(2000, 60, true);
  // Beside each bare isolate, the start-up snapshot's share of a cold start (in the same moment of a
  // loaded machine): the isolate, deserialised on this thread with isolated-vm's own default context,
  // and the context the worker runs in, each deserialising the libraries.
  const { snapshot } = await bootstrap();
  const bare: number[] = [];
  const fromSnapshot: number[] = [];
  const snapshotContext: number[] = [];
  for (let i = 0; i < 100; i++) {
    let t = performance.now();
    const iso = new ivm.Isolate({ memoryLimit: 128 });
    const ctx = await iso.createContext();
    await ctx.eval('1 + 1');
    bare.push(performance.now() - t);
    iso.dispose();
    t = performance.now();
    const snap = new ivm.Isolate({ memoryLimit: 128, snapshot });
    fromSnapshot.push(performance.now() - t);
    t = performance.now();
    await snap.createContext();
    snapshotContext.push(performance.now() - t);
    snap.dispose();
  }
  for (const a of [bare, fromSnapshot, snapshotContext]) a.sort((x, y) => x - y);
  say(
    `  cordon, back to back       p50 ${times[50]!.toFixed(1)} ms   p99 ${times[98]!.toFixed(1)} ms   (${(times[50]! / bare[50]!).toFixed(1)}x a bare isolate)   main thread ${((main.user + main.system) / 1000 / times.length).toFixed(2)} ms each (isolates made ${ivm.Isolate.createAsync ? 'off it' : 'on it'})`,
  );
  say(
    `  cordon, spare ready        p50 ${paused[50]!.toFixed(1)} ms   p99 ${paused[98]!.toFixed(1)} ms   (${(paused[50]! / bare[50]!).toFixed(1)}x a bare isolate)`,
  );
  say(`    a worker parsing its URL  p50 ${pausedUrl[50]!.toFixed(1)} ms   p99 ${pausedUrl[98]!.toFixed(1)} ms   (a spare with the url unit loaded)`);
  say(`  bare isolated-vm isolate   p50 ${bare[50]!.toFixed(1)} ms   p99 ${bare[98]!.toFixed(1)} ms`);
  say(
    `  of which the snapshot:     isolate p50 ${fromSnapshot[50]!.toFixed(1)} ms (main thread)   its context p50 ${snapshotContext[50]!.toFixed(1)} ms   (the rest: bootstrap init, the worker's modules, the request)`,
  );
  rt.dispose();
}

async function idleMemory(): Promise<void> {
  say('3. memory per idle isolate');
  // With the sandbox's V8 flags: they apply to every isolate in its process.
  const measure = (kind: string) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, ['--no-node-snapshot', '--expose-gc', ...SERVICE_V8_FLAGS, join(ROOT, 'bench', 'idle-memory.ts'), kind], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(Number(out)) : reject(new Error(`idle-memory ${kind} exited with ${code}`))));
    });
  const ours = await measure('cordon');
  const url = await measure('url');
  const dormant = await measure('dormant');
  const served = await measure('served');
  const snapshot = await measure('snapshot');
  const bare = await measure('bare');
  const mib = (b: number) => (b / 1024 / 1024).toFixed(2);
  say(
    `  cordon idle isolate   ${mib(ours)} MiB   ${Math.floor(1024 ** 3 / ours)} per GiB (target ≥ 1,000; floor ≥ 675, workerd's)   (${(ours / bare).toFixed(1)}x a bare isolate; idle 10 s: its garbage given back)`,
  );
  say(
    `  a worker parsing URLs ${mib(url)} MiB   ${Math.floor(1024 ** 3 / url)} per GiB   (idle 10 s; the URL classes loaded: a lazy unit the others leave out)`,
  );
  say(
    `  idle 60 s             ${mib(dormant)} MiB   ${Math.floor(1024 ** 3 / dormant)} per GiB   (its code dropped too: its next request compiles what it runs again)`,
  );
  say(`  just after a request  ${mib(served)} MiB   ${Math.floor(1024 ** 3 / served)} per GiB`);
  say(`  snapshot + a context  ${mib(snapshot)} MiB   (no bootstrap run, no worker: the start-up snapshot's share)`);
  say(`  bare isolated-vm      ${mib(bare)} MiB   ${Math.floor(1024 ** 3 / bare)} per GiB`);
}

const sections: [string, () => Promise<void>][] = [
  ['request-path', async () => (await requestPathBench(), await runtimeAloneRow())],
  ['cold-start', coldStart],
  ['idle-memory', idleMemory],
  ['workflows', workflowsBench],
  ['dynamic-workers', dynamicWorkersBench],
  ['workers-rpc', workersRpcBench],
  ['client', clientBench],
  ['cluster', clusterBench],
  ['frameworks', frameworksBench],
  ['durable-objects', durableObjectsBench],
  ['many-workers', manyWorkersBench],
  ['isolate-bytes', isolateBytesBench],
  ['object-websockets', objectWebSocketSends],
];
const chosen = process.argv.slice(2);
const unknown = chosen.filter((name) => !sections.some(([n]) => n === name));
if (unknown.length) throw new Error(`no bench section ${unknown.join(', ')}; the sections: ${sections.map(([n]) => n).join(', ')}`);
say(`Cordon benchmarks (${SECONDS} s load phases; BENCH_SECONDS to change)`);
for (const [name, run] of sections) if (!chosen.length || chosen.includes(name)) await run();
