/**
 * Cloudflare projects deployed as their users lay them out, through the CLI and a real mesh: npm packages
 * without an `exports` map, the `workerd` condition, module rules (.wasm, .html, .txt, .bin, and .sql by a
 * rule), no_bundle and find_additional_modules, wrangler.toml and its environments, service-worker syntax, create-cloudflare's
 * own templates unchanged, and the sections Cordon does not implement refused at deploy, by name.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchHost, ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const PROJECTS = join(ROOT, 'test/fixtures/projects');
/** The templates `npm create cloudflare` copies, from the package (a devDependency). */
function templatesDir(): string | undefined {
  try {
    return join(dirname(fileURLToPath(import.meta.resolve('create-cloudflare'))), '..', 'templates');
  } catch {
    return undefined;
  }
}
const TEMPLATES = templatesDir() ?? '';
const noTemplates = !existsSync(TEMPLATES) && process.env.CORDON_REQUIRE_ALL !== '1' ? 'create-cloudflare is not installed (npm install)' : false;

/** A template or fixture copied as `npm create cloudflare` would leave it, outside the repository. */
function project(from: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-project-'));
  cpSync(from, dir, { recursive: true });
  return dir;
}

describe('deploying Cloudflare projects unchanged', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  const get = (path: string) =>
    waitFor(`GET ${path}`, async () => {
      const res = await fetch(`${mesh.httpUrl}${path}`);
      return res.status === 200 ? res : undefined;
    });

  test('npm packages without exports, the workerd condition, JSX in .js, and .wasm/.html/.txt/.bin/.sql modules', async () => {
    const r = await mesh.cli(['deploy', '--route', '*/npm*'], project(join(PROJECTS, 'npm-style')));
    assert.equal(r.code, 0, r.stderr);
    const body = await (await get('/npm')).json();
    assert.deepEqual(body, {
      where: 'module',
      build: 'workerd',
      kind: 'commonjs main',
      page: '<p>from a package</p>\n',
      hello: 'hello from a text file\n',
      index: '<h1>Hello</h1>\n',
      four: [0, 1, 2, 255],
      fourIsArrayBuffer: true,
      add: 42,
      schema: 'SELECT 1;\n',
      jsx: '<b>bold</b>',
    });
  });

  test('no_bundle: main and the modules its rules match uploaded as they are, importing each other (ESM, CommonJS, Text) at run time', async () => {
    const r = await mesh.cli(['deploy'], project(join(PROJECTS, 'no-bundle')));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await (await get('/nobundle')).json(), { greet: 'hello modules!', legacy: 42, words: 'three words here\n' });
  });

  test('find_additional_modules: the bundle imports the modules found under base_dir, import() by a computed name included', async () => {
    const r = await mesh.cli(['deploy'], project(join(PROJECTS, 'find-modules')));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await (await get('/findmodules?lang=fr')).json(), { static: 'hello', chosen: 'BONJOUR !' });
    assert.deepEqual(await (await get('/findmodules')).json(), { static: 'hello', chosen: 'HELLO' });
    const missing = await fetch(`${mesh.httpUrl}/findmodules?lang=de`);
    assert.equal(missing.status, 500, 'a module that is not there fails the request, as on workerd');
  });

  test('a wrangler.toml project: routes, vars and define from the TOML', async () => {
    const r = await mesh.cli(['deploy'], project(join(PROJECTS, 'toml')));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^deployed default\/toml-worker version [0-9a-f]{64} on \*\/toml\*$/m);
    assert.equal(await (await get('/toml')).text(), 'hello from toml (defined)');
  });

  test('--env: an environment inherits main and the date, not vars or define, and is named <name>-<env> unless it names itself', async () => {
    const dir = project(join(PROJECTS, 'environments'));
    const staging = await mesh.cli(['deploy', '--env', 'staging'], dir);
    assert.equal(staging.code, 0, staging.stderr);
    assert.match(staging.stdout, /^deployed default\/envs-staging version [0-9a-f]{64} on \*\/staging-envs\*$/m);
    assert.match(staging.stderr, /define: the top level's is not inherited by environments \(as in wrangler\); env\.staging has none/);
    assert.deepEqual(await (await get('/staging-envs')).json(), { stage: 'staging', flavour: null });
    const named = await mesh.cli(['deploy', '--env', 'named'], dir);
    assert.match(named.stdout, /^deployed default\/custom-name version [0-9a-f]{64} on \*\/named-envs\*$/m);
    assert.deepEqual(await (await get('/named-envs')).json(), { stage: null, flavour: null });
    const top = await mesh.cli(['deploy'], dir);
    assert.match(top.stdout, /^deployed default\/envs version [0-9a-f]{64} on \*\/envs\*$/m);
    assert.match(top.stderr, /defines the environment\(s\) staging, named; without --env the top level is deployed/);
    assert.deepEqual(await (await get('/envs')).json(), { stage: 'production', flavour: 'top' });
    const none = await mesh.cli(['deploy', '--env', 'prod'], dir);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no environment "prod" \(an \[env\.prod\] section\); it defines: staging, named/);
  });

  test('a service-worker project (addEventListener, vars as globals)', async () => {
    const r = await mesh.cli(['deploy', '--route', '*/sw*'], project(join(PROJECTS, 'service-worker')));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await (await get('/sw/x')).text(), 'hello from a service worker at /sw/x');
  });

  test('workers_dev: false deploys without the default route; without it the worker answers there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-project-'));
    writeFileSync(join(dir, 'index.js'), `export default { fetch: () => new Response('dev') }`);
    const deploy = (name: string, extra: object) => {
      writeFileSync(join(dir, 'wrangler.json'), JSON.stringify({ name, main: 'index.js', ...extra }));
      return mesh.cli(['deploy'], dir);
    };
    const off = await deploy('nodev', { workers_dev: false });
    assert.equal(off.code, 0, off.stderr);
    assert.doesNotMatch(off.stdout, /default route/);
    const on = await deploy('withdev', {});
    assert.match(on.stdout, /also on withdev\.default\.workers\.localhost\/\* \(its default route\)/);
    await waitFor('the default route', async () => ((await fetchHost(mesh, 'withdev.default.workers.localhost', '/')).status === 200 ? true : undefined));
    assert.equal((await fetchHost(mesh, 'nodev.default.workers.localhost', '/')).status, 404);
  });

  test('sections Cordon does not implement are refused, every one named, and nothing is deployed', async () => {
    const r = await mesh.cli(['deploy', '--route', '*/refused*'], project(join(PROJECTS, 'refused')));
    assert.equal(r.code, 1);
    for (const section of ['r2_buckets: R2 is not implemented', 'vectorize: Vectorize is not implemented']) {
      assert.ok(r.stderr.includes(section), `${section} in: ${r.stderr}`);
    }
    assert.doesNotMatch(r.stderr, /observability/, "a section about Cloudflare's platform only is no reason to refuse");
    const list = await mesh.cli(['workers']);
    assert.doesNotMatch(list.stdout, /refused/);
    // The workers deployed before are unharmed.
    assert.equal(await (await get('/toml')).text(), 'hello from toml (defined)');
  });

  test("create-cloudflare's hello-world templates (TypeScript and JavaScript) deploy unchanged and answer", { skip: noTemplates }, async () => {
    for (const lang of ['ts', 'js']) {
      const r = await mesh.cli(['deploy', '--name', `hello-world-${lang}`, '--route', `*/c3-hello-${lang}`], project(join(TEMPLATES, 'hello-world', lang)));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await (await get(`/c3-hello-${lang}`)).text(), 'Hello World!');
    }
  });

  test("create-cloudflare's Durable Object template (TypeScript and JavaScript) deploys unchanged and answers as on workerd", {
    skip: noTemplates,
  }, async () => {
    for (const lang of ['ts', 'js']) {
      const r = await mesh.cli(['deploy', '--name', `do-${lang}`, '--route', `*/c3-do-${lang}`], project(join(TEMPLATES, 'hello-world-durable-object', lang)));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await (await get(`/c3-do-${lang}`)).text(), 'Hello, world!');
    }
  });

  test("create-cloudflare's Queues template (TypeScript and JavaScript) deploys unchanged and consumes", { skip: noTemplates }, async () => {
    // Both variants use the queue my-queue, and a queue has one consumer: the JavaScript one in a tenant of its own.
    for (const [lang, tenant, name, path] of [
      ['ts', 'default', 'q', '/q'],
      ['js', 'c3js', 'q-js', '/qjs'],
    ] as const) {
      const queues = await mesh.cli(['deploy', '--name', name, '--tenant', tenant, '--route', `*${path}`], project(join(TEMPLATES, 'queues', lang)));
      assert.equal(queues.code, 0, queues.stderr);
      assert.equal(await (await get(path)).text(), 'Sent message to the queue');
      // The consumer's default max_batch_timeout is 5 s: the message is logged by queue() within a few ticks after.
      const processed = new RegExp(`^message [0-9a-f]{32} processed: \\{"url":"http://[^"]*${path}","method":"GET","headers":\\{`);
      const consumed = async () => {
        const lines = (await mesh.cli(['logs', `${tenant}/${name}`])).stdout.split('\n').filter(Boolean);
        return lines.map((l) => (JSON.parse(l) as { message: string }).message).find((m) => processed.test(m));
      };
      assert.match(await waitFor(`the ${lang} queue consumer`, consumed, 30_000, 500), processed);
    }
    assert.equal(await (await get('/c3-hello-ts')).text(), 'Hello World!', 'the workers already deployed keep serving');
  });
});
