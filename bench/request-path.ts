/**
 * The request path through the whole mesh (ingress → sandbox → isolate and back) beside the same
 * worker on workerd, in one run: hello-world req/s and p99, 64 KiB request and response bodies, a
 * streamed 10 MiB response in MB/s, and the CPU each request costs every process (from
 * /proc/<pid>/stat over the load phase: robust to a loaded machine, where req/s is not). Each figure
 * is printed with its ratio to workerd and the target of issue 17; a bare node:http hello server is
 * measured beside them, the floor of ingress's own HTTP work.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { once } from 'node:events';
import autocannon from 'autocannon';
import { ROOT, sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../test/helpers/mesh.ts';
import { startWorkerd } from '../test/helpers/workerd.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);
/** Unmeasured load first, on every server alike: what is measured is the steady state, not JIT compilation and the heaps' first growth. */
const WARM_UP_SECONDS = Number(process.env.BENCH_WARM_UP_SECONDS || 5);
const say = (s: string) => process.stdout.write(s + '\n');
const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const BODY_64K = Buffer.alloc(64 * 1024, 0x62);
const STREAM_BYTES = 160 * 64 * 1024;
/** Streams in flight at once, and at most this many in one phase (the phase is bounded in time as well). */
const STREAMS_IN_FLIGHT = 4;
const MAX_STREAMS = 5000;

/** CPU seconds (user + system) a process, or one of its threads (`/proc/<pid>/task/<tid>`), has used so far. */
export function cpuSeconds(pid: number | string): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/**
 * A process's CPU seconds so far by kind of thread: its main thread (the event loop), V8's helper
 * threads (named V8Worker: mostly garbage collection), and the rest — in a sandbox, isolated-vm's
 * threads, where the isolates run (they inherit the main thread's name). A thread that ended meanwhile
 * is missed, so the kinds can sum to less than the process.
 */
export function threadSeconds(pid: number): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const kind = tid === String(pid) ? 'main' : name === 'V8Worker' ? 'V8 helpers' : 'other threads';
      kinds.set(kind, (kinds.get(kind) ?? 0) + cpuSeconds(`${pid}/task/${tid}`));
    } catch {
      // the thread ended as we read
    }
  }
  return kinds;
}

interface Phase {
  /** Requests (or streams) a second; MB/s for a stream. */
  rate: number;
  p99: number;
  requests: number;
  /** CPU µs per request by process. */
  cpu: Map<string, number>;
  /** CPU µs per request by process and kind of thread (threadSeconds). */
  threads: Map<string, Map<string, number>>;
  /** CPU µs per request of this process: the load generator, on the same cores as the servers. */
  client: number;
}

/** Runs `drive` and charges each process in `pids` the CPU it used meanwhile, per request driven. */
async function measured(pids: Map<string, number>, drive: () => Promise<{ rate: number; p99: number; requests: number }>): Promise<Phase> {
  const before = new Map([...pids].map(([name, pid]) => [name, cpuSeconds(pid)]));
  const threadsBefore = new Map([...pids].map(([name, pid]) => [name, threadSeconds(pid)]));
  const clientBefore = process.cpuUsage();
  const r = await drive();
  const clientUsed = process.cpuUsage(clientBefore);
  const per = (seconds: number) => (seconds * 1e6) / Math.max(1, r.requests);
  const cpu = new Map([...pids].map(([name, pid]) => [name, per(cpuSeconds(pid) - before.get(name)!)]));
  const threads = new Map(
    [...pids].map(([name, pid]) => {
      const was = threadsBefore.get(name)!;
      return [name, new Map([...threadSeconds(pid)].map(([kind, s]) => [kind, per(s - (was.get(kind) ?? 0))]))];
    }),
  );
  return { ...r, cpu, threads, client: per((clientUsed.user + clientUsed.system) / 1e6) };
}

function cannon(url: string, body?: Buffer, seconds = SECONDS) {
  return async () => {
    const r = await autocannon({ url, connections: 32, duration: seconds, pipelining: 1, ...(body ? { method: 'POST' as const, body } : {}) });
    if (r.non2xx || r.errors) throw new Error(`${url}: ${r.non2xx} non-2xx answers, ${r.errors} errors`);
    return { rate: r.requests.average, p99: r.latency.p99, requests: r.requests.total };
  };
}

/** STREAMS_IN_FLIGHT clients each reading whole streamed responses, one after the other, for `seconds`. */
function streams(url: string, seconds = SECONDS) {
  return async () => {
    const until = performance.now() + seconds * 1000;
    let done = 0;
    let bytes = 0;
    const one = () =>
      new Promise<void>((resolve, reject) => {
        httpRequest(url, (res) => {
          res.on('data', (d: Buffer) => (bytes += d.length));
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${url}: ${res.statusCode}`))));
          res.on('error', reject);
        })
          .on('error', reject)
          .end();
      });
    const started = performance.now();
    await Promise.all(
      Array.from({ length: STREAMS_IN_FLIGHT }, async () => {
        while (performance.now() < until && done < MAX_STREAMS) {
          await one();
          done++;
        }
      }),
    );
    if (bytes !== done * STREAM_BYTES) throw new Error(`${url}: ${bytes} bytes for ${done} streams of ${STREAM_BYTES}`);
    return { rate: bytes / 1e6 / ((performance.now() - started) / 1000), p99: 0, requests: done };
  };
}

const us = (n: number) => `${n.toFixed(0)} µs`;
const total = (p: Phase) => [...p.cpu.values()].reduce((a, b) => a + b, 0);

function cpuRow(label: string, peer: Phase, ours: Phase): void {
  const parts = [...ours.cpu].map(([name, v]) => `${name} ${us(v)}`).join(', ');
  say(`    CPU per ${label}: workerd ${us(total(peer))}; cordon ${us(total(ours))} (${parts}): ${(total(ours) / total(peer)).toFixed(2)}x (target ≤ 2x)`);
  // Where it goes inside the two processes on the path: the event loop, V8's helpers (garbage
  // collection, mostly of bodies' buffers), and in the sandbox isolated-vm's isolate threads.
  for (const name of ['ingress', 'sandbox']) {
    const shown = [...(ours.threads.get(name) ?? [])].filter(([, v]) => v >= 1);
    const label = (kind: string) => (name === 'sandbox' && kind === 'other threads' ? 'isolates' : kind);
    if (shown.length) say(`      ${name} by thread: ${shown.map(([kind, v]) => `${label(kind)} ${us(v)}`).join(', ')}`);
  }
  // The load generator runs on the same cores: once they are all busy, a server's rate is bounded by the
  // CPU a request costs the servers and the client together, so this is the most the req/s ratio can be.
  const peerAll = total(peer) + peer.client;
  const ourAll = total(ours) + ours.client;
  say(
    `      with the load generator's own (${us(peer.client)} and ${us(ours.client)} per ${label}, same cores): workerd ${us(peerAll)}, ` +
      `cordon ${us(ourAll)}; cores all busy, the rate's ratio is at most ${(peerAll / ourAll).toFixed(2)}x`,
  );
}

/** A bare node:http hello server in a process of its own (bench/node-http-hello.ts), and its port. */
async function startNodeHttp(): Promise<{ process: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(ROOT, 'bench/node-http-hello.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { process: child, port: Number(line.toString().trim()) };
}

/** The mesh's processes by role, the sandbox by its Node process (inside bubblewrap when confined). */
export function meshPids(mesh: TestMesh): Map<string, number> {
  const all = mesh.servicePids();
  const pids = new Map<string, number>();
  for (const role of ['ingress', 'supervisor', 'egress']) if (all.has(role)) pids.set(role, all.get(role)!);
  const sandbox = sandboxNodes(mesh).get('standard');
  if (sandbox) pids.set('sandbox', sandbox);
  return pids;
}

export async function requestPathBench(): Promise<void> {
  say('1. the request path: hello, 64 KiB bodies, a streamed 10 MiB body, CPU per request (vs workerd)');
  const workerd = await startWorkerd({
    files: { 'worker.js': readFileSync(join(ROOT, 'bench/request-path-worker.js')) },
    config: (ports) => `const config :Workerd.Config = (
  services = [ (name = "main", worker = .perf) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ],
);
const perf :Workerd.Worker = ( modules = [ (name = "worker.js", esModule = embed "worker.js") ], compatibilityDate = "2026-07-01" );`,
  });
  const wport = workerd.ports[0];
  const bare = await startNodeHttp();
  const mesh = await startTestMesh().catch((e) => {
    bare.process.kill();
    workerd.stop();
    throw e;
  });
  try {
    const deployed = await mesh.cli(['deploy', 'bench/request-path-worker.js', '--name', 'perf', '--route', '*/perf/*']);
    if (deployed.code !== 0) throw new Error(deployed.stderr);
    const peerUrl = `http://127.0.0.1:${wport}/perf`;
    const ourUrl = `${mesh.httpUrl}/perf`;
    await waitFor('the worker on the mesh', async () => (await fetch(`${ourUrl}/hello`)).status === 200 || undefined);
    await waitFor('workerd', async () => (await fetch(`${peerUrl}/hello`)).status === 200 || undefined);
    const peerPids = new Map([['workerd', workerd.process.pid!]]);
    const ourPids = meshPids(mesh);
    const both = async (label: string, drive: (base: string, seconds?: number) => () => Promise<{ rate: number; p99: number; requests: number }>) => {
      say(`  ${label}: ${WARM_UP_SECONDS} + ${SECONDS} s on workerd, then on the mesh …`);
      await drive(peerUrl, WARM_UP_SECONDS)();
      const peer = await measured(peerPids, drive(peerUrl));
      await drive(ourUrl, WARM_UP_SECONDS)();
      return [peer, await measured(ourPids, drive(ourUrl))] as const;
    };

    const [peer, ours] = await both('hello', (base, seconds) => cannon(`${base}/hello`, undefined, seconds));
    // The floor of ingress's own HTTP work: node:http alone, answering hello from its handler.
    await cannon(`http://127.0.0.1:${bare.port}/hello`, undefined, WARM_UP_SECONDS)();
    const floor = await measured(new Map([['node:http', bare.process.pid!]]), cannon(`http://127.0.0.1:${bare.port}/hello`));
    say(
      `  hello         workerd ${peer.rate.toFixed(0).padStart(7)} req/s p99 ${peer.p99} ms   cordon ${ours.rate.toFixed(0).padStart(7)} req/s p99 ${ours.p99} ms   ` +
        `${(ours.rate / peer.rate).toFixed(2)}x (target ≥ 1.0x), p99 ${(ours.p99 / Math.max(1, peer.p99)).toFixed(1)}x (target ≤ 2x)`,
    );
    cpuRow('request', peer, ours);
    say(
      `  node:http alone (ingress's floor) ${floor.rate.toFixed(0).padStart(7)} req/s p99 ${floor.p99} ms, CPU ${us(total(floor))} per request ` +
        `(ingress ${us(ours.cpu.get('ingress') ?? 0)}: ${((ours.cpu.get('ingress') ?? 0) / Math.max(1, total(floor))).toFixed(1)}x)`,
    );
    const [peerBody, ourBody] = await both('64 KiB request and response bodies', (base, seconds) => cannon(`${base}/echo`, BODY_64K, seconds));
    say(
      `  64 KiB bodies workerd ${peerBody.rate.toFixed(0).padStart(7)} req/s p99 ${peerBody.p99} ms   cordon ${ourBody.rate.toFixed(0).padStart(7)} req/s p99 ${ourBody.p99} ms   ` +
        `${(ourBody.rate / peerBody.rate).toFixed(2)}x (target ≥ 1.0x)`,
    );
    cpuRow('request', peerBody, ourBody);
    const [peerStream, ourStream] = await both('a streamed 10 MiB response', (base, seconds) => streams(`${base}/stream`, seconds));
    say(
      `  10 MiB stream workerd ${peerStream.rate.toFixed(0).padStart(7)} MB/s             cordon ${ourStream.rate.toFixed(0).padStart(7)} MB/s             ` +
        `${(ourStream.rate / peerStream.rate).toFixed(2)}x (target ≥ 0.8x)`,
    );
    cpuRow('stream', peerStream, ourStream);
  } finally {
    bare.process.kill();
    workerd.stop();
    await mesh.stop();
  }
}
