/**
 * Turning a worker's modules (esm, text, json, data, wasm) and the `cloudflare:*` built-ins into
 * isolated-vm modules, linked by name. Specifiers resolve relative to the importing module, as in
 * workerd; nothing resolves outside the bundle. `import()` (rewritten at deploy, see DYNAMIC_IMPORT)
 * loads a module the same way, later: the same instance a static import of it gets.
 */
import ivm from 'isolated-vm';
import { CordonError } from '../../../lib/errors.ts';
import { sanitized } from './errors.ts';
import { DYNAMIC_IMPORT, type WorkerModule } from '../../../schemas/worker.ts';
import { BUILTINS_GLOBAL, SHIPPED_GLOBAL } from './abi.ts';

const BUILTINS: Record<string, string> = {
  // RpcTarget is the isolate's capnweb class (bootstrap/workers-rpc.ts): what extends it is served by reference over Workers RPC.
  'cloudflare:workers': `
    export const RpcTarget = globalThis.${BUILTINS_GLOBAL}.RpcTarget;
    class Base extends RpcTarget { constructor(ctx, env) { super(); this.ctx = ctx; this.env = env; } }
    export class WorkerEntrypoint extends Base {}
    export class DurableObject extends Base {}
    export class WorkflowEntrypoint extends Base {}
    export const env = globalThis.${BUILTINS_GLOBAL}.env();`,
  // The runtime's own AsyncLocalStorage (bootstrap/async-context.ts): the context follows the worker's continuations.
  'node:async_hooks': `
    const m = globalThis.${BUILTINS_GLOBAL}.asyncHooks;
    export const AsyncLocalStorage = m.AsyncLocalStorage;
    export const AsyncResource = m.AsyncResource;
    export default m;`,
  // TCP and TLS through egress (bootstrap/sockets.ts).
  'cloudflare:sockets': `export const connect = globalThis.${BUILTINS_GLOBAL}.connect;`,
  // The runtime's own class (bootstrap/workflow-step.ts), so a step knows it when the tenant throws it.
  // crypto.subtle run synchronously (bootstrap/subtle.ts), which node:crypto's synchronous API needs (cli/node-polyfills/crypto-keys.ts).
  'node-internal:crypto': `export const subtle = globalThis.${BUILTINS_GLOBAL}.syncSubtle;`,
  // The Brotli codec's WebAssembly, compiled on first use (bootstrap/brotli.ts), for node:zlib (cli/node-polyfills/brotli.ts).
  'node-internal:zlib': `export const brotliModule = globalThis.${BUILTINS_GLOBAL}.brotliModule;`,
  // node:fs's /tmp is emptied when a request starts while none is in flight (cli/node-polyfills/fs.ts).
  'node-internal:fs-epoch': `export const requestEpoch = globalThis.${BUILTINS_GLOBAL}.requestEpoch;`,
  'cloudflare:workflows': `export const NonRetryableError = globalThis.${BUILTINS_GLOBAL}.NonRetryableError;`,
};

/**
 * The bundle cannot be loaded as written: our check of it, its message for the tenant. A class of its
 * own because the instance tells it from the isolate's exceptions only once it has ruled out a limit.
 */
export class ModuleError extends CordonError {
  constructor(message: string) {
    super(message, { status: 500 });
  }
}

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

/**
 * A CommonJS module as an ES module: `require` of a string literal becomes a static import (an ES
 * module's namespace, any other module's default: `module.exports` of a CommonJS one); any other
 * require throws. `module.exports` is the default export.
 */
function commonJs(m: WorkerModule, byName: Map<string, WorkerModule>): string {
  const specifiers = [...new Set([...m.content.matchAll(/\brequire\s*\(\s*(['"])([^'"\n]{1,512})\1\s*\)/g)].map((x) => x[2]!))];
  const imports = specifiers.map((spec, i) => `import * as __cordon_dep${i} from ${JSON.stringify(spec)};`);
  const table = specifiers.map((spec, i) => {
    const target = byName.get(resolveName(spec, m.name));
    return `${JSON.stringify(spec)}: ${target?.type === 'esm' ? `__cordon_dep${i}` : `__cordon_dep${i}.default`}`;
  });
  const dir = m.name.split('/').slice(0, -1).join('/');
  return `${imports.join('\n')}
const __cordon_deps = { ${table.join(', ')} };
const module = { exports: {} };
const require = (s) => {
  if (Object.hasOwn(__cordon_deps, s)) return __cordon_deps[s];
  throw new Error('require(' + JSON.stringify(s) + '): only modules named by a string literal in this file can be required');
};
(function (exports, require, module, __filename, __dirname) {
${m.content}
}).call(module.exports, module.exports, require, module, ${JSON.stringify(m.name)}, ${JSON.stringify(dir)});
export default module.exports;
`;
}

const FS_INTERNAL = 'node-internal:fs';
/**
 * node:fs's /bundle (cli/node-polyfills/fs.ts): the worker's own modules as `[name, type, content]`, compiled
 * only when a bundle imports node:fs; and the request epoch that scopes its /tmp.
 */
function fsInternal(modules: WorkerModule[]): string {
  return `export { requestEpoch } from 'node-internal:fs-epoch';
export const modules = ${JSON.stringify(modules.map((m) => [m.name, m.type, m.content]))};`;
}

function sourceOf(m: WorkerModule, byName: Map<string, WorkerModule>): string {
  switch (m.type) {
    case 'esm':
      return m.content;
    case 'cjs':
      return commonJs(m, byName);
    case 'text':
      return `export default ${JSON.stringify(m.content)};`;
    case 'json':
      JSON.parse(m.content); // refuse bad JSON at load, with a clear error
      return `export default JSON.parse(${JSON.stringify(m.content)});`;
    case 'data':
    case 'wasm':
      // Copied in (and compiled, for wasm) by the bootstrap before linking: see `shipBinaryModules`.
      return `export default globalThis.${SHIPPED_GLOBAL}(${JSON.stringify(m.name)});`;
  }
}

/**
 * Hand the bytes of every data and wasm module to the bootstrap, which keeps data as an ArrayBuffer
 * and compiles wasm (refusing shared memory) with the WebAssembly.Module it captured before the
 * lockdown. `ship` returns '' or why the module was refused.
 */
export async function shipBinaryModules(
  modules: WorkerModule[],
  ship: (name: string, type: 'data' | 'wasm', bytes: ArrayBuffer) => Promise<string>,
): Promise<void> {
  for (const m of modules) {
    if (m.type !== 'data' && m.type !== 'wasm') continue;
    const bytes = Buffer.from(m.content, 'base64');
    const problem = await ship(m.name, m.type, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    if (problem) throw new ModuleError(`module ${m.name}: ${problem}`);
  }
}

export interface LinkedWorker {
  main: ivm.Module;
  /** Every module handle made so far (the caller releases them once no import() can come). */
  all: ivm.Module[];
  /** `import(specifier)` from the module named `referrer`: that module, instantiated (not yet evaluated). */
  load(specifier: string, referrer: string): Promise<ivm.Module>;
}

/** Whether the worker's code calls import() (as rewritten at deploy): its modules must then stay linkable. */
export function usesDynamicImport(modules: WorkerModule[]): boolean {
  return modules.some((m) => (m.type === 'esm' || m.type === 'cjs') && m.content.includes(`${DYNAMIC_IMPORT}(`));
}

/** namesUrl's answers, by bundle (its modules are not changed once made). */
const namedUrl = new WeakMap<WorkerModule[], boolean>();

/**
 * Whether the worker's code names the URL classes (`URL`, `URLSearchParams`, or anything containing them):
 * its isolate then compiles the url unit as it loads (instance.ts), on its own thread, rather than on the
 * process's main thread at its first URL. A worker that reaches them another way loads them then.
 */
export function namesUrl(modules: WorkerModule[]): boolean {
  // Asked twice of a cold start (which spare it takes, then as it loads): its code is scanned once.
  let names = namedUrl.get(modules);
  if (names === undefined) namedUrl.set(modules, (names = modules.some((m) => (m.type === 'esm' || m.type === 'cjs') && m.content.includes('URL'))));
  return names;
}

/** Compile and link every module reachable from `mainModule`. Returns the main module, instantiated. */
export async function linkWorker(isolate: ivm.Isolate, context: ivm.Context, mainModule: string, modules: WorkerModule[]): Promise<LinkedWorker> {
  const byName = new Map(modules.map((m) => [m.name, m]));
  const main = byName.get(mainModule);
  if (!main) throw new ModuleError(`main module ${mainModule} is not in the bundle`);
  if (main.type !== 'esm' && main.type !== 'cjs') throw new ModuleError(`main module ${mainModule} is not a JavaScript module`);
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
  const resolveFrom = async (specifier: string, from: string): Promise<ivm.Module> => {
    if (Object.hasOwn(BUILTINS, specifier)) return compile(specifier, BUILTINS[specifier]!);
    if (specifier === FS_INTERNAL) return compile(specifier, fsInternal(modules));
    const name = resolveName(specifier, from);
    const m = byName.get(name);
    if (!m) throw new ModuleError(`cannot resolve import ${JSON.stringify(specifier)} from ${from}: no module ${name} in the bundle`);
    return compile(name, sourceOf(m, byName));
  };
  const resolve = (specifier: string, referrer: ivm.Module) => resolveFrom(specifier, names.get(referrer) ?? mainModule);
  const instantiate = async (m: ivm.Module) => {
    try {
      await m.instantiate(context, resolve);
    } catch (e) {
      throw e instanceof ModuleError ? e : new ModuleError(e instanceof Error ? e.message : String(e));
    }
    return m;
  };
  let entry: ivm.Module;
  try {
    entry = await instantiate(await compile(mainModule, sourceOf(main, byName)));
  } catch (e) {
    for (const m of compiled.values()) m.release();
    throw e;
  }
  return {
    main: entry,
    get all() {
      return [...compiled.values()];
    },
    load: async (specifier, referrer) => instantiate(await resolveFrom(specifier, referrer)),
  };
}

/**
 * Defines the worker's `import()` (DYNAMIC_IMPORT) in its context: `(referrer, specifier)` loads the
 * module as a static import would (relative to `referrer`, only the worker's own modules and the
 * built-ins), evaluates it once under the CPU limit, and gives its namespace. A module that threw gives
 * the same error at every later import, as in V8. The isolate sees only the error's message. The
 * public built-ins are evaluated now, while the bootstrap still holds what they export.
 */
export async function installDynamicImport(context: ivm.Context, linked: LinkedWorker, mainModule: string, cpuMs: number): Promise<void> {
  const evaluated = new Map<ivm.Module, Promise<void>>([[linked.main, Promise.resolve()]]);
  for (const name of Object.keys(BUILTINS).filter((n) => !n.startsWith('node-internal:'))) {
    const m = await linked.load(name, mainModule);
    await m.evaluate({ timeout: cpuMs });
    evaluated.set(m, Promise.resolve());
  }
  const load = new ivm.Reference(async (referrer: unknown, specifier: unknown) => {
    try {
      if (typeof referrer !== 'string' || typeof specifier !== 'string' || specifier.length > 4096) throw new TypeError('import() takes a module specifier');
      // The polyfills' hooks into the runtime are bound when the worker loads, for its static imports.
      if (specifier.startsWith('node-internal:')) throw new ModuleError(`cannot import ${specifier} with import(): it is the runtime's own`);
      const m = await linked.load(specifier, referrer);
      let done = evaluated.get(m);
      if (!done) evaluated.set(m, (done = m.evaluate({ timeout: cpuMs }).then(() => undefined)));
      await done;
      return m.namespace.derefInto({ release: true });
    } catch (e) {
      throw sanitized(e);
    }
  });
  await context.evalClosure(
    `const load = $0;
    Object.defineProperty(globalThis, ${JSON.stringify(DYNAMIC_IMPORT)}, {
      value: (referrer, specifier) => load.apply(undefined, [referrer, String(specifier)], { result: { promise: true } }),
    });`,
    [load],
  );
}
