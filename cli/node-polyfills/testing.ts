/**
 * For the polyfills' tests: a worker's source bundled as `cordon deploy` bundles a nodejs_compat worker,
 * then one GET of it through a real runtime (an isolate, no mesh). One runtime per test file.
 */
import { after } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorker } from '../bundle.ts';
import { WorkerRuntime } from '../../services/sandbox/runtime/index.ts';
import { GET, text } from '../../services/sandbox/runtime/testing/fixtures.ts';

// Made after the first bundle: a first esbuild build started once a runtime exists in this process never
// settled (seen in crypto.test.ts; the cause was not pinned down), and esbuild keeps its service process afterwards.
let rt: WorkerRuntime | undefined;
after(() => rt?.dispose());
let n = 0;

/** The worker's answer to one GET: its status and its body as text. */
export async function runCompatWorker(
  source: string,
  limits: { cpuMs?: number; wallMs?: number; memoryMb?: number } = {},
  compatibilityDate = '2025-06-01',
  compatibilityFlags = ['nodejs_compat'],
  /** Files beside the worker (modules it imports), by name. */
  files: Record<string, string | Uint8Array> = {},
): Promise<{ status: number; body: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-polyfill-'));
  writeFileSync(join(dir, 'w.js'), source);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  const b = await bundleWorker(join(dir, 'w.js'), { compatibilityDate, compatibilityFlags });
  rt ??= new WorkerRuntime();
  const res = await rt.handle(
    {
      workerId: `t/polyfill${++n}`,
      version: 'a'.repeat(64),
      mainModule: b.mainModule,
      modules: b.modules,
      limits: { cpuMs: 5000, wallMs: 30_000, memoryMb: 128, ...limits },
      vars: {},
      bindings: [],
    },
    GET,
    { log: () => {} },
  );
  return { status: res.status, body: text(res.body) };
}
