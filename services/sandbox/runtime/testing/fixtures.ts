/** Shared by the runtime's tests: a worker bundle from inline source, a GET request, body text. */
import type { WorkerBundle, WorkerModule } from '../../../../schemas/worker.ts';
import type { WireRequest } from '../../../../schemas/http.ts';
import type { WorkerRuntime } from '../index.ts';
import assert from 'node:assert/strict';

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
    limits: { cpuMs: 300, wallMs: 15_000, memoryMb: 64, ...opts.limits },
    vars: opts.vars ?? {},
    bindings: opts.bindings ?? [],
    ...(opts.allowEval ? { allowEval: true } : {}),
  };
}

export const GET: WireRequest = { method: 'GET', url: 'http://example.test/path?q=1', headers: [['x-in', 'v']], body: null };
export const text = (b: Uint8Array | null) => new TextDecoder().decode(b ?? new Uint8Array());

/** `bundle`'s answer to `req` in `rt`, its body as text (streamed or whole), asserted to be a 200. */
export async function answer(rt: WorkerRuntime, bundle: WorkerBundle, req: WireRequest = GET): Promise<string> {
  const res = await rt.handle(bundle, req, { log: () => {} });
  const body = res.stream ? await new Response(res.stream).text() : text(res.body);
  assert.equal(res.status, 200, body);
  return body;
}

/** Unsigned LEB128, as the WebAssembly binary format writes numbers. */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const low = n % 128;
    n = (n - low) / 128;
    out.push(n > 0 ? low | 0x80 : low);
  } while (n > 0);
  return out;
}

/**
 * WebAssembly bytes for tests:
 * (module (memory (export "mem") initial maximum?) (func (export "grow") (param i32) (result i32)
 * local.get 0 memory.grow))
 */
export function memoryModule(initial: number, maximum?: number): Buffer {
  const limits = maximum === undefined ? [0x00, ...uleb(initial)] : [0x01, ...uleb(initial), ...uleb(maximum)];
  const memory = [0x01, ...limits];
  return Buffer.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...[0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f],
    ...[0x03, 0x02, 0x01, 0x00],
    ...[0x05, ...uleb(memory.length), ...memory],
    ...[0x07, 0x0e, 0x02, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x04, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x00],
    ...[0x0a, 0x08, 0x01, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b],
  ]);
}
