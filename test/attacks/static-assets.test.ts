/**
 * Static assets as hostile deploy input and hostile requests, through the real mesh
 * (docs/static-assets.md). Tenant beta's worker `vault` holds a secret asset; tenant alpha tries to reach
 * it, or anything outside its own manifest, by path (`..`, `%2e%2e`, encoded slashes and backslashes),
 * by Host and absolute-form tricks, by naming beta's file hash in its own manifest, and through the
 * upload API with its own tenant-bound token; and it deploys what the limits refuse: a symbolic link out
 * of the assets directory, a file over 25 MiB, more than 20,000 files, a path with `..`, bytes that do
 * not hash to their name. Every refusal is checked, and after each the bystander still serves its
 * secret to its own host (and only there).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const SECRET = 'BETA-SECRET-7f3a';
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

function project(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-attack-assets-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  return dir;
}

/** A raw request, so the request line (absolute-form, dot segments) reaches ingress exactly as written. */
function raw(mesh: TestMesh, host: string, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: Number(mesh.env.CORDON_HTTP_PORT), path: target, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('latin1').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject).end();
  });
}

describe('static assets: traversal, other tenants, limits', () => {
  let mesh: TestMesh;
  let alpha: string; // deploy + read, bound to tenant alpha
  const ALPHA = 'site.alpha.workers.localhost';
  const BETA = 'vault.beta.workers.localhost';

  const asAlpha = async (args: string[], cwd?: string) => {
    const saved = mesh.env.CORDON_TOKEN;
    mesh.env.CORDON_TOKEN = alpha;
    try {
      return await mesh.cli(args, cwd);
    } finally {
      if (saved === undefined) delete mesh.env.CORDON_TOKEN;
      else mesh.env.CORDON_TOKEN = saved;
    }
  };
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${alpha}`, ...(Buffer.isBuffer(body) ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body),
    });
  /** The bystander: beta's secret on beta's host, alpha's page on alpha's. */
  const bystanderUnharmed = async () => {
    assert.equal(await (await fetchHost(mesh, BETA, '/secret.txt')).text(), SECRET);
    assert.equal(await (await fetchHost(mesh, ALPHA, '/')).text(), 'alpha home');
  };

  before(async () => {
    mesh = await startTestMesh();
    const t = await mesh.cli(['tokens', 'create', '--scope', 'deploy,read', '--tenant', 'alpha']);
    assert.equal(t.code, 0, t.stderr);
    alpha = t.stdout.trim();
    const beta = await mesh.cli(
      ['deploy', '--tenant', 'beta'],
      project({
        'wrangler.json': JSON.stringify({ name: 'vault', assets: { directory: 'public' } }),
        'public/secret.txt': SECRET,
        'public/index.html': 'beta home',
      }),
    );
    assert.equal(beta.code, 0, beta.stderr);
    const site = await asAlpha(
      ['deploy'],
      project({
        'wrangler.json': JSON.stringify({ name: 'site', main: 'w.js', assets: { directory: 'public', not_found_handling: 'single-page-application' } }),
        'w.js': 'export default { fetch: (r) => new Response("alpha worker " + new URL(r.url).pathname) }',
        'public/index.html': 'alpha home',
      }),
    );
    assert.equal(site.code, 0, site.stderr);
    await waitFor('both deployed', async () =>
      (await fetchHost(mesh, BETA, '/secret.txt')).status === 200 && (await fetchHost(mesh, ALPHA, '/')).status === 200 ? true : undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
  });

  test('paths cannot climb out of the manifest: dot segments, encoded dots, slashes and backslashes, absolute-form and odd Hosts', async () => {
    const targets = [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/%2e%2e%2fsecret.txt',
      '/..%2f..%2fbeta%2fvault%2fsecret.txt',
      '/..%5csecret.txt',
      '/%2e%2e%5c%2e%2e%5csecret.txt',
      '//secret.txt',
      '/.%2e/.%2e/supervisor/code.db',
      '/../../../../etc/passwd',
      '/%00/secret.txt',
      `http://${BETA}/secret.txt`,
    ];
    for (const target of targets) {
      const res = await raw(mesh, ALPHA, target);
      assert.ok(!res.body.includes(SECRET), `${target} on alpha's host must not reach beta's asset (${res.status})`);
      assert.ok(!res.body.includes('root:'), `${target} must not read a host file`);
    }
    // The same request spelt with alpha's host in other cases or with a trailing dot stays alpha's.
    for (const host of ['SITE.ALPHA.workers.localhost', `${ALPHA}.`, `${ALPHA}:80`]) {
      const res = await raw(mesh, host, '/secret.txt');
      assert.ok(!res.body.includes(SECRET), `Host ${host}`);
    }
    await bystanderUnharmed();
  });

  test("naming beta's file hash in alpha's manifest does not reach beta's bytes; the upload API stays within alpha's tenant", async () => {
    const hash = sha256(SECRET);
    // Alpha's store does not have it (asking tells nothing of beta's).
    const missing = await api('POST', '/v1/assets/missing', { name: 'thief', hashes: [hash] });
    assert.equal(missing.status, 200);
    assert.deepEqual(await missing.json(), { worker: 'alpha/thief', missing: [hash] });
    // A deploy whose manifest lists it without uploading it is refused.
    const deploy = await api('POST', '/v1/workers', {
      name: 'thief',
      mainModule: 'w.js',
      modules: [{ name: 'w.js', type: 'esm', content: 'export default {}' }],
      assets: { routing: {}, files: [{ path: '/stolen.txt', hash, size: SECRET.length }] },
    });
    assert.equal(deploy.status, 400);
    assert.match(((await deploy.json()) as { error: string }).error, /were not uploaded \(first: \/stolen\.txt\)/);
    // Beta's worker through alpha's token: neither asking nor uploading.
    assert.equal((await api('POST', '/v1/assets/missing', { tenant: 'beta', name: 'vault', hashes: [hash] })).status, 403);
    assert.equal((await api('PUT', `/v1/workers/beta/vault/assets/${sha256('evil')}`, Buffer.from('evil'))).status, 403);
    assert.equal((await fetchHost(mesh, 'thief.alpha.workers.localhost', '/stolen.txt')).status, 404);
    // A _redirects rewrite (200) to beta's URL, sent past the CLI: refused; and a rewrite only ever names a path of its own manifest.
    const mine = Buffer.from('mine');
    assert.equal((await api('PUT', `/v1/workers/alpha/thief/assets/${sha256(mine)}`, mine)).status, 201);
    const rewrite = (to: string) =>
      api('POST', '/v1/workers', {
        name: 'thief',
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: 'export default {}' }],
        assets: {
          routing: { hasWorker: false },
          files: [{ path: '/mine.txt', hash: sha256(mine), size: 4 }],
          redirects: [{ from: '/steal', to, status: 200, line: 1 }],
        },
      });
    const absolute = await rewrite(`http://${BETA}/secret.txt`);
    assert.equal(absolute.status, 400);
    assert.match(((await absolute.json()) as { error: string }).error, /a 200 \(rewrite\) goes to a path of this site/);
    assert.equal((await rewrite('/../../beta/vault/secret.txt')).status, 201);
    const stolen = await waitFor('thief deployed', async () => {
      const res = await fetchHost(mesh, 'thief.alpha.workers.localhost', '/steal');
      return res.status === 404 && (await res.clone().text()).startsWith('No worker is routed') ? undefined : res;
    });
    assert.equal(stolen.status, 404);
    assert.ok(!(await stolen.text()).includes(SECRET));
    await bystanderUnharmed();
  });

  test('a symbolic link out of the assets directory is refused at deploy, and nothing is deployed', async () => {
    const outside = mkdtempSync(join(tmpdir(), 'cordon-outside-'));
    writeFileSync(join(outside, 'id_rsa'), 'PRIVATE KEY');
    const dir = project({ 'wrangler.json': JSON.stringify({ name: 'linky', assets: { directory: 'public' } }), 'public/index.html': 'x' });
    symlinkSync(join(outside, 'id_rsa'), join(dir, 'public', 'key.txt'));
    const r = await asAlpha(['deploy'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /assets: key\.txt is a symbolic link to .*id_rsa, outside the assets directory/);
    // A link to a directory outside too, and a link looping back inside.
    const dir2 = project({ 'wrangler.json': JSON.stringify({ name: 'linky', assets: { directory: 'public' } }), 'public/index.html': 'x' });
    symlinkSync(outside, join(dir2, 'public', 'etc'));
    assert.match((await asAlpha(['deploy'], dir2)).stderr, /assets: etc is a symbolic link to .*outside the assets directory/);
    const dir3 = project({ 'wrangler.json': JSON.stringify({ name: 'linky', assets: { directory: 'public' } }), 'public/sub/index.html': 'x' });
    symlinkSync('..', join(dir3, 'public', 'sub', 'up'));
    assert.match((await asAlpha(['deploy'], dir3)).stderr, /is a link back to a directory already included/);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /alpha\/linky/);
    await bystanderUnharmed();
  });

  test('a file over 25 MiB, more than 20,000 files, a path with .., and bytes that do not match their hash are refused', async () => {
    // Through the CLI: refused before anything is uploaded, naming the file.
    const big = project({
      'wrangler.json': JSON.stringify({ name: 'huge', assets: { directory: 'public' } }),
      'public/big.bin': Buffer.alloc(25 * 1024 * 1024 + 1),
    });
    const r = await asAlpha(['deploy'], big);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /assets: big\.bin is 26214401 bytes; a static asset is at most 26214400 bytes/);
    const many = project({ 'wrangler.json': JSON.stringify({ name: 'many', assets: { directory: 'public' } }) });
    mkdirSync(join(many, 'public'));
    for (let i = 0; i <= 20_000; i++) writeFileSync(join(many, 'public', `${i}.txt`), '');
    const m = await asAlpha(['deploy'], many);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /more than 20000 files/);
    // Straight to the API, past the CLI: the supervisor refuses the same.
    const huge = await api('PUT', `/v1/workers/alpha/huge/assets/${'0'.repeat(64)}`, Buffer.alloc(25 * 1024 * 1024 + 1));
    assert.equal(huge.status, 413);
    const lying = await api('PUT', `/v1/workers/alpha/liar/assets/${sha256('truth')}`, Buffer.from('lie'));
    assert.equal(lying.status, 400);
    assert.match(((await lying.json()) as { error: string }).error, /hash to/);
    const deploy = (files: unknown[]) =>
      api('POST', '/v1/workers', {
        name: 'crafted',
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: 'export default {}' }],
        assets: { routing: {}, files },
      });
    const tooMany = await deploy(Array.from({ length: 20_001 }, (_, i) => ({ path: `/${i}`, hash: sha256(String(i)), size: 1 })));
    assert.equal(tooMany.status, 400);
    assert.match(((await tooMany.json()) as { error: string }).error, /at most 20000 asset files/);
    // Paths long enough that the manifest would not fit the message a sandbox loads a bundle in.
    const longPaths = await deploy(Array.from({ length: 5000 }, (_, i) => ({ path: `/${String(i).padStart(1000, 'p')}`, hash: sha256(String(i)), size: 1 })));
    assert.equal(longPaths.status, 400);
    assert.match(((await longPaths.json()) as { error: string }).error, /asset manifest is over 4194304 bytes/);
    for (const path of ['/../x', '/a/../b', '/a\\b', '/a//b', 'relative', '/a\u0000b']) {
      const bad = await deploy([{ path, hash: sha256('x'), size: 1 }]);
      assert.equal(bad.status, 400, path);
    }
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /alpha\/(huge|many|crafted|liar)/);
    await bystanderUnharmed();
  });

  test('asset bytes are encrypted at rest (a part moved to another worker, file or place does not open: asset-store.test.ts)', async () => {
    for (const file of ['code.db', 'code.db-wal']) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(mesh.dataDir, 'supervisor', file));
      } catch {
        continue; // no WAL left
      }
      assert.ok(!bytes.includes(Buffer.from(SECRET)), `beta's secret is not in ${file} in the clear`);
    }
    await bystanderUnharmed();
  });
});
