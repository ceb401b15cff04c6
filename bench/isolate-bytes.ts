/**
 * Bytes across the host↔isolate boundary: a worker puts a 4 MiB KV value and reads it back, in-process
 * against a capability host that keeps values in a Map (no supervisor, no SQLite). CPU per MiB moved,
 * split into the host's main thread and the rest of the process (the isolate's threads); a request
 * moving no bytes is the baseline taken off.
 */
import { WorkerRuntime, type CapabilityHost } from '../services/sandbox/runtime/index.ts';

const MiB = 1024 * 1024;
const ROUNDS = Number(process.env.BENCH_BYTES_ROUNDS || 40);

const code = `export default { async fetch(req, env) {
  const mib = Number(new URL(req.url).searchParams.get('mib'));
  if (!mib) return new Response('0');
  await env.KV.put('k', new Uint8Array(mib * ${MiB}).fill(7));
  const back = await env.KV.get('k', 'arrayBuffer');
  return new Response(String(back.byteLength));
} }`;

/** A KV namespace's capability as the supervisor answers it, for values of one part. */
function kvHost(): CapabilityHost {
  const values = new Map<string, Uint8Array>();
  return {
    async call(_handle, method, args) {
      if (method === 'put') return void values.set(String(args[0]), args[1] as Uint8Array);
      if (method === 'get') return (args[0] as string[]).map((k) => [values.get(k) ?? null, null, null]);
      throw new Error(`no method ${method} in this bench`);
    },
  };
}

export async function isolateBytes(): Promise<{ hostUsPerMiB: number; isolateUsPerMiB: number }> {
  const rt = new WorkerRuntime({ maxIsolates: 2 });
  const bundle = {
    workerId: 'bench/bytes',
    version: 'd'.repeat(64),
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm' as const, content: code }],
    limits: { cpuMs: 5000, wallMs: 30_000, memoryMb: 256 },
    vars: {},
    bindings: [{ type: 'kv' as const, name: 'KV', resource: 'bench' }],
  };
  const capabilities = kvHost();
  const run = (mib: number) => rt.handle(bundle, { method: 'GET', url: `http://bench/?mib=${mib}`, headers: [], body: null }, { log() {}, capabilities });
  const measure = async (mib: number) => {
    await run(mib);
    const total = process.cpuUsage();
    const main = process.threadCpuUsage();
    for (let i = 0; i < ROUNDS; i++) await run(mib);
    const t = process.cpuUsage(total);
    const m = process.threadCpuUsage(main);
    return { main: m.user + m.system, rest: t.user + t.system - (m.user + m.system) };
  };
  try {
    const base = await measure(0);
    const moved = await measure(4);
    // Each round moves 4 MiB in (put) and 4 MiB out (get).
    const per = (us: number) => us / (ROUNDS * 8);
    return { hostUsPerMiB: per(moved.main - base.main), isolateUsPerMiB: per(moved.rest - base.rest) };
  } finally {
    rt.dispose();
  }
}

export async function isolateBytesBench(): Promise<void> {
  const say = (s: string) => process.stdout.write(s + '\n');
  say('12. bytes across the isolate boundary: a 4 MiB KV value put and read back, in-process');
  const r = await isolateBytes();
  say(`  isolate threads   ${(r.isolateUsPerMiB / 1000).toFixed(2)} ms CPU per MiB`);
  say(`  host main thread  ${(r.hostUsPerMiB / 1000).toFixed(2)} ms CPU per MiB`);
}
