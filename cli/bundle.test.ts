import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorker, globRegExp, parseRules } from './bundle.ts';

test('rule globs match import specifiers as wrangler matches them: * spans directories, ?module is literal', () => {
  assert.ok(globRegExp('**/*.html').test('./a.html'));
  assert.ok(globRegExp('**/*.html').test('../x/y/a.html'));
  assert.ok(globRegExp('**/*.wasm?module').test('./a.wasm?module'));
  assert.ok(!globRegExp('**/*.wasm?module').test('./a.wasmxmodule'));
  assert.ok(!globRegExp('**/*.txt').test('./a.txt.js'));
});

test("the config's rules come before the defaults; a rule without fallthrough ends its type", () => {
  const { rules, dropped } = parseRules([{ type: 'Text', globs: ['**/*.sql'] }]);
  assert.deepEqual(
    rules.map((r) => r.globs[0]),
    ['**/*.sql', '**/*.bin', '**/*.wasm'],
  );
  assert.deepEqual(
    dropped.map((r) => r.globs),
    [['**/*.txt', '**/*.html']],
  );
  assert.deepEqual(parseRules([{ type: 'Text', globs: ['**/*.sql'], fallthrough: true }]).dropped, []);
});

test('a file only a dropped rule matches, and a node: import, fail the bundle with why', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bundle-'));
  writeFileSync(join(dir, 'a.txt'), 'x');
  writeFileSync(join(dir, 'w.js'), `import a from './a.txt'; export default { fetch: () => new Response(a) };`);
  await assert.rejects(bundleWorker(join(dir, 'w.js'), { rules: [{ type: 'Text', globs: ['**/*.sql'] }] }), /matched the module rule .* "fallthrough": true/);
  writeFileSync(join(dir, 'n.js'), `import { Buffer } from 'node:buffer'; export default { fetch: () => new Response(Buffer.from('x')) };`);
  await assert.rejects(bundleWorker(join(dir, 'n.js')), /node:buffer: Node\.js modules \(nodejs_compat\) are not available in Cordon yet/);
});

test('packages resolve by the workerd condition first, and by module/main without an exports map', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bundle-'));
  const pkg = (name: string, json: object, files: Record<string, string>) => {
    mkdirSync(join(dir, 'node_modules', name), { recursive: true });
    writeFileSync(join(dir, 'node_modules', name, 'package.json'), JSON.stringify({ name, ...json }));
    for (const [f, src] of Object.entries(files)) writeFileSync(join(dir, 'node_modules', name, f), src);
  };
  pkg(
    'c',
    { exports: { workerd: './w.js', worker: './k.js', browser: './b.js', default: './d.js' } },
    { 'w.js': 'export const v = "workerd"', 'k.js': 'export const v = "worker"', 'b.js': 'export const v = "browser"', 'd.js': 'export const v = "default"' },
  );
  pkg('m', { main: './main.js', module: './mod.js' }, { 'main.js': 'exports.v = "main"', 'mod.js': 'export const v = "module"' });
  writeFileSync(join(dir, 'w.js'), `import { v as c } from 'c'; import { v as m } from 'm'; export default { c, m };`);
  const b = await bundleWorker(join(dir, 'w.js'));
  assert.match(b.modules[0]!.content, /"workerd"/);
  assert.doesNotMatch(b.modules[0]!.content, /"browser"|"default"/);
  assert.match(b.modules[0]!.content, /"module"/);
});
