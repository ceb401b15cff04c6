/**
 * The example apps of Hono and itty-router (each README's own example, unchanged) and create-cloudflare's
 * Hono template (with its static assets), deployed through the CLI as their users would, answering what
 * their documentation says.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchHost, ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const require = createRequire(import.meta.url);
/** A package's directory as the project's `npm install` would have it; undefined if not installed. */
function packageDir(name: string): string | undefined {
  return (require.resolve.paths(name) ?? []).map((p) => join(p, name)).find((d) => existsSync(join(d, 'package.json')));
}
const PACKAGES = ['hono', 'itty-router', 'create-cloudflare'] as const;
const missing = PACKAGES.filter((p) => !packageDir(p));
const skip = missing.length && process.env.CORDON_REQUIRE_ALL !== '1' ? `${missing.join(', ')} not installed (npm install)` : false;

/** A project copied outside the repository, with its dependencies in its node_modules. */
function project(from: string, deps: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-example-'));
  cpSync(from, dir, { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  for (const d of deps) symlinkSync(packageDir(d)!, join(dir, 'node_modules', d));
  return dir;
}

describe('the example apps of Hono and itty-router', { skip }, () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });
  /** A GET on the worker's default route (`<name>.default.workers.localhost`, as workers.dev), once deployed. */
  const get = (name: string, path: string) =>
    waitFor(`GET ${name}${path}`, async () => {
      const res = await fetchHost(mesh, `${name}.default.workers.localhost`, path);
      return res.status === 200 ? res : undefined;
    });

  test("Hono's README example deploys unchanged and answers", async () => {
    const r = await mesh.cli(['deploy'], project(join(ROOT, 'test/fixtures/projects/hono-readme'), ['hono']));
    assert.equal(r.code, 0, r.stderr);
    const res = await get('hono-readme', '/');
    assert.equal(await res.text(), 'Hono!');
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const missing = await fetchHost(mesh, 'hono-readme.default.workers.localhost', '/nope');
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), '404 Not Found', "Hono's own not-found answer");
  });

  test("itty-router's README example deploys unchanged and answers each route", async () => {
    const r = await mesh.cli(['deploy'], project(join(ROOT, 'test/fixtures/projects/itty-readme'), ['itty-router']));
    assert.equal(r.code, 0, r.stderr);
    // AutoRouter formats what a handler returns as JSON, strings included.
    assert.equal(await (await get('itty-readme', '/hello/world')).json(), 'Hello, world!');
    const json = await get('itty-readme', '/json');
    assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await json.json(), [1, 2, 3]);
    assert.equal(await (await get('itty-readme', '/promises')).json(), 'foo');
    assert.equal((await fetchHost(mesh, 'itty-readme.default.workers.localhost', '/nope')).status, 404, "AutoRouter's own 404");
  });

  test("create-cloudflare's Hono template deploys unchanged: its page from the assets, /message from Hono", async () => {
    const templates = join(packageDir('create-cloudflare')!, 'templates/hono/workers/templates');
    const r = await mesh.cli(['deploy', '--name', 'c3-hono'], project(templates, ['hono']));
    assert.equal(r.code, 0, r.stderr);
    const page = await get('c3-hono', '/');
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(await page.text(), /<html/i);
    const message = await fetchHost(mesh, 'c3-hono.default.workers.localhost', '/message');
    assert.equal(await message.text(), 'Hello Hono!');
    assert.match(message.headers.get('content-type') ?? '', /^text\/plain/);
    const missing = await fetchHost(mesh, 'c3-hono.default.workers.localhost', '/nope');
    assert.equal(missing.status, 404);
    assert.equal(await missing.text(), '404 Not Found', "neither an asset nor a route: Hono's own 404");
  });
});
