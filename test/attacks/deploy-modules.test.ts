/**
 * `no_bundle` and `find_additional_modules` upload a project's files as modules of their own, named by
 * their path, and `import()` loads them at run time: deploy input a hostile project controls, through the
 * real mesh. Refused at deploy, with the reason and nothing deployed: a symlink out of base_dir, a name
 * climbing out by `preserve_file_names`, a file name the admin API would refuse, thousands of modules, a
 * huge module; through the admin API directly, the same names, duplicates, too many modules and too many
 * bytes. At run time a worker's `import()` reaches its own modules and the built-ins only, whatever
 * referrer and specifier it passes. A bystander worker of another tenant serves unchanged throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const HELLO = 'export default { fetch() { return new Response("hi") } }';
const ESM_RULES = [{ type: 'ESModule', globs: ['**/*.js'] }];

describe('deploy input: modules found under base_dir and import()', () => {
  let mesh: TestMesh;
  let work: string;
  let secretDir: string;
  const root = () => readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const api = (body: unknown) =>
    fetch(`${mesh.adminUrl}/v1/workers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${root()}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  /** A project of `files` (path → content) with a wrangler.json of `config`. */
  const project = (config: object, files: Record<string, string>) => {
    const dir = mkdtempSync(join(work, 'project-'));
    writeFileSync(join(dir, 'wrangler.json'), JSON.stringify({ compatibility_date: '2026-11-01', ...config }));
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    return dir;
  };
  const refused = async (dir: string, why: RegExp, name: string) => {
    const r = await mesh.cli(['deploy'], dir);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, why);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, new RegExp(`\\b${name}\\b`), `${name} was not deployed`);
  };
  const bystander = async () => {
    const res = await fetch(`${mesh.httpUrl}/bystander`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'bystander unharmed');
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cordon-attack-modules-'));
    secretDir = join(work, 'outside');
    mkdirSync(secretDir);
    writeFileSync(join(secretDir, 'secret.js'), 'export default "the deployer\'s private key";');
    mesh = await startTestMesh();
    const b = await api({
      tenant: 'bob',
      name: 'bystander',
      mainModule: 'main.js',
      routes: ['*/bystander'],
      modules: [
        { name: 'main.js', type: 'esm', content: `import t from './lib/text.js'; export default { fetch() { return new Response(t) } }` },
        { name: 'lib/text.js', type: 'esm', content: `export default 'bystander unharmed';` },
      ],
    });
    assert.equal(b.status, 201, await b.text());
    await waitFor('the bystander', async () => (await fetch(`${mesh.httpUrl}/bystander`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('cordon deploy: a symlink out of base_dir (to a file or a directory) is refused, naming it; nothing of the outside is uploaded', async () => {
    const file = project({ name: 'leak-file', main: 'src/index.js', no_bundle: true, rules: ESM_RULES }, { 'src/index.js': HELLO });
    symlinkSync(join(secretDir, 'secret.js'), join(file, 'src/key.js'));
    await refused(file, /key\.js leads out of base_dir .* \(a symlink to .*secret\.js\): additional modules must be files inside base_dir/, 'leak-file');
    const dir = project({ name: 'leak-dir', main: 'src/index.js', find_additional_modules: true, rules: ESM_RULES }, { 'src/index.js': HELLO });
    symlinkSync(secretDir, join(dir, 'src/vendor.js'));
    await refused(dir, /vendor\.js leads out of base_dir/, 'leak-dir');
    // base_dir itself may name any directory the deployer can read: main must be inside it.
    const above = project({ name: 'above', main: 'src/index.js', no_bundle: true, base_dir: 'src/lib' }, { 'src/index.js': HELLO, 'src/lib/a.js': '' });
    await refused(above, /main .*index\.js is not inside base_dir/, 'above');
    await bystander();
  });

  test('cordon deploy: preserve_file_names with an import climbing out, and a file name the admin API refuses, are refused', async () => {
    const climb = project(
      { name: 'climb', main: 'src/index.js', preserve_file_names: true },
      { 'src/index.js': `import s from '../outside/x.txt'; export default { fetch: () => new Response(s) };`, 'outside/x.txt': 'x' },
    );
    await refused(
      climb,
      /preserve_file_names names the module imported as "\.\.\/outside\/x\.txt" by that path, and .* must be a relative path without/,
      'climb',
    );
    const git = project({ name: 'gitname', main: 'index.js', no_bundle: true, rules: ESM_RULES }, { 'index.js': HELLO, '.git/hooks.js': '' });
    await refused(git, /may not have a \.git segment/, 'gitname');
    await bystander();
  });

  test('cordon deploy: thousands of modules and a huge module are refused before anything is uploaded', async () => {
    const files: Record<string, string> = { 'index.js': HELLO };
    for (let i = 0; i < 3000; i++) files[`m/${i}.js`] = '';
    await refused(
      project({ name: 'thousands', main: 'index.js', no_bundle: true, rules: ESM_RULES }, files),
      /more than 1000 files the module rules match/,
      'thousands',
    );
    const huge = project({ name: 'huge', main: 'index.js', no_bundle: true }, { 'index.js': HELLO });
    writeFileSync(join(huge, 'blob.bin'), Buffer.alloc(65 * 1024 * 1024));
    await refused(huge, /more than 67108864 bytes \(64 MiB\) together, a worker's limit \(at blob\.bin\)/, 'huge');
    await bystander();
  });

  test('admin API: names leaving the worker, duplicate names, too many modules and too many bytes are refused', async () => {
    const main = { name: 'main.js', type: 'esm', content: HELLO };
    for (const name of ['../x.js', '/etc/passwd', 'a/../../x.js']) {
      const res = await api({ name: 'names', mainModule: 'main.js', modules: [main, { name, type: 'esm', content: '' }] });
      assert.equal(res.status, 400, name);
      assert.match(((await res.json()) as { error: string }).error, /must be a relative path without empty, "\." or "\.\." segments/);
    }
    const dup = await api({
      name: 'dup',
      mainModule: 'main.js',
      modules: [main, { name: 'lib.js', type: 'esm', content: 'export default 1' }, { name: 'lib.js', type: 'esm', content: 'export default 2' }],
    });
    assert.equal(dup.status, 400);
    assert.match(((await dup.json()) as { error: string }).error, /module lib\.js is uploaded twice: module names must be unique/);
    const many = await api({
      name: 'many',
      mainModule: 'main.js',
      modules: [main, ...Array.from({ length: 1000 }, (_, i) => ({ name: `m${i}.js`, type: 'esm', content: '' }))],
    });
    assert.equal(many.status, 400);
    assert.match(((await many.json()) as { error: string }).error, /at most 1000 modules in a worker/);
    const big = await api({ name: 'big', mainModule: 'main.js', modules: [main, { name: 'big.txt', type: 'text', content: 'x'.repeat(65 * 1024 * 1024) }] });
    assert.ok([413, 400].includes(big.status), `status ${big.status}`);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /\b(names|dup|many|big)\b/);
    await bystander();
  });

  test("run time: import() with any referrer and specifier reaches only the worker's own modules and the built-ins", async () => {
    const probe = await api({
      tenant: 'mallory',
      name: 'probe',
      mainModule: 'main.js',
      routes: ['*/probe'],
      modules: [
        {
          name: 'main.js',
          type: 'esm',
          content: `export default { async fetch() {
            const tries = [['main.js', '../bob/bystander/lib/text.js'], ['../../../..', 'etc/passwd'], ['main.js', '/lib/text.js'], ['x', 'lib/text.js'],
              ['main.js', 'file:///etc/passwd'], ['main.js', 'node:fs'], ['main.js', 'node-internal:crypto'], ['main.js', 'cloudflare:sockets']];
            const out = [];
            for (const [referrer, specifier] of tries) out.push(await __cordonImport(referrer, specifier).then((m) => 'loaded ' + Object.keys(m).join(','), (e) => e.message));
            return Response.json(out);
          } }`,
        },
      ],
    });
    assert.equal(probe.status, 201, await probe.text());
    const res = await waitFor('the probe', async () => {
      const r = await fetch(`${mesh.httpUrl}/probe`);
      return r.status === 200 ? r : undefined;
    });
    assert.deepEqual(await res.json(), [
      'import ../bob/bystander/lib/text.js from main.js leaves the bundle',
      'cannot resolve import "etc/passwd" from ../../../..: no module etc/passwd in the bundle',
      'cannot resolve import "/lib/text.js" from main.js: no module lib/text.js in the bundle',
      'cannot resolve import "lib/text.js" from x: no module lib/text.js in the bundle',
      'cannot resolve import "file:///etc/passwd" from main.js: no module file:///etc/passwd in the bundle',
      'cannot resolve import "node:fs" from main.js: no module node:fs in the bundle',
      "cannot import node-internal:crypto with import(): it is the runtime's own",
      'loaded connect',
    ]);
    await bystander();
  });
});
