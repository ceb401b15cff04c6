import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { bundleWorker, specifierFrom } from './bundle.ts';
import { fileGlob } from './additional-modules.ts';
import { MAX_MODULES } from '../schemas/worker.ts';

/** A project from `files` (path → content) in a fresh directory. */
function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-modules-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}
const ESM = [{ type: 'ESModule' as const, globs: ['**/*.js'] }];
const summary = (b: Awaited<ReturnType<typeof bundleWorker>>) => ({ main: b.mainModule, modules: b.modules.map((m) => `${m.name}:${m.type}`) });

test("rule globs match files under base_dir as wrangler's globstar matching does: ** spans directories (none too), * stays in one, dot files count", () => {
  for (const [glob, path, want] of [
    ['**/*.js', 'a.js', true],
    ['**/*.js', 'x/y/a.js', true],
    ['**/*.js', '.git/hooks.js', true],
    ['**/*.js', 'a.jsx', false],
    ['*.js', 'x/a.js', false],
    ['lang/*.js', 'lang/fr.js', true],
    ['lang/*.js', 'lang/x/fr.js', false],
    ['**/*.wasm?module', 'a.wasm?module', true],
    ['**/*.wasm?module', 'a.wasmxmodule', false],
    ['a+b/**', 'a+b/c/d', true],
  ] as const)
    assert.equal(fileGlob(glob).test(path), want, `${glob} ${path}`);
});

test('no_bundle: main as it is, named under base_dir, and every file the rules match beside it (wrangler defaults included)', async () => {
  const main = `import a from './lib/a.js'; import t from './t.txt'; export default { fetch: () => new Response(a + t) };`;
  const dir = project({ 'src/index.js': main, 'src/lib/a.js': 'export default 1;', 'src/t.txt': 'x', 'src/notes.md': 'not a module', 'wrangler.json': '{}' });
  const b = await bundleWorker(join(dir, 'src/index.js'), { noBundle: true, rules: ESM, configFile: join(dir, 'wrangler.json') });
  assert.deepEqual(summary(b), { main: 'index.js', modules: ['index.js:esm', 'lib/a.js:esm', 't.txt:text'] });
  assert.equal(b.modules[0]!.content, main, 'uploaded as it is');
  // base_dir above main: names are paths from there, main's included; the config file is never a module.
  const fromRoot = await bundleWorker(join(dir, 'src/index.js'), { noBundle: true, rules: ESM, baseDir: dir, configFile: join(dir, 'wrangler.json') });
  assert.deepEqual(summary(fromRoot).modules, ['src/index.js:esm', 'src/lib/a.js:esm', 'src/t.txt:text']);
  await assert.rejects(bundleWorker(join(dir, 'src/index.ts'), { noBundle: true }), /no_bundle uploads .*index\.ts as it is, and the runtime runs JavaScript/);
  await assert.rejects(bundleWorker(join(dir, 'src/index.js'), { noBundle: true, baseDir: join(dir, 'src/lib') }), /main .*index\.js is not inside base_dir/);
});

test('find_additional_modules: matching files stay modules (the bundle imports them by name from where main stands); the rest is bundled', async () => {
  const dir = project({
    'src/index.ts': `import { helper } from './helper.ts'; import en from './lang/en.js'; import page from './page.html';
      export default { fetch: async () => new Response(helper() + en + page + (await import('./lang/fr.js')).default) };`,
    'src/helper.ts': 'export const helper = (): string => "h";',
    'src/lang/en.js': 'export default "en";',
    'src/lang/fr.js': 'export default "fr";',
    'src/page.html': '<p>',
  });
  const b = await bundleWorker(join(dir, 'src/index.ts'), { findAdditionalModules: true, rules: ESM });
  assert.deepEqual(summary(b), { main: 'index.js', modules: ['index.js:esm', 'lang/en.js:esm', 'lang/fr.js:esm', 'page.html:text'] });
  const code = b.modules[0]!.content;
  assert.match(code, /from "\.\/lang\/en\.js"/);
  assert.match(code, /__cordonImport\("index\.js", "\.\/lang\/fr\.js"\)/, "import() becomes the runtime's loader, told which module asks");
  assert.match(code, /from "\.\/page\.html"/);
  assert.match(code, /var helper = .*\(\) => "h"/, 'a file no rule matches is bundled');
  // Without find_additional_modules, the JavaScript rule means nothing and everything is bundled.
  const bundled = await bundleWorker(join(dir, 'src/index.ts'), { rules: ESM });
  assert.deepEqual(
    bundled.modules.map((m) => m.name.replace(/^[0-9a-f]{40}-/, '<hash>-')),
    ['worker.js', '<hash>-page.html'],
  );
  // base_dir above main: main keeps its place (src/index.js), the imports stay relative to it.
  const fromRoot = await bundleWorker(join(dir, 'src/index.ts'), { findAdditionalModules: true, rules: ESM, baseDir: dir });
  assert.equal(fromRoot.mainModule, 'src/index.js');
  assert.match(fromRoot.modules[0]!.content, /from "\.\/lang\/en\.js"/);
  assert.equal(specifierFrom('src/index.js', 'lib/x.js'), '../lib/x.js');
});

test('preserve_file_names: a rule-matched module is named by its import path, which must stay a module name', async () => {
  const dir = project({
    'w.js': `import a from './data/a.txt'; export default { fetch: () => new Response(a) };`,
    'data/a.txt': 'A',
    'up.js': `import a from '../x.txt'; export default a;`,
  });
  const b = await bundleWorker(join(dir, 'w.js'), { preserveFileNames: true });
  assert.deepEqual(summary(b), { main: 'worker.js', modules: ['worker.js:esm', 'data/a.txt:text'] });
  assert.match(b.modules[0]!.content, /from "\.\/data\/a\.txt"/);
  writeFileSync(join(tmpdir(), 'x.txt'), 'outside');
  await assert.rejects(
    bundleWorker(join(dir, 'up.js'), { preserveFileNames: true }),
    /preserve_file_names names the module imported as "\.\.\/x\.txt" by that path, and "\.\.\/x\.txt" must be a relative path without/,
  );
});

test('hostile trees: a symlink out of base_dir, a name the admin API would refuse, a symlinked directory, too many modules: refused with the file named', async () => {
  const outside = project({ 'secret.js': 'export default "secret";' });
  const dir = project({ 'index.js': 'export default {};' });
  symlinkSync(join(outside, 'secret.js'), join(dir, 'leak.js'));
  await assert.rejects(bundleWorker(join(dir, 'index.js'), { noBundle: true, rules: ESM }), /leak\.js leads out of base_dir .* \(a symlink to .*secret\.js\)/);
  const named = project({ 'index.js': 'export default {};', 'a b.js': '' });
  await assert.rejects(bundleWorker(join(named, 'index.js'), { noBundle: true, rules: ESM }), /its module name "a b\.js" may use only letters, digits/);
  const linkedDir = project({ 'index.js': 'export default {};' });
  symlinkSync(outside, join(linkedDir, 'lib.js'));
  await assert.rejects(bundleWorker(join(linkedDir, 'index.js'), { noBundle: true, rules: ESM }), /lib\.js leads out of base_dir/);
  // A symlink inside base_dir is the project's own file: followed.
  const inside = project({ 'index.js': 'export default {};', 'real.js': 'export default 1;' });
  symlinkSync(join(inside, 'real.js'), join(inside, 'alias.js'));
  assert.deepEqual(summary(await bundleWorker(join(inside, 'index.js'), { noBundle: true, rules: ESM })).modules, [
    'index.js:esm',
    'alias.js:esm',
    'real.js:esm',
  ]);
  const many = project(Object.fromEntries(Array.from({ length: MAX_MODULES + 1 }, (_, i) => [`m/${i}.js`, ''])));
  writeFileSync(join(many, 'index.js'), '');
  await assert.rejects(
    bundleWorker(join(many, 'index.js'), { noBundle: true, rules: ESM }),
    /holds more than 1000 files the module rules match: a worker has at most 1000 modules/,
  );
});
