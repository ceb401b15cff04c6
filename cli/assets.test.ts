import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gatherAssets } from './assets.ts';
import { readWorkerConfig } from './worker-config.ts';

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-gather-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

test('gathering assets: every file by path from /, hashed; .assetsignore (gitignore syntax) and itself left out', () => {
  const dir = tree({
    'index.html': 'home',
    'css/site.css': 'body{}',
    'drafts/x.html': 'draft',
    'notes.md': 'no',
    'a b.txt': 'space',
    '.assetsignore': 'drafts/\n*.md\n',
  });
  const { files } = gatherAssets(dir);
  assert.deepEqual(
    files.map((f) => [f.path, f.size]),
    [
      ['/a b.txt', 5],
      ['/css/site.css', 6],
      ['/index.html', 4],
    ],
  );
  assert.equal(files[2]!.hash, '4ea140588150773ce3aace786aeef7f4049ce100fa649c94fbbddb960f1da942');
});

test('_redirects and _headers at the root are rules, not files (unless ignored); a bad line fails the deploy; a missing directory is named', () => {
  const g = gatherAssets(tree({ 'index.html': 'x', _redirects: '/a /b 301\n', _headers: '/*\n  X-A: b\n', 'sub/_redirects': 'served' }));
  assert.deepEqual(
    g.files.map((f) => f.path),
    ['/index.html', '/sub/_redirects'],
  );
  assert.deepEqual(g.redirects, [{ from: '/a', to: '/b', status: 301, line: 1 }]);
  assert.deepEqual(g.headers, [{ pattern: '/*', set: [['X-A', 'b']], unset: [] }]);
  assert.throws(() => gatherAssets(tree({ _redirects: '/a /b 999' })), /_redirects:1: status 999/);
  assert.equal(gatherAssets(tree({ _headers: 'x', '.assetsignore': '_headers' })).headers.length, 0);
  assert.throws(() => gatherAssets('/nonexistent/public'), /assets\.directory \/nonexistent\/public is not a directory/);
});

test('the assets section: routing settings, assets-only workers, and what makes no sense without main', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-assets-'));
  const read = (config: object) => {
    writeFileSync(join(dir, 'wrangler.json'), JSON.stringify(config));
    return readWorkerConfig(join(dir, 'wrangler.json'));
  };
  const full = read({
    name: 'x',
    main: 'w.js',
    compatibility_date: '2025-05-01',
    assets: { directory: 'dist', binding: 'ASSETS', html_handling: 'none', not_found_handling: '404-page', run_worker_first: ['/api/*'] },
  });
  assert.deepEqual(full.assets, {
    directory: join(dir, 'dist'),
    binding: 'ASSETS',
    routing: { htmlHandling: 'none', notFoundHandling: '404-page', runWorkerFirst: ['/api/*'], navigationPrefersAssets: true, hasWorker: true },
  });
  assert.equal(read({ name: 'x', main: 'w.js', compatibility_date: '2025-01-01', assets: { directory: 'd' } }).assets!.routing.navigationPrefersAssets, false);
  assert.equal(
    read({
      name: 'x',
      main: 'w.js',
      compatibility_date: '2025-01-01',
      compatibility_flags: ['assets_navigation_prefers_asset_serving'],
      assets: { directory: 'd' },
    }).assets!.routing.navigationPrefersAssets,
    true,
  );
  const only = read({ name: 'x', assets: { directory: 'd' } });
  assert.equal(only.main, undefined);
  assert.equal(only.assets!.routing.hasWorker, false);
  assert.throws(() => read({ name: 'x' }), /main: the entry module is missing/);
  assert.throws(() => read({ name: 'x', assets: { directory: 'd', binding: 'ASSETS' } }), /assets: binding ASSETS without a worker/);
  assert.throws(() => read({ name: 'x', assets: { directory: 'd', run_worker_first: true } }), /run_worker_first without a worker/);
  assert.throws(() => read({ name: 'x', main: 'w.js', assets: { directory: 'd', html_handling: 'sometimes' } }), /assets\.html_handling/);
  assert.throws(() => read({ name: 'x', main: 'w.js', assets: { directory: 'd', run_worker_first: ['api/*'] } }), /a pattern is a path from \//);
  assert.throws(() => read({ name: 'x', main: 'w.js', assets: { directory: 'd', serve_directly: true } }), /assets: Unrecognized key/);
  assert.throws(() => read({ name: 'x', main: 'w.js', legacy_assets: 'd' }), /legacy_assets: legacy assets/);
});
