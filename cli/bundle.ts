/**
 * Bundling a worker for deploy, as wrangler bundles it: esbuild with the `workerd`, `worker` and `browser`
 * conditions and the `browser`, `module`, `main` fields (so packages without an `exports` map resolve and
 * the Workers build of a package wins), ES2022, JSX allowed in `.js`, `cloudflare:*` left to the runtime.
 * Files matched by a module rule (by default `.wasm` CompiledWasm, `.txt`/`.html` Text, `.bin` Data, plus
 * the config's `rules`) are not inlined: each becomes a module of its own beside the bundle, named by a
 * hash of its content as wrangler names it (by its import path with `preserve_file_names`), and the
 * runtime gives its default export (a WebAssembly.Module, a string, an ArrayBuffer). With
 * `find_additional_modules` the files under `base_dir` the rules match (JavaScript ones too) are modules
 * of their own, named by their path there, and the bundle imports them by that path; with `no_bundle`
 * nothing is bundled: `main` and those files are uploaded as they are (additional-modules.ts), but for
 * `import()` calls, which become calls of the runtime's loader (dynamic-import.ts). Errors come back as
 * `file:line:column: message`.
 */
import { build, type Message, type Plugin } from 'esbuild';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, dirname, posix, relative, resolve } from 'node:path';
import { cliError } from './admin-client.ts';
import type { BuildSettings, ModuleRule, RuleType } from './worker-config.ts';
import { moduleNameProblem, type WorkerModule } from '../schemas/worker.ts';
import { findAdditionalModules, MODULE_TYPE, moduleOf, nameIn, type Found } from './additional-modules.ts';
import { rewriteDynamicImports } from './dynamic-import.ts';
import { HTTP_SERVER_DEFINE, LOWERED_ASYNC, nodeCompat, nodePlugin, POPULATE_ENV_DEFINE } from './nodejs-compat.ts';

export interface Bundle {
  mainModule: string;
  modules: WorkerModule[];
  /** What the user should know about the bundle (Node.js modules Cordon only has a stand-in for). */
  notes: string[];
}

/** wrangler's default rules, applied after the config's own. */
export const DEFAULT_RULES: ModuleRule[] = [
  { type: 'Text', globs: ['**/*.txt', '**/*.html'] },
  { type: 'Data', globs: ['**/*.bin'] },
  { type: 'CompiledWasm', globs: ['**/*.wasm', '**/*.wasm?module'] },
];

/**
 * The config's rules, then the defaults. As in wrangler, the first rule of a type ends that type unless it
 * says `fallthrough: true`: later rules of the type are dropped, and a file only they match is an error.
 */
export function parseRules(userRules: ModuleRule[] = []): { rules: ModuleRule[]; dropped: ModuleRule[] } {
  const rules: ModuleRule[] = [];
  const dropped: ModuleRule[] = [];
  const closed = new Set<RuleType>();
  for (const rule of [...userRules, ...DEFAULT_RULES]) {
    if (closed.has(rule.type)) dropped.push(rule);
    else rules.push(rule);
    if (rule.fallthrough !== true) closed.add(rule.type);
  }
  return { rules, dropped };
}

/** A rule's glob as wrangler matches it against the import specifier: `*` is any run of characters, `/` included. */
export function globRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&'))
      .join('.*')}$`,
  );
}

/** A name the admin API accepts (letters, digits, `_ . -`; at most 256 characters), the extension kept. */
function moduleName(content: Buffer, file: string): string {
  return `${createHash('sha1').update(content).digest('hex')}-${basename(file)
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .slice(-200)}`;
}

/** `preserve_file_names`: the module is named by its import path (`./data/a.txt` → `data/a.txt`), which must stay a module name. */
function preservedName(specifier: string): string {
  const name = specifier.replace(/\?module$/, '').replace(/^(\.\/)+/, '');
  const why = moduleNameProblem(name);
  if (why) throw new Error(`preserve_file_names names the module imported as ${JSON.stringify(specifier)} by that path, and ${JSON.stringify(name)} ${why}`);
  return name;
}

/** How the module named `from` imports the one named `to` (module names are paths from the same root). */
export function specifierFrom(from: string, to: string): string {
  const rel = posix.relative(posix.dirname(from), to);
  return rel.startsWith('../') ? rel : `./${rel}`;
}

/**
 * The plugin that turns files matched by a rule into modules of their own, collected in `modules`;
 * imports of the additional modules found under base_dir stay imports, by their names.
 */
function moduleRules(settings: BuildSettings, mainName: string, modules: Map<string, WorkerModule>, additional?: Found): Plugin {
  const { rules, dropped } = parseRules(settings.rules);
  const byFile = new Map([...(additional?.files ?? [])].map(([name, file]) => [file, name]));
  return {
    name: 'cordon-module-rules',
    setup(b) {
      for (const rule of rules) {
        const javascript = rule.type === 'ESModule' || rule.type === 'CommonJS';
        // As wrangler: JavaScript rules mean something only with find_additional_modules.
        if (javascript && !additional) continue;
        for (const glob of rule.globs) {
          b.onResolve({ filter: globRegExp(glob) }, async (args) => {
            if (args.pluginData === 'cordon-module-rules') return undefined;
            const additionalName = byFile.get(resolve(args.resolveDir, args.path.replace(/\?module$/, '')));
            if (additionalName) return { path: specifierFrom(mainName, additionalName), external: true };
            // A JavaScript file that is not an additional module is bundled, as any other.
            if (javascript) return undefined;
            // esbuild resolves the file (package exports and conditions included); then it is ours.
            const found = await b.resolve(args.path.replace(/\?module$/, ''), {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
              pluginData: 'cordon-module-rules',
            });
            if (found.errors.length) return { errors: found.errors };
            const content = await readFile(found.path);
            let name: string;
            try {
              name = settings.preserveFileNames ? preservedName(args.path) : moduleName(content, found.path);
            } catch (e) {
              return { errors: [{ text: (e as Error).message }] };
            }
            const module = moduleOf(name, MODULE_TYPE[rule.type], content);
            const earlier = modules.get(name);
            if (earlier && earlier.content !== module.content)
              return { errors: [{ text: `two different files would both be the module ${name} (preserve_file_names names modules by their import path)` }] };
            modules.set(name, module);
            return { path: specifierFrom(mainName, name), external: true };
          });
        }
      }
      for (const rule of dropped) {
        for (const glob of rule.globs) {
          b.onResolve({ filter: globRegExp(glob) }, (args) => ({
            errors: [
              {
                text: `${args.path} matched the module rule ${JSON.stringify(rule)}, which is ignored because an earlier ${rule.type} rule does not say "fallthrough": true`,
              },
            ],
          }));
        }
      }
      // Without nodejs_compat (its plugin comes first), esbuild's answer is a hint to bundle for Node: say what is missing.
      b.onResolve({ filter: /^node:/ }, (args) => ({
        errors: [{ text: `${args.path}: Node.js modules need the nodejs_compat compatibility flag ("compatibility_flags": ["nodejs_compat"])` }],
      }));
    },
  };
}

function formatMessage(m: Message): string {
  const where = m.location ? `${relative(process.cwd(), m.location.file) || m.location.file}:${m.location.line}:${m.location.column + 1}: ` : '';
  const source = m.location?.lineText ? `\n    ${m.location.lineText}\n    ${' '.repeat(m.location.column)}^` : '';
  return `${where}error: ${m.text}${source}`;
}

export async function bundleWorker(entry: string, settings: BuildSettings = {}): Promise<Bundle> {
  const main = resolve(entry);
  if (settings.noBundle) return unbundled(main, settings);
  const compat = nodeCompat(settings.compatibilityDate, settings.compatibilityFlags ?? []);
  let additional: Found | undefined;
  let mainName = 'worker.js';
  if (settings.findAdditionalModules) {
    const baseDir = settings.baseDir ?? dirname(main);
    const { rules, dropped } = parseRules(settings.rules);
    additional = await findAdditionalModules(baseDir, rules, dropped, [main, ...(settings.configFile ? [settings.configFile] : [])]);
    // The bundle stands where main stands, so that relative imports between it and the additional modules hold.
    mainName = nameIn(baseDir, main, 'main').replace(/\.[cm]?[jt]sx?$/, '') + '.js';
    if (additional.files.has(mainName))
      throw cliError(`the bundle of ${entry} would be the module ${mainName}, which is also a file under base_dir: rename one of them`);
  }
  const first = await build1(main, settings, compat, false, mainName, additional);
  // AsyncLocalStorage's context follows `then`, not native `await`: lower them when the bundle uses it.
  const { mainModule, modules, notes } = first.imports.has('node:async_hooks') ? await build1(main, settings, compat, true, mainName, additional) : first;
  return { mainModule, modules: await Promise.all([...modules, ...(additional?.modules ?? [])].map(rewriteDynamicImports)), notes };
}

/** `no_bundle`: `main` as it is, named by its path under base_dir, and the additional modules beside it. */
async function unbundled(main: string, settings: BuildSettings): Promise<Bundle> {
  if (/\.(ts|tsx|mts|cts|jsx)$/.test(main))
    throw cliError(`no_bundle uploads ${main} as it is, and the runtime runs JavaScript: build it first, or remove no_bundle`);
  const baseDir = settings.baseDir ?? dirname(main);
  const mainName = nameIn(baseDir, main, 'main');
  let content: Buffer;
  try {
    content = await readFile(main);
  } catch (e) {
    throw cliError(`cannot read ${main}: ${(e as Error).message}`);
  }
  const { rules, dropped } = parseRules(settings.rules);
  const additional = await findAdditionalModules(baseDir, rules, dropped, [main, ...(settings.configFile ? [settings.configFile] : [])]);
  return {
    mainModule: mainName,
    modules: await Promise.all([moduleOf(mainName, 'esm', content), ...additional.modules].map(rewriteDynamicImports)),
    notes: [`no_bundle: ${mainName} and ${additional.modules.length} more module(s) under ${baseDir} uploaded as they are`],
  };
}

async function build1(
  entry: string,
  settings: BuildSettings,
  compat: ReturnType<typeof nodeCompat>,
  lowerAsync: boolean,
  mainName: string,
  additional: Found | undefined,
): Promise<Bundle & { imports: Set<string> }> {
  const modules = new Map<string, WorkerModule>();
  const node = compat.off ? undefined : nodePlugin(compat);
  try {
    const result = await build({
      entryPoints: [resolve(entry)],
      absWorkingDir: settings.root ?? process.cwd(),
      bundle: true,
      format: 'esm',
      target: 'es2022',
      platform: 'browser',
      conditions: ['workerd', 'worker', 'browser'],
      mainFields: ['browser', 'module', 'main'],
      loader: { '.js': 'jsx', '.mjs': 'jsx', '.cjs': 'jsx' },
      keepNames: true,
      external: ['cloudflare:*'],
      // As wrangler: NODE_ENV from the deploying shell when it is set, then the config's `define`.
      define: {
        ...(process.env.NODE_ENV ? { 'process.env.NODE_ENV': JSON.stringify(process.env.NODE_ENV) } : {}),
        ...node?.define,
        [POPULATE_ENV_DEFINE]: String(compat.populateEnv),
        [HTTP_SERVER_DEFINE]: String(compat.httpServer),
        ...settings.define,
      },
      inject: node?.inject,
      supported: lowerAsync ? LOWERED_ASYNC : undefined,
      alias: settings.alias,
      minify: settings.minify,
      jsxFactory: settings.jsxFactory,
      jsxFragment: settings.jsxFragment,
      tsconfig: settings.tsconfig,
      plugins: [...(node ? [node.plugin] : []), moduleRules(settings, mainName, modules, additional)],
      write: false,
      metafile: true,
      logLevel: 'silent',
      outfile: 'worker.js',
    });
    const out = result.outputFiles.find((f) => f.path.endsWith('worker.js'));
    if (!out) throw cliError('esbuild produced no output');
    const imports = new Set(Object.values(result.metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)));
    const notes = [...(node?.standIns ?? [])].map(
      (m) => `node:${m}: Workers provides this module at this compatibility date; Cordon has only unenv's stand-in (its functions throw "not implemented")`,
    );
    return { mainModule: mainName, modules: [{ name: mainName, type: 'esm', content: out.text }, ...modules.values()], notes, imports };
  } catch (e) {
    const errors = (e as { errors?: Message[] }).errors;
    if (errors?.length) throw cliError(`could not bundle ${entry}:\n${errors.map(formatMessage).join('\n')}`);
    throw e;
  }
}
