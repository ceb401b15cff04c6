/** Shared by the runtime's tests: a worker bundle from inline source, a GET request, body text. */
import type { WorkerBundle, WorkerModule } from '../../../../schemas/worker.ts';
import type { WireRequest } from '../../../../schemas/http.ts';

let n = 0;

export interface WorkerOptions {
  modules?: WorkerModule[];
  limits?: Partial<WorkerBundle['limits']>;
  vars?: Record<string, string>;
  allowEval?: boolean;
  bindings?: WorkerBundle['bindings'];
}

/** A fresh worker (its own id, so its own isolate) whose main module is `main`. */
export function worker(main: string, opts: WorkerOptions = {}): WorkerBundle {
  return {
    workerId: `t/w${++n}`,
    version: 'a'.repeat(64),
    mainModule: 'worker.js',
    modules: [{ name: 'worker.js', type: 'esm', content: main }, ...(opts.modules ?? [])],
    limits: { cpuMs: 300, wallMs: 3000, memoryMb: 64, ...opts.limits },
    vars: opts.vars ?? {},
    bindings: opts.bindings ?? [],
    ...(opts.allowEval ? { allowEval: true } : {}),
  };
}

export const GET: WireRequest = { method: 'GET', url: 'http://example.test/path?q=1', headers: [['x-in', 'v']], body: null };
export const text = (b: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());
