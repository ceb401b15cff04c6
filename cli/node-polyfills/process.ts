/**
 * `node:process` for the isolate: unenv's process object, with `env` the worker's vars (as Workers
 * populates it from its compatibility date 2025-04-01: strings as they are, JSON values as JSON text;
 * bindings are not vars) or empty — never anything of the host.
 */
import { env as workerEnv } from 'cloudflare:workers';
import { Process } from 'unenv/node/internal/process/process';
import { hrtime } from 'unenv/node/internal/process/hrtime';
import { nextTick } from 'unenv/node/internal/process/nexttick';

declare const __CORDON_POPULATE_PROCESS_ENV__: boolean;

const env: Record<string, string> = {};
/** A var (JSON data); a binding is an object with methods or a stub (a function), never walked. */
function isData(v: unknown): boolean {
  if (typeof v === 'function') return false;
  if (typeof v !== 'object' || v === null) return true;
  if (!Array.isArray(v) && Object.getPrototypeOf(v) !== Object.prototype) return false;
  return Object.values(v).every(isData);
}
if (__CORDON_POPULATE_PROCESS_ENV__) {
  for (const [k, v] of Object.entries(workerEnv)) if (isData(v)) env[k] = typeof v === 'string' ? v : JSON.stringify(v);
}

const process = new Process({ env, hrtime, nextTick });
export default process;
export const { argv, arch, cwd, emitWarning, exit, features, hrtime: processHrtime, nextTick: processNextTick, platform, release, version, versions } = process;
export { env, hrtime, nextTick };
