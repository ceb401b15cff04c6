/**
 * A worker straight through the sandbox's runtime, in-process, 32 requests in flight for BENCH_SECONDS:
 * what the isolates cost before any mesh hop (the rest of a mesh figure is HTTP and RPC).
 */
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';

const SECONDS = Number(process.env.BENCH_SECONDS || 8);

export async function runtimeAlone(name: string, code: string, path: string): Promise<number> {
  const rt = new WorkerRuntime({ maxIsolates: 10 });
  const bundle = {
    workerId: `bench/${name}`,
    version: 'c'.repeat(64),
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm' as const, content: code }],
    limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
    vars: {},
    bindings: [],
  };
  const req = { method: 'GET', url: `http://127.0.0.1${path}`, headers: [['host', '127.0.0.1']] as [string, string][], body: null };
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
