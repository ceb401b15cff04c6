/**
 * One measurement of memory per idle isolate, in a process of its own (`node bench/idle-memory.ts
 * <cordon|url|dormant|served|snapshot|bare>`): measured side by side in one process, the second kind reuses pages the
 * first freed and looks smaller than it is. Prints bytes per isolate. `cordon` is a hello-world isolate
 * that has served a request and sat idle long enough for the runtime to give back its garbage's memory
 * (WorkerRuntime.compactIdle); `url` the same for a worker that parses its request's URL (and so loads the
 * URL classes, a lazy unit); `dormant` the same idle long enough to drop its code too (dropCodeIdleMs);
 * `served` the same just after its request. `snapshot` is an isolate made
 * from the start-up snapshot with one context and no bootstrap run: what the snapshot costs, apart from
 * the init half and the worker.
 */
import ivm from 'isolated-vm';
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';
import { bootstrap } from '../services/sandbox/runtime/bootstrap-bundle.ts';

const N = 300;
const kind = process.argv[2];
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const keep: ivm.Isolate[] = [];
// `served`: never compacted while it is measured (the sweep would start on isolates made first).
const rt = new WorkerRuntime({
  maxIsolates: N + 10,
  spares: 0,
  compactIdleMs: kind === 'served' ? 3_600_000 : 0,
  dropCodeIdleMs: kind === 'dormant' ? 0 : 3_600_000,
});
const URL_WORKER = `export default { fetch(req) { const u = new URL(req.url); return new Response(u.pathname + u.searchParams.get('q')) } }`;
const { snapshot } = await bootstrap();
gc();
const before = process.memoryUsage().rss;
for (let i = 0; i < N; i++) {
  if (kind === 'bare' || kind === 'snapshot') {
    const iso = new ivm.Isolate({ memoryLimit: 128, ...(kind === 'snapshot' ? { snapshot } : {}) });
    await (await iso.createContext()).eval('1');
    keep.push(iso);
  } else {
    await rt.handle(
      {
        workerId: `idle/w${i}`,
        version: 'b'.repeat(64),
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: kind === 'url' ? URL_WORKER : `export default { fetch() { return new Response('x') } }` }],
        limits: { cpuMs: 1000, wallMs: 5000, memoryMb: 128 },
        vars: {},
        bindings: [],
      },
      { method: 'GET', url: 'http://bench/', headers: [], body: null },
      { log() {} },
    );
  }
}
if (kind === 'cordon' || kind === 'url' || kind === 'dormant') await rt.compactIdle(N);
gc();
await new Promise((r) => setTimeout(r, 200));
gc();
process.stdout.write(String((process.memoryUsage().rss - before) / N));
process.exit(0);
