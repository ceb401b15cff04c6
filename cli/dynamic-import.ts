/**
 * `import()` in a worker's JavaScript modules, rewritten at deploy to the runtime's loader
 * (DYNAMIC_IMPORT in schemas/worker.ts says why): `import(x, options)` becomes
 * `__cordonImport("<this module's name>", x, options)`. es-module-lexer (the lexer Vite and Node's
 * tooling use) finds the calls, so `import(` in a string, a comment, a regular expression or a property
 * name (`o.import(`) is left alone; `import.meta`, static imports and `import.source()` too.
 */
import { init, parse } from 'es-module-lexer';
import { cliError } from './admin-client.ts';
import { DYNAMIC_IMPORT, type WorkerModule } from '../schemas/worker.ts';

/** The module with each `import(` call rewritten; the module itself when it has none. */
export async function rewriteDynamicImports(m: WorkerModule): Promise<WorkerModule> {
  if ((m.type !== 'esm' && m.type !== 'cjs') || !/\bimport\b/.test(m.content)) return m;
  await init();
  let imports: ReturnType<typeof parse>[0];
  try {
    [imports] = parse(m.content, m.name);
  } catch (e) {
    throw cliError(`module ${m.name} cannot be read as JavaScript: ${(e as Error).message}`);
  }
  const calls = imports.filter((i) => i.type === 'dynamic' && i.phase === null);
  if (!calls.length) return m;
  let out = '';
  let at = 0;
  for (const call of calls) {
    if (call.type !== 'dynamic') continue;
    out += `${m.content.slice(at, call.importStart)}${DYNAMIC_IMPORT}(${JSON.stringify(m.name)}, `;
    at = call.dynamicStart + 1; // the "(" opening the call
  }
  return { ...m, content: out + m.content.slice(at) };
}
