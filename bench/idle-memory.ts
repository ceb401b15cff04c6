/**
 * One measurement of memory per idle isolate, in a process of its own (`node bench/idle-memory.ts
 * <cordon|bare>`): measured side by side in one process, the second kind reuses pages the first
 * freed and looks smaller than it is. Prints bytes per isolate.
 */
import ivm from 'isolated-vm';
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';

const N = 300;
const kind = process.argv[2];
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const keep: ivm.Isolate[] = [];
const rt = new WorkerRuntime({ maxIsolates: N + 10, spares: 0 });
gc();
const before = process.memoryUsage().rss;
for (let i = 0; i < N; i++) {
  if (kind === 'bare') {
    const iso = new ivm.Isolate({ memoryLimit: 128 });
    await (await iso.createContext()).eval('1');
    keep.push(iso);
  } else {
    await rt.handle(
      {
        workerId: `idle/w${i}`,
        version: 'b'.repeat(64),
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: `export default { fetch() { return new Response('x') } }` }],
        limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
        vars: {},
        bindings: [],
      },
      { method: 'GET', url: 'http://bench/', headers: [], body: null },
      { log() {} },
    );
  }
}
gc();
await new Promise((r) => setTimeout(r, 200));
gc();
process.stdout.write(String((process.memoryUsage().rss - before) / N));
process.exit(0);
