/**
 * Turning a worker's modules (esm, text, json, data) and the `cloudflare:*` built-ins into
 * isolated-vm modules, linked by name. Specifiers resolve relative to the importing module, as in
 * workerd; nothing resolves outside the bundle.
 */
import type ivm from 'isolated-vm';
import type { WorkerModule } from '../../../schemas/worker.ts';

const BUILTINS: Record<string, string> = {
  'cloudflare:workers': `
    class Base { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
    export class WorkerEntrypoint extends Base {}
    export class DurableObject extends Base {}
    export class WorkflowEntrypoint extends Base {}
    export class RpcTarget {}
    export const env = {};`,
  'cloudflare:workflows': `
    export class NonRetryableError extends Error {
      constructor(message, name = 'NonRetryableError') { super(message); this.name = name; }
    }`,
};

export class ModuleError extends Error {}

function resolveName(specifier: string, referrer: string): string {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return specifier.replace(/^\//, '');
  const parts = referrer.split('/').slice(0, -1);
  for (const seg of specifier.split('/')) {
    if (seg === '.' || seg === '') continue;
    if (seg === '..') {
      if (parts.length === 0) throw new ModuleError(`import ${specifier} from ${referrer} leaves the bundle`);
      parts.pop();
    } else parts.push(seg);
  }
  return parts.join('/');
}

function sourceOf(m: WorkerModule): string {
  switch (m.type) {
    case 'esm':
      return m.content;
    case 'text':
      return `export default ${JSON.stringify(m.content)};`;
    case 'json':
      JSON.parse(m.content); // refuse bad JSON at load, with a clear error
      return `export default JSON.parse(${JSON.stringify(m.content)});`;
    case 'data':
      return `const s = atob(${JSON.stringify(m.content)}); const b = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i); export default b.buffer;`;
    case 'wasm':
      throw new ModuleError(`module ${m.name}: WebAssembly modules are not supported yet`);
  }
}

/** Compile and link every module reachable from `mainModule`; returns the entry module that hands its default export to the bootstrap. */
export async function linkWorker(isolate: ivm.Isolate, context: ivm.Context, mainModule: string, modules: WorkerModule[]): Promise<ivm.Module> {
  const byName = new Map(modules.map((m) => [m.name, m]));
  if (!byName.has(mainModule)) throw new ModuleError(`main module ${mainModule} is not in the bundle`);
  const compiled = new Map<string, ivm.Module>();
  const names = new WeakMap<ivm.Module, string>();
  const compile = async (name: string, source: string) => {
    let m = compiled.get(name);
    if (!m) {
      try {
        m = await isolate.compileModule(source, { filename: `worker:///${name}` });
      } catch (e) {
        throw new ModuleError(`module ${name}: ${(e as Error).message}`);
      }
      compiled.set(name, m);
      names.set(m, name);
    }
    return m;
  };
  const resolve = async (specifier: string, referrer: ivm.Module): Promise<ivm.Module> => {
    if (BUILTINS[specifier]) return compile(specifier, BUILTINS[specifier]);
    const from = names.get(referrer) ?? '';
    const name = resolveName(specifier, from);
    const m = byName.get(name);
    if (!m) throw new ModuleError(`cannot resolve import ${JSON.stringify(specifier)} from ${from || 'the entry'}: no module ${name} in the bundle`);
    return compile(name, sourceOf(m));
  };
  const entry = await isolate.compileModule(`import worker from ${JSON.stringify('./' + mainModule)}; __cordonSetHandler(worker);`, { filename: 'worker:///cordon-entry' });
  names.set(entry, '');
  await entry.instantiate(context, resolve);
  return entry;
}
