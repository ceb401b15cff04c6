/**
 * `_redirects` and `_headers`: the examples of Cloudflare's documentation read and applied, what is
 * refused at deploy, and the same files compared request by request with miniflare's asset worker on
 * workerd, which reads them with Cloudflare's own parsers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseHeaders, parseRedirects } from '../../../cli/asset-rules.ts';
import { AssetRouting } from '../../../schemas/assets.ts';
import { answer, assetsFirst, workerFirst, type AssetAnswer } from './routing.ts';
import { AssetRules } from './rules.ts';

const REDIRECTS = `# Cloudflare's examples
/home301 / 301
/home302 / 302
/querystrings /?query=string 301
/twitch https://twitch.tv
/trailing /trailing/ 301
/notrailing/ /nottrailing 301
/page/ /page2/#fragment 301
/blog/* https://blog.my.domain/:splat
/products/:code/:name /products?code=:code&name=:name
/logo /static/a.css 200
/about /about.html 200
/docs/* /guide/:splat 200
https://old.example.com/* https://new.example.com/:splat 301
/gone /missing.html 200
`;
const HEADERS = `/secure/page
  X-Frame-Options: DENY
  X-Content-Type-Options: nosniff
  Referrer-Policy: no-referrer

/*
  X-Robots-Tag: noindex
  ! Cache-Control

/static/:file
  X-Static: :file
  X-Robots-Tag: extra
`;
const FILES = ['/index.html', '/about.html', '/guide/intro.html', '/secure/page.html', '/static/a.css'];

const lookupOf = (paths: string[]) => {
  const m = new Map(paths.map((p, i) => [p, `h${i}`]));
  return (p: string) => m.get(p);
};
function row(a: AssetAnswer): string {
  if (a.kind === 'asset') return `${a.status} ${a.path}`;
  if (a.kind === 'redirect') return `${a.status} ${a.location}`;
  return a.kind === 'not-found' ? `404${a.rewritten ? ' rewritten' : ''}` : '405';
}

test("_redirects: Cloudflare's examples, exact rules before patterns, placeholders and splats, 200 rewrites", () => {
  const rules = new AssetRules(parseRedirects(REDIRECTS), []);
  const r = AssetRouting.parse({});
  const go = (u: string, method = 'GET') => row(answer(method, new URL(u), r, lookupOf(FILES), rules));
  assert.equal(go('https://x.test/home301?a=1'), '301 /?a=1', 'the request query goes along');
  assert.equal(go('https://x.test/home302'), '302 /');
  assert.equal(go('https://x.test/querystrings?a=1'), '301 /?query=string', "the rule's own query wins");
  assert.equal(go('https://x.test/twitch'), '302 https://twitch.tv/');
  assert.equal(go('https://x.test/page/'), '301 /page2/#fragment');
  assert.equal(go('https://x.test/blog/a/b'), '302 https://blog.my.domain/a/b');
  assert.equal(go('https://x.test/products/42/shoe'), '302 /products?code=42&name=shoe');
  assert.equal(go('https://x.test/logo'), '200 /static/a.css', 'a rewrite serves the other file at this URL');
  assert.equal(
    go('https://x.test/about'),
    '307 /about',
    'a rewrite to an .html file meets html_handling, which sends it to its pretty URL (as Cloudflare does)',
  );
  assert.equal(go('https://x.test/docs/intro'), '200 /guide/intro.html');
  assert.equal(go('https://old.example.com/x/y'), '301 https://new.example.com/x/y');
  assert.equal(go('https://x.test/gone'), '404 rewritten');
  assert.equal(go('https://x.test/home301', 'POST'), '301 /', 'redirects answer every method');
  // A rewrite to nothing is the assets' 404 even with a worker; a plain miss is the worker's.
  const worker = AssetRouting.parse({ hasWorker: true });
  const first = (u: string) => assetsFirst('GET', new URL(u), new Headers(), worker, lookupOf(FILES), workerFirst(worker), rules);
  assert.equal(first('https://x.test/gone'), true);
  assert.equal(first('https://x.test/home301'), true);
  assert.equal(first('https://x.test/elsewhere'), false);
});

test('_headers: set, append across rules, remove, placeholders, on every answer the assets give', () => {
  const rules = new AssetRules([], parseHeaders(HEADERS));
  const apply = (u: string, h: [string, string][]) => rules.applyHeaders(new URL(u), h);
  assert.deepEqual(apply('https://x.test/secure/page', [['cache-control', 'public']]), [
    ['x-frame-options', 'DENY'],
    ['x-content-type-options', 'nosniff'],
    ['referrer-policy', 'no-referrer'],
    ['x-robots-tag', 'noindex'],
  ]);
  assert.deepEqual(apply('https://x.test/static/a.css', [['x-robots-tag', 'from the asset']]), [
    ['x-robots-tag', 'noindex'],
    ['x-static', 'a.css'],
    ['x-robots-tag', 'extra'],
  ]);
});

test('rule files Cloudflare would reject are refused with their line; patterns that could match slowly too', () => {
  assert.throws(() => parseRedirects('/a'), /_redirects:1: expected "source destination \[status\]"/);
  assert.throws(() => parseRedirects('# c\n/a /b 404'), /_redirects:2: status 404 is not one of/);
  assert.throws(() => parseRedirects('/a https://x.test/ 200'), /a 200 \(rewrite\) goes to a path of this site/);
  assert.throws(() => parseRedirects('/a /b\n/a /c'), /_redirects:2: \/a already has a rule above/);
  assert.throws(() => parseRedirects('/a/* /b/:splat\n/c/*/d/* /e'), /_redirects:2: .*may have one \* at most/);
  assert.throws(() => parseRedirects('/a/:x:y /b'), /a :placeholder must be a whole path segment/);
  assert.throws(() => parseRedirects('/a/:x/:x /b'), /each :placeholder is named once/);
  assert.throws(() => parseRedirects(Array.from({ length: 101 }, (_, i) => `/p${i}/* /q`).join('\n')), /_redirects:101: over Cloudflare's limit/);
  assert.throws(() => parseHeaders('  X-A: b'), /_headers:1: a header line before any URL pattern/);
  assert.throws(() => parseHeaders('/a\n  no colon'), /_headers:2: expected "Name: value"/);
  assert.throws(() => parseHeaders('/a\n  Bad Name: x'), /_headers:1: .*not a valid header name/);
  assert.throws(() => parseHeaders(Array.from({ length: 101 }, (_, i) => `/p${i}\n  X: y`).join('\n')), /over Cloudflare's limit of 100 rules/);
});

// The same files on Cloudflare's asset worker (miniflare on workerd), which reads them with Cloudflare's parsers.
let Miniflare: typeof import('miniflare').Miniflare | undefined;
try {
  ({ Miniflare } = await import('miniflare'));
} catch {
  Miniflare = undefined;
}
const noMiniflare = !Miniflare && process.env.CORDON_REQUIRE_ALL !== '1' ? 'miniflare is not installed (npm install)' : false;

test('the rules answer as miniflare’s asset worker does, request by request', { skip: noMiniflare, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-mf-rules-'));
  for (const f of FILES) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), f);
  }
  // Miniflare reads the two files with Cloudflare's own parsers.
  writeFileSync(join(dir, '_redirects'), REDIRECTS);
  writeFileSync(join(dir, '_headers'), HEADERS);
  const rules = new AssetRules(parseRedirects(REDIRECTS), parseHeaders(HEADERS));
  const routing = AssetRouting.parse({ hasWorker: false });
  const mf = new Miniflare!({
    modules: true,
    script: 'export default { fetch: () => new Response("worker") }',
    assets: { directory: dir, routerConfig: { has_user_worker: false } },
  });
  try {
    const urls = [
      '/home301?a=1',
      '/home302',
      '/querystrings?a=1',
      '/twitch',
      '/trailing',
      '/notrailing/',
      '/page/',
      '/blog/a/b',
      '/products/42/shoe',
      '/logo',
      '/about',
      '/docs/intro',
      '/gone',
      '/secure/page',
      '/static/a.css',
      '/',
      '/nothing',
    ];
    for (const path of urls) {
      const url = new URL(`http://localhost${path}`);
      const res = await mf.dispatchFetch(url, { redirect: 'manual' });
      const body = await res.text();
      const a = answer('GET', url, routing, lookupOf(FILES), rules);
      const mine = row(a);
      const theirs =
        res.status >= 300 && res.status < 400
          ? `${res.status} ${res.headers.get('location')}`
          : res.status === 404 && body === ''
            ? '404'
            : `${res.status} ${body}`;
      assert.equal(mine.replace(' rewritten', ''), theirs, path);
      const mineHeaders = new Headers(rules.applyHeaders(url, []));
      for (const [name, value] of mineHeaders) assert.equal(res.headers.get(name), value, `${path} ${name}`);
    }
  } finally {
    await mf.dispose();
  }
});

test('a destination that is no URL is refused at deploy', () => {
  assert.throws(() => parseRedirects('/a http://[oops'), /_redirects:1: the destination is not a URL or path/);
});
