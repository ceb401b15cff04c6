/**
 * wrangler's `find_additional_modules` (and `no_bundle`, which always finds them): the files under
 * `base_dir` that a module rule matches, each uploaded as a module of its own, named by its path
 * relative to `base_dir` with `/` separators, as wrangler finds them (workers-sdk's
 * find-additional-modules.ts): the whole tree is walked, the config file, `.wrangler` and the entry
 * itself left out, and a file is taken once, by the first rule matching it; a file only a dropped rule
 * matches is an error.
 *
 * The tree is the deployer's, but a project can come from anyone: a name the admin API would refuse
 * (moduleNameProblem), a symlink leading out of `base_dir`, anything but a regular file, and more
 * modules or bytes than a deploy may hold are refused here with the file named, before anything is
 * uploaded (the admin API checks names, count and size again).
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import { cliError } from './admin-client.ts';
import type { ModuleRule, RuleType } from './worker-config.ts';
import { MAX_CODE_BYTES, MAX_MODULES, moduleNameProblem, type WorkerModule } from '../schemas/worker.ts';

export const MODULE_TYPE: Record<RuleType, WorkerModule['type']> = { ESModule: 'esm', CommonJS: 'cjs', CompiledWasm: 'wasm', Text: 'text', Data: 'data' };

/** Directory entries looked at before the walk stops: a base_dir holding more is not a worker's source. */
export const MAX_WALKED = 50_000;

/**
 * A rule's glob as wrangler matches it against a file's path under base_dir (glob-to-regexp with
 * `globstar`): `*` is any run of characters but `/`, a `**` segment any number of directories, dot
 * files included; everything else is literal.
 */
export function fileGlob(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*' && (i === 0 || glob[i - 1] === '/') && (i + 2 === glob.length || glob[i + 2] === '/')) {
      re += '(?:[^/]*(?:/|$))*';
      i += 2; // the "**" and the "/" after it
    } else if (c === '*') re += '[^/]*';
    else re += c.replace(/[.+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A module of `type` from a file's bytes: text as text, the rest in base64 (as the admin API takes them). */
export function moduleOf(name: string, type: WorkerModule['type'], content: Buffer): WorkerModule {
  return { name, type, content: type === 'esm' || type === 'cjs' || type === 'text' ? content.toString('utf8') : content.toString('base64') };
}

/** Whether `path` is strictly inside `dir` (both absolute). */
function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** `file`'s module name relative to `baseDir`, or a CLI error saying why it cannot be one. */
export function nameIn(baseDir: string, file: string, what: string): string {
  if (!inside(baseDir, file)) throw cliError(`${what} ${file} is not inside base_dir ${baseDir}`);
  const rel = relative(baseDir, file).split(sep).join('/');
  const why = moduleNameProblem(rel);
  if (why) throw cliError(`${what} ${file}: its module name ${JSON.stringify(rel)} ${why}; rename the file`);
  return rel;
}

export interface Found {
  modules: WorkerModule[];
  /** Absolute path of each module's file, by module name. */
  files: Map<string, string>;
}

/**
 * The additional modules under `baseDir`: files `rules` match (parsed: the config's, then wrangler's
 * defaults), except the paths in `exclude`. `dropped` are rules an earlier rule of their type ended.
 */
export async function findAdditionalModules(baseDir: string, rules: ModuleRule[], dropped: ModuleRule[], exclude: string[]): Promise<Found> {
  let root: string;
  try {
    root = await realpath(baseDir);
  } catch (e) {
    throw cliError(`base_dir ${baseDir} cannot be read: ${(e as Error).message}`);
  }
  const skip = new Set(exclude.map((f) => relative(baseDir, f).split(sep).join('/')));
  skip.add('.wrangler');
  const found: Found = { modules: [], files: new Map() };
  let walked = 0;
  let bytes = 0;
  const visit = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw cliError(`cannot read ${dir} (under base_dir): ${(e as Error).message}`);
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (++walked > MAX_WALKED)
        throw cliError(`base_dir ${baseDir} holds more than ${MAX_WALKED} files and directories: point base_dir at the worker's own source`);
      const path = join(dir, entry.name);
      const rel = relative(baseDir, path).split(sep).join('/');
      if (skip.has(rel)) continue;
      if (entry.isDirectory()) {
        await visit(path);
        continue;
      }
      const rule = rules.find((r) => r.globs.some((g) => fileGlob(g).test(rel)));
      if (!rule) {
        const ended = dropped.find((r) => r.globs.some((g) => fileGlob(g).test(rel)));
        if (ended)
          throw cliError(
            `${rel} matched the module rule ${JSON.stringify(ended)}, which is ignored because an earlier ${ended.type} rule does not say "fallthrough": true`,
          );
        continue;
      }
      // A symlink is followed only to a regular file inside base_dir: the project's files, nothing else of the machine's.
      const real = await realpath(path).catch(() => undefined);
      if (!real || !inside(root, real))
        throw cliError(`${rel} leads out of base_dir ${baseDir} (a symlink to ${real ?? 'nowhere'}): additional modules must be files inside base_dir`);
      const info = await stat(real);
      if (!info.isFile()) throw cliError(`${rel} is not a regular file`);
      const name = nameIn(baseDir, path, 'the module');
      if (found.modules.length >= MAX_MODULES)
        throw cliError(`base_dir ${baseDir} holds more than ${MAX_MODULES} files the module rules match: a worker has at most ${MAX_MODULES} modules`);
      bytes += info.size;
      if (bytes > MAX_CODE_BYTES)
        throw cliError(`the additional modules under ${baseDir} are more than ${MAX_CODE_BYTES} bytes (64 MiB) together, a worker's limit (at ${rel})`);
      found.modules.push(moduleOf(name, MODULE_TYPE[rule.type], await readFile(real)));
      found.files.set(name, path);
    }
  };
  await visit(baseDir);
  return found;
}
