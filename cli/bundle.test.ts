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
  await assert.rejects(bundleWorker(join(dir, 'n.js')), /node:buffer: Node\.js modules need the nodejs_compat compatibility flag/);
});

test('nodejs_compat: node:* and, from v2, bare names and the globals; async functions lowered only where AsyncLocalStorage is imported', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bundle-'));
  writeFileSync(
    join(dir, 'n.js'),
    `import { Buffer as B } from 'node:buffer'; import EE from 'events'; export default { async fetch() { await 1; return new Response(B.from(String(typeof EE)) + Buffer.from('x')) } };`,
  );
  const v2 = await bundleWorker(join(dir, 'n.js'), { compatibilityDate: '2025-06-01', compatibilityFlags: ['nodejs_compat'] });
  const code = v2.modules[0]!.content;
  assert.doesNotMatch(code, /^import .*node:/m, 'everything but the runtime modules is bundled');
  assert.match(code, /async fetch\(\)/, 'no lowering without AsyncLocalStorage');
  // Before 2024-09-23 (v1): no bare names, no globals.
  await assert.rejects(
    bundleWorker(join(dir, 'n.js'), { compatibilityDate: '2024-01-01', compatibilityFlags: ['nodejs_compat'] }),
    /Could not resolve "events"/,
  );
  writeFileSync(
    join(dir, 'a.js'),
    `import { AsyncLocalStorage } from 'node:async_hooks'; const a = new AsyncLocalStorage(); export default { async fetch() { await 1; return new Response(a.getStore()) } };`,
  );
  const als = (await bundleWorker(join(dir, 'a.js'), { compatibilityFlags: ['nodejs_als'] })).modules[0]!.content;
  assert.match(als, /^import .* from "node:async_hooks";$/m, "node:async_hooks is the runtime's");
  assert.doesNotMatch(als, /async fetch\(\)/, 'await is lowered to then');
  assert.match(als, /__async\(/);
  // A stand-in where Workers has the module is named.
  writeFileSync(join(dir, 'd.js'), `import module from 'node:module'; export default { fetch: () => new Response(typeof module.createRequire) };`);
  const d = await bundleWorker(join(dir, 'd.js'), { compatibilityDate: '2025-09-01', compatibilityFlags: ['nodejs_compat'] });
  assert.match(d.notes.join('\n'), /node:module: Workers provides this module at this compatibility date; Cordon has only unenv's stand-in/);
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

test('node:http and node:https: the fetch()-based clients where Workers has them (2025-08-15, or enable_nodejs_http_modules), unenv stand-ins before or when disabled', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bundle-'));
  writeFileSync(
    join(dir, 'h.js'),
    `import http from 'node:http'; import https from 'node:https'; export default { fetch: () => new Response(typeof http.request + typeof https.get) };`,
  );
  // Only Cordon's client (cli/node-polyfills/http.ts) refuses a protocol; unenv's request() throws "not implemented".
  const clients = (b: Awaited<ReturnType<typeof bundleWorker>>) => b.modules[0]!.content.includes('ERR_INVALID_PROTOCOL');
  const bundle = (date: string, flags: string[] = []) =>
    bundleWorker(join(dir, 'h.js'), { compatibilityDate: date, compatibilityFlags: ['nodejs_compat', ...flags] });
  assert.equal(clients(await bundle('2025-08-15')), true);
  assert.equal(clients(await bundle('2025-08-14')), false);
  assert.equal(clients(await bundle('2025-06-01', ['enable_nodejs_http_modules'])), true);
  assert.equal(clients(await bundle('2025-09-01', ['disable_nodejs_http_modules'])), false);
});
