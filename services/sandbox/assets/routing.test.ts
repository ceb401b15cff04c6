/**
 * The static-asset routing rules: the html_handling tables of Cloudflare's documentation ("HTML
 * handling", a directory of `file.html` and `folder/index.html`), not_found_handling, run_worker_first
 * patterns, and the same decisions compared path by path with the asset worker miniflare runs on
 * workerd (Cloudflare's own code), over every html_handling and not_found_handling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { AssetRouting, HTML_HANDLING, NOT_FOUND_HANDLING } from '../../../schemas/assets.ts';
import { answer, assetsFirst, decodePath, workerFirst, type AssetAnswer } from './routing.ts';
import { contentType } from './server.ts';

const routing = (o: Partial<AssetRouting> = {}) => AssetRouting.parse(o);
const lookupOf = (paths: string[]) => {
  const m = new Map(paths.map((p, i) => [p, `h${i}`]));
  return (p: string) => m.get(p);
};
/** An answer as the docs' tables write it: `200 /file.html`, `307 /file`, `404`. */
function row(a: AssetAnswer): string {
  if (a.kind === 'asset') return `${a.status} ${a.path}`;
  if (a.kind === 'redirect') return `${a.status} ${a.location}`;
  return a.kind === 'not-found' ? '404' : '405';
}
const get = (path: string, r: AssetRouting, paths: string[]) => row(answer('GET', new URL(`https://x${path}`), r, lookupOf(paths)));

const DOCS_FILES = ['/file.html', '/folder/index.html'];
/** Cloudflare's tables, request → answer, for each html_handling. */
const DOCS_TABLES: Record<AssetRouting['htmlHandling'], Record<string, string>> = {
  'auto-trailing-slash': {
    '/file': '200 /file.html',
    '/file.html': '307 /file',
    '/file/': '307 /file',
    '/file/index': '307 /file',
    '/file/index.html': '307 /file',
    '/folder': '307 /folder/',
    '/folder.html': '307 /folder/',
    '/folder/': '200 /folder/index.html',
    '/folder/index': '307 /folder/',
    '/folder/index.html': '307 /folder/',
  },
  'force-trailing-slash': {
    '/file': '307 /file/',
    '/file.html': '307 /file/',
    '/file/': '200 /file.html',
    '/file/index': '307 /file/',
    '/file/index.html': '307 /file/',
    '/folder': '307 /folder/',
    '/folder.html': '307 /folder/',
    '/folder/': '200 /folder/index.html',
    '/folder/index': '307 /folder/',
    '/folder/index.html': '307 /folder/',
  },
  'drop-trailing-slash': {
    '/file': '200 /file.html',
    '/file.html': '307 /file',
    '/file/': '307 /file',
    '/file/index': '307 /file',
    '/file/index.html': '307 /file',
    '/folder': '200 /folder/index.html',
    '/folder.html': '307 /folder',
    '/folder/': '307 /folder',
    '/folder/index': '307 /folder',
    '/folder/index.html': '307 /folder',
  },
  none: {
    '/file': '404',
    '/file.html': '200 /file.html',
    '/file/': '404',
    '/file/index': '404',
    '/file/index.html': '404',
    '/folder': '404',
    '/folder.html': '404',
    '/folder/': '404',
    '/folder/index': '404',
    '/folder/index.html': '200 /folder/index.html',
  },
};

for (const mode of HTML_HANDLING) {
  test(`html_handling ${mode}: Cloudflare's table`, () => {
    const r = routing({ htmlHandling: mode });
    const got = Object.fromEntries(Object.keys(DOCS_TABLES[mode]).map((p) => [p, get(p, r, DOCS_FILES)]));
    assert.deepEqual(got, DOCS_TABLES[mode]);
  });
}

test('not_found_handling: none is a 404, single-page-application serves /index.html (200), 404-page the nearest 404.html (404)', () => {
  const files = ['/index.html', '/404.html', '/blog/404.html', '/blog/a.html'];
  assert.equal(get('/blog/missing', routing(), files), '404');
  assert.equal(get('/blog/missing', routing({ notFoundHandling: 'single-page-application' }), files), '200 /index.html');
  assert.equal(get('/deep/er/path', routing({ notFoundHandling: 'single-page-application' }), files), '200 /index.html');
  assert.equal(get('/blog/x/y', routing({ notFoundHandling: '404-page' }), files), '404 /blog/404.html');
  assert.equal(get('/other/y', routing({ notFoundHandling: '404-page' }), files), '404 /404.html');
  assert.equal(get('/blog/a', routing({ notFoundHandling: '404-page' }), files), '200 /blog/a.html', 'a found page is no 404');
  assert.equal(get('/x', routing({ notFoundHandling: '404-page' }), ['/index.html']), '404', 'no 404.html anywhere');
});

test('only GET and HEAD are served: another method on an asset is 405, on no asset 404', () => {
  const lookup = lookupOf(['/a.txt']);
  assert.equal(row(answer('POST', new URL('https://x/a.txt'), routing(), lookup)), '405');
  assert.equal(row(answer('HEAD', new URL('https://x/a.txt'), routing(), lookup)), '200 /a.txt');
  assert.equal(row(answer('DELETE', new URL('https://x/b.txt'), routing(), lookup)), '404');
});

test('paths are decoded segment by segment; a non-canonical spelling is redirected to the canonical one; dot segments name nothing', () => {
  const files = ['/a b.txt', '/dir/x.txt'];
  assert.equal(get('/a%20b.txt', routing(), files), '200 /a b.txt');
  assert.equal(get('//dir//x.txt', routing(), files), '307 /dir/x.txt');
  assert.equal(get('/%64ir/x.txt', routing(), files), '307 /dir/x.txt', 'an escaped letter');
  // The URL parser resolves dot segments (`%2e%2e` too) before the rules see the path: it cannot climb above /.
  assert.equal(get('/%2e%2e/dir/x.txt', routing(), files), '200 /dir/x.txt');
  assert.equal(get('/../../dir/x.txt', routing(), files), '200 /dir/x.txt');
  // An escaped slash is no separator to the parser; decoded, its dots are a key no manifest holds (schemas/assets.ts).
  assert.equal(decodePath('/%2e%2e%2fx'), '/../x');
  assert.equal(get('/%2e%2e%2fdir/x.txt', routing(), files), '404');
  assert.equal(get('/dir/..%2fx.txt', routing(), files), '404');
  assert.equal(get('/dir%2fx.txt', routing(), files), '307 /dir/x.txt', 'an encoded slash names the same file, spelled canonically');
  assert.equal(get('/%E0%A4%A', routing(), files), '404', 'a malformed escape stays as it is');
});

test('run_worker_first: true, false, and patterns where ! excludes', () => {
  assert.equal(workerFirst(routing({ runWorkerFirst: true }))('/x'), true);
  assert.equal(workerFirst(routing())('/x'), false);
  const first = workerFirst(routing({ runWorkerFirst: ['/api/*', '!/api/docs/*', '/exact'] }));
  assert.deepEqual(['/api/x', '/api/docs/y', '/api', '/exact', '/exactly', '/other'].map(first), [true, false, false, true, false, false]);
  assert.equal(workerFirst(routing({ runWorkerFirst: ['/a.b'] }))('/aXb'), false, 'only * is special');
});

test('the router: assets first when they answer; misses go to the worker unless static routing or a navigation gets the not-found handling', () => {
  const spa = routing({ notFoundHandling: 'single-page-application' });
  const lookup = lookupOf(['/index.html', '/app.js']);
  const first = (r: AssetRouting, path: string, headers: Record<string, string> = {}) =>
    assetsFirst('GET', new URL(`https://x${path}`), new Headers(headers), r, lookup, workerFirst(r));
  assert.equal(first(spa, '/app.js'), true);
  assert.equal(first(spa, '/route'), false, 'a miss: the worker');
  assert.equal(first(spa, '/route', { 'sec-fetch-mode': 'navigate' }), true, 'a navigation: the SPA');
  assert.equal(first({ ...spa, navigationPrefersAssets: false }, '/route', { 'sec-fetch-mode': 'navigate' }), false);
  const patterns = { ...spa, runWorkerFirst: ['/api/*'] };
  assert.equal(first(patterns, '/route'), true, 'static routing: every miss outside the patterns is the SPA');
  assert.equal(first(patterns, '/api/app.js'), false);
  assert.equal(first({ ...spa, hasWorker: false }, '/nothing'), true, 'assets-only: always the assets');
});

// The same decisions as Cloudflare's asset worker on workerd (miniflare), path by path.
let Miniflare: typeof import('miniflare').Miniflare | undefined;
try {
  ({ Miniflare } = await import('miniflare'));
} catch {
  Miniflare = undefined;
}
const noMiniflare = !Miniflare && process.env.CORDON_REQUIRE_ALL !== '1' ? 'miniflare is not installed (npm install)' : false;

test('every html_handling × not_found_handling answers as miniflare’s asset worker does', { skip: noMiniflare, timeout: 120_000 }, async () => {
  const files = [
    '/index.html',
    '/file.html',
    '/folder/index.html',
    '/404.html',
    '/sub/404.html',
    '/sub/page.html',
    '/index/index.html',
    '/a.txt',
    '/b/c.html',
    '/b.html',
  ];
  const dir = mkdtempSync(join(tmpdir(), 'cordon-mf-assets-'));
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), f);
  }
  const paths = [
    '/',
    '/index',
    '/index.html',
    '/file',
    '/file/',
    '/file.html',
    '/file/index',
    '/file/index.html',
    '/folder',
    '/folder/',
    '/folder.html',
    '/folder/index',
    '/folder/index.html',
    '/sub',
    '/sub/',
    '/sub/page',
    '/sub/page/',
    '/sub/page.html',
    '/sub/nothing',
    '/nothing',
    '/a.txt',
    '/a.txt/',
    '/a',
    '/b',
    '/b/',
    '/b/c',
    '/b.html',
    '/index/',
    '/index/index',
    '//file',
    '/fil%65',
    '/%2e%2e/file',
    '/folder/index.html/',
  ];
  const lookup = lookupOf(files);
  const mf = new Miniflare!({ modules: true, script: 'export default { fetch: () => new Response("worker") }', assets: { directory: dir } });
  try {
    for (const html_handling of HTML_HANDLING)
      for (const not_found_handling of NOT_FOUND_HANDLING) {
        await mf.setOptions({
          modules: true,
          script: 'export default { fetch: () => new Response("worker") }',
          assets: { directory: dir, routerConfig: { has_user_worker: false }, assetConfig: { html_handling, not_found_handling } },
        });
        const r = routing({ htmlHandling: html_handling, notFoundHandling: not_found_handling, hasWorker: false });
        for (const path of paths) {
          const res = await mf.dispatchFetch(`http://localhost${path}`, { redirect: 'manual' });
          const body = await res.text();
          const theirs = res.status === 307 ? `307 ${res.headers.get('location')}` : res.status === 404 && body === '' ? '404' : `${res.status} ${body}`;
          assert.equal(row(answer('GET', new URL(`http://localhost${path}`), r, lookup)), theirs, `${html_handling} ${not_found_handling} ${path}`);
        }
      }
  } finally {
    await mf.dispose();
  }
});

test('Content-Type by extension is what miniflare’s asset worker sends', { skip: noMiniflare, timeout: 60_000 }, async () => {
  const exts = [
    'js',
    'mjs',
    'css',
    'html',
    'json',
    'svg',
    'txt',
    'wasm',
    'png',
    'ico',
    'webmanifest',
    'xml',
    'map',
    'woff2',
    'md',
    'pdf',
    'webp',
    'mp4',
    'bin',
    'nosuchext',
  ];
  const dir = mkdtempSync(join(tmpdir(), 'cordon-mf-types-'));
  for (const e of exts) writeFileSync(join(dir, `f.${e}`), 'x');
  const mf = new Miniflare!({
    modules: true,
    script: 'export default { fetch: () => new Response("w") }',
    assets: { directory: dir, routerConfig: { has_user_worker: false } },
  });
  try {
    for (const e of exts) {
      const res = await mf.dispatchFetch(`http://localhost/f.${e}`);
      await res.arrayBuffer();
      assert.equal(contentType(`/f.${e}`) ?? null, res.headers.get('content-type'), e);
    }
  } finally {
    await mf.dispose();
  }
});
