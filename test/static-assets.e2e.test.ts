/**
 * Workers Static Assets through the CLI and a real mesh (docs/static-assets.md): create-cloudflare's
 * with-assets templates (JavaScript and TypeScript, plain and with a Durable Object) and its assets-only
 * template deployed unchanged, a
 * single-page application and 404 pages, run_worker_first, env.ASSETS.fetch() with a file of several
 * parts, ETag / If-None-Match, HEAD, methods, and a rollback bringing the old assets back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

function templatesDir(): string | undefined {
  try {
    return join(dirname(fileURLToPath(import.meta.resolve('create-cloudflare'))), '..', 'templates');
  } catch {
    return undefined;
  }
}
const TEMPLATES = templatesDir() ?? '';
const noTemplates = !existsSync(TEMPLATES) && process.env.CORDON_REQUIRE_ALL !== '1' ? 'create-cloudflare is not installed (npm install)' : false;

/** A project directory: `files` by relative path. */
function project(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-assets-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

describe('static assets', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });
  const host = (name: string) => `${name}.default.workers.localhost`;
  /** The first answer of a freshly deployed worker that is not the router's 404. */
  const first = (name: string, path: string, headers?: Record<string, string>) =>
    waitFor(`GET ${name}${path}`, async () => {
      const res = await fetchHost(mesh, host(name), path, { headers });
      return res.status === 404 && (await res.clone().text()).startsWith('No worker is routed') ? undefined : res;
    });

  test("create-cloudflare's hello-world-with-assets (js and ts) deploys unchanged: the page from the assets, the API from the worker", {
    skip: noTemplates,
  }, async () => {
    for (const lang of ['js', 'ts']) {
      const name = `with-assets-${lang}`;
      const dir = mkdtempSync(join(tmpdir(), 'cordon-c3-'));
      cpSync(join(TEMPLATES, 'hello-world-with-assets', lang), dir, { recursive: true });
      const r = await mesh.cli(['deploy', '--name', name], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /1 asset file\(s\), 1 uploaded/);
      const page = await first(name, '/');
      assert.equal(page.status, 200);
      assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.match(await page.text(), /This page comes from a static asset stored at `public\/index.html`/);
      const etag = page.headers.get('etag');
      assert.match(etag ?? '', /^"[0-9a-f]{64}"$/);
      assert.equal(page.headers.get('cache-control'), 'public, max-age=0, must-revalidate');
      // The worker answers what is no asset.
      assert.equal(await (await fetchHost(mesh, host(name), '/message')).text(), 'Hello, World!');
      assert.match(await (await fetchHost(mesh, host(name), '/random')).text(), /^[0-9a-f-]{36}$/);
      const missing = await fetchHost(mesh, host(name), '/nope');
      assert.equal(missing.status, 404);
      assert.equal(await missing.text(), 'Not Found', "the worker's own 404");
      // Revalidation, HEAD, the canonical URL, methods.
      assert.equal((await fetchHost(mesh, host(name), '/', { headers: { 'if-none-match': etag! } })).status, 304);
      assert.equal((await fetchHost(mesh, host(name), '/', { headers: { 'if-none-match': `W/${etag}` } })).status, 304);
      const head = await fetchHost(mesh, host(name), '/', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('etag'), etag);
      assert.equal(await head.text(), '');
      const redirect = await fetchHost(mesh, host(name), '/index.html?x=1');
      assert.equal(redirect.status, 307);
      assert.equal(redirect.headers.get('location'), '/?x=1');
      assert.equal((await fetchHost(mesh, host(name), '/', { method: 'POST', body: 'x' })).status, 405);
    }
  });

  test("create-cloudflare's hello-world-durable-object-with-assets (js and ts) deploys unchanged: the page, and the object's greeting", {
    skip: noTemplates,
  }, async () => {
    for (const lang of ['js', 'ts']) {
      const name = `do-assets-${lang}`;
      const dir = mkdtempSync(join(tmpdir(), 'cordon-c3-'));
      cpSync(join(TEMPLATES, 'hello-world-durable-object-with-assets', lang), dir, { recursive: true });
      const r = await mesh.cli(['deploy', '--name', name], dir);
      assert.equal(r.code, 0, r.stderr);
      const page = await first(name, '/');
      assert.equal(page.status, 200);
      assert.match(await page.text(), /fetch\('\/message'\)/);
      assert.equal(await (await fetchHost(mesh, host(name), '/message')).text(), 'Hello, world!');
    }
  });

  test("create-cloudflare's assets-only template deploys unchanged (no main): only the assets answer", { skip: noTemplates }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-c3-'));
    cpSync(join(TEMPLATES, 'hello-world-assets-only', 'templates'), dir, { recursive: true });
    const r = await mesh.cli(['deploy', '--name', 'assets-only'], dir);
    assert.equal(r.code, 0, r.stderr);
    const page = await first('assets-only', '/');
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const missing = await fetchHost(mesh, host('assets-only'), '/nope');
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), '');
  });

  test('a single-page application: run_worker_first paths get the worker, other misses the SPA; without patterns only navigations do (by date); env.ASSETS applies the fallback and streams big files', async () => {
    const dir = project({
      'wrangler.jsonc': JSON.stringify({
        name: 'spa',
        main: 'worker.js',
        compatibility_date: '2025-06-01',
        assets: { directory: './dist', binding: 'ASSETS', not_found_handling: 'single-page-application', run_worker_first: ['/api/*', '!/api/docs/*'] },
      }),
      'worker.js': `export default {
        async fetch(request, env) {
          const url = new URL(request.url);
          if (url.pathname === '/api/via-binding') {
            const r = await env.ASSETS.fetch(new URL('/deep/link', request.url));
            return new Response(r.status + ' ' + (await r.text()));
          }
          if (url.pathname === '/api/big') return env.ASSETS.fetch('http://x/big.bin');
          return new Response('worker ' + url.pathname);
        },
      };`,
      'dist/index.html': '<p>spa shell</p>',
      'dist/app.js': 'console.log(1)',
      'dist/api/data.json': '{"static":true}',
      'dist/api/docs/index.html': '<p>docs</p>',
      'dist/big.bin': Buffer.alloc(5 * 1024 * 1024 + 123, 7),
    });
    const r = await mesh.cli(['deploy'], dir);
    assert.equal(r.code, 0, r.stderr);
    const nav = await first('spa', '/some/route', { 'sec-fetch-mode': 'navigate' });
    assert.equal(nav.status, 200);
    assert.equal(await nav.text(), '<p>spa shell</p>');
    // With run_worker_first patterns (Cloudflare's static routing) every miss outside them is the SPA's.
    assert.equal(await (await fetchHost(mesh, host('spa'), '/some/route')).text(), '<p>spa shell</p>');
    const js = await fetchHost(mesh, host('spa'), '/app.js');
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(await (await fetchHost(mesh, host('spa'), '/api/data.json')).text(), 'worker /api/data.json', 'run_worker_first wins over an asset');
    assert.equal(await (await fetchHost(mesh, host('spa'), '/api/docs/')).text(), '<p>docs</p>', '! excludes from run_worker_first');
    assert.equal(await (await fetchHost(mesh, host('spa'), '/api/via-binding')).text(), '200 <p>spa shell</p>');
    const big = await fetchHost(mesh, host('spa'), '/big.bin');
    assert.equal(big.status, 200);
    const bytes = Buffer.from(await big.arrayBuffer());
    assert.equal(bytes.length, 5 * 1024 * 1024 + 123);
    assert.ok(bytes.every((b) => b === 7));
    const viaBinding = Buffer.from(await (await fetchHost(mesh, host('spa'), '/api/big')).arrayBuffer());
    assert.ok(viaBinding.equals(bytes), 'env.ASSETS streams a file of several parts');

    // Without patterns, only a navigation gets the fallback without the worker (from compatibility date 2025-04-01).
    const plain = project({
      'wrangler.json': JSON.stringify({
        name: 'spa-plain',
        main: 'worker.js',
        compatibility_date: '2025-06-01',
        assets: { directory: './dist', not_found_handling: 'single-page-application' },
      }),
      'worker.js': `export default { fetch: (request) => new Response('worker ' + new URL(request.url).pathname) };`,
      'dist/index.html': '<p>spa shell</p>',
    });
    await mesh.cliOk(['deploy'], plain);
    assert.equal(await (await first('spa-plain', '/x', { 'sec-fetch-mode': 'navigate' })).text(), '<p>spa shell</p>');
    assert.equal(await (await fetchHost(mesh, host('spa-plain'), '/x')).text(), 'worker /x', 'not a navigation: the worker');
    // Before that date, a navigation goes to the worker too.
    writeFileSync(
      join(plain, 'wrangler.json'),
      JSON.stringify({
        name: 'spa-old',
        main: 'worker.js',
        compatibility_date: '2025-01-01',
        assets: { directory: './dist', not_found_handling: 'single-page-application' },
      }),
    );
    await mesh.cliOk(['deploy'], plain);
    assert.equal(await (await first('spa-old', '/x', { 'sec-fetch-mode': 'navigate' })).text(), 'worker /x');
  });

  test('404 pages: the nearest 404.html up the path, with status 404; html_handling drop-trailing-slash redirects; _redirects and _headers', async () => {
    const dir = project({
      'wrangler.json': JSON.stringify({
        name: 'pages404',
        compatibility_date: '2025-06-01',
        assets: { directory: 'site', not_found_handling: '404-page', html_handling: 'drop-trailing-slash' },
      }),
      'site/index.html': 'home',
      'site/about.html': 'about',
      'site/404.html': 'top 404',
      'site/blog/404.html': 'blog 404',
      'site/blog/post/index.html': 'post',
      'site/_redirects': '/old-blog/* /blog/:splat 301\n/home / 302\n/team /about 200\n',
      'site/_headers': '/blog/*\n  X-Section: blog\n  ! Cache-Control\n',
    });
    const r = await mesh.cli(['deploy'], dir);
    assert.equal(r.code, 0, r.stderr);
    const home = await first('pages404', '/');
    assert.equal(await home.text(), 'home');
    const blogMiss = await fetchHost(mesh, host('pages404'), '/blog/nothing/here');
    assert.equal(blogMiss.status, 404);
    assert.equal(await blogMiss.text(), 'blog 404');
    const topMiss = await fetchHost(mesh, host('pages404'), '/nothing');
    assert.equal(topMiss.status, 404);
    assert.equal(await topMiss.text(), 'top 404');
    assert.equal(await (await fetchHost(mesh, host('pages404'), '/about')).text(), 'about');
    const slash = await fetchHost(mesh, host('pages404'), '/blog/post/');
    assert.equal(slash.status, 307);
    assert.equal(slash.headers.get('location'), '/blog/post');
    const post = await fetchHost(mesh, host('pages404'), '/blog/post');
    assert.equal(await post.text(), 'post');
    assert.equal(post.headers.get('x-section'), 'blog', '_headers');
    assert.equal(post.headers.get('cache-control'), null, '! removes');
    const moved = await fetchHost(mesh, host('pages404'), '/old-blog/post?x=1');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.get('location'), '/blog/post?x=1');
    assert.equal((await fetchHost(mesh, host('pages404'), '/home')).headers.get('location'), '/');
    assert.equal(await (await fetchHost(mesh, host('pages404'), '/team')).text(), 'about', 'a 200 rewrite');
    assert.equal((await fetchHost(mesh, host('pages404'), '/_redirects')).status, 404, 'the rule files are not served');
  });

  test("an asset hit runs no tenant code: the worker's fetch() never sees it", async () => {
    const dir = project({
      'wrangler.json': JSON.stringify({ name: 'lazy', main: 'w.js', assets: { directory: 'public' } }),
      'w.js': "export default { fetch: () => { console.log('fetch ran'); return new Response('from the worker'); } };",
      'public/page.html': 'static',
    });
    await mesh.cliOk(['deploy'], dir);
    for (let i = 0; i < 3; i++) assert.equal(await (await first('lazy', '/page')).text(), 'static');
    const logs = async () => (await mesh.cli(['logs', 'lazy'])).stdout;
    assert.doesNotMatch(await logs(), /fetch ran/);
    assert.equal(await (await fetchHost(mesh, host('lazy'), '/api')).text(), 'from the worker');
    // Logs arrive after the response: once the worker's own line is there, it is the only one.
    await waitFor('the worker’s log', async () => ((await logs()).includes('fetch ran') ? true : undefined));
    assert.equal((await logs()).match(/fetch ran/g)?.length, 1, 'only the request the worker answered ran it');
  });

  test('a rollback brings the old assets back; a redeploy uploads only what changed', async () => {
    const files = (v: string) => ({
      'wrangler.json': JSON.stringify({ name: 'rolling', assets: { directory: 'public' } }),
      'public/a.txt': `version ${v}`,
      'public/same.txt': 'unchanged',
    });
    const one = await mesh.cli(['deploy'], project(files('one')));
    assert.equal(one.code, 0, one.stderr);
    const v1 = /version ([0-9a-f]{64})/.exec(one.stdout)![1]!;
    assert.equal(await (await first('rolling', '/a.txt')).text(), 'version one');
    const two = await mesh.cli(['deploy'], project(files('two')));
    assert.equal(two.code, 0, two.stderr);
    assert.match(two.stderr, /2 asset file\(s\), 1 uploaded/);
    await waitFor('version two', async () => ((await (await fetchHost(mesh, host('rolling'), '/a.txt')).text()) === 'version two' ? true : undefined));
    const back = await mesh.cli(['rollback', 'rolling', v1]);
    assert.equal(back.code, 0, back.stderr);
    await waitFor('version one again', async () => ((await (await fetchHost(mesh, host('rolling'), '/a.txt')).text()) === 'version one' ? true : undefined));
    assert.equal(await (await fetchHost(mesh, host('rolling'), '/same.txt')).text(), 'unchanged');
  });
});
