/**
 * create-cloudflare's Workers templates beyond those in test/bundle.e2e.test.ts: scheduled and
 * hello-world-workflows (JavaScript and TypeScript) and openapi (chanfana + Hono + zod), each copied as
 * `npm create cloudflare` leaves it (its placeholders filled in, its dependencies in node_modules) and
 * deployed unchanged through the CLI. What the templates fetch from api.cloudflare.com is answered by a
 * stand-in on loopback: a test DNS server names it 127.0.0.1, the deployer declares the origin (an
 * operator's grant, as for any private origin), and egress trusts the stand-in's certificate. The stand-in
 * listens on port 443, as the templates' URL says, so these tests need root (or the port) to run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorker } from '../cli/bundle.ts';
import { type HttpsStandIn, mayListen443, startHttpsStandIn } from './helpers/https-stand-in.ts';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const require = createRequire(import.meta.url);
/** A package's directory as the project's `npm install` would have it; undefined if not installed. */
const packageDir = (name: string) => (require.resolve.paths(name) ?? []).map((p) => join(p, name)).find((d) => existsSync(join(d, 'package.json')));
const TEMPLATES = join(packageDir('create-cloudflare') ?? '', 'templates');

const missing = ['create-cloudflare', 'chanfana', 'hono', 'zod'].filter((p) => !packageDir(p)).map((p) => `${p} is not installed (npm ci)`);
if (!(await mayListen443('127.0.0.1'))) missing.push('port 443 on 127.0.0.1 cannot be listened on (the stand-in for api.cloudflare.com needs it: run as root)');
const skip = missing.length && process.env.CORDON_REQUIRE_ALL !== '1' ? missing.join('; ') : false;

/** What api.cloudflare.com/client/v4/ips answers (its shape, a shortened list). */
const IPS = { result: { ipv4_cidrs: ['173.245.48.0/20'], ipv6_cidrs: ['2400:cb00::/32'], etag: 'stand-in' }, success: true, errors: [], messages: [] };

/**
 * A template copied as `npm create cloudflare` leaves it: the same substitution of its placeholders in
 * wrangler.jsonc (the project's name, a compatibility date), and its dependencies in node_modules.
 */
function template(path: string, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-c3-'));
  cpSync(join(TEMPLATES, path), dir, { recursive: true });
  const config = join(dir, 'wrangler.jsonc');
  writeFileSync(config, readFileSync(config, 'utf8').replaceAll('<WORKER_NAME>', name).replaceAll('<COMPATIBILITY_DATE>', '2026-07-01'));
  const { dependencies = {} } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  mkdirSync(join(dir, 'node_modules'));
  for (const d of Object.keys(dependencies)) symlinkSync(packageDir(d)!, join(dir, 'node_modules', d));
  return dir;
}

describe("create-cloudflare's scheduled, workflows and openapi templates", { skip }, () => {
  let mesh: TestMesh;
  let api: HttpsStandIn;
  const apiHits: string[] = [];
  const deploy = async (dir: string, extra: string[] = []) => {
    const r = await mesh.cli(['deploy', '--origin', 'https://api.cloudflare.com', ...extra], dir);
    assert.equal(r.code, 0, r.stderr);
    return r;
  };
  const get = (name: string, path: string) =>
    waitFor(`GET ${name}${path}`, async () => {
      const res = await fetchHost(mesh, `${name}.default.workers.localhost`, path);
      return res.status === 200 ? res : undefined;
    });
  const logs = async (name: string) =>
    (await mesh.cli(['logs', name])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { message: string }).message);

  before(async () => {
    api = await startHttpsStandIn('api.cloudflare.com', '127.0.0.1', (req, res) => {
      apiHits.push(`${req.method} ${req.url}`);
      if (req.url !== '/client/v4/ips') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(IPS));
    });
    mesh = await startTestMesh(api.env);
  });
  after(async () => {
    await mesh?.stop();
    await api?.stop();
  });

  test('scheduled (TypeScript and JavaScript): its page, then its cron triggered: scheduled() fetches the API and logs the result', async () => {
    for (const lang of ['ts', 'js']) {
      const name = `c3-scheduled-${lang}`;
      await deploy(template(`scheduled/${lang}`, name));
      assert.equal(
        await (await get(name, '/')).text(),
        `To test the scheduled handler, ensure you have used the "--test-scheduled" then try running "curl http://${name}.default.workers.localhost/__scheduled?cron=*+*+*+*+*".`,
      );
      const before = apiHits.length;
      // The template's trigger is "* * * * *": `cordon trigger` runs it now rather than at the next minute.
      const fired = await mesh.cli(['trigger', name]);
      assert.equal(fired.code, 0, fired.stderr);
      assert.ok(apiHits.slice(before).includes('GET /client/v4/ips'), 'scheduled() reached the API');
      await waitFor('the log line of scheduled()', async () => (await logs(name)).includes('trigger fired at * * * * *: success') || undefined);
    }
  });

  test('hello-world-workflows (TypeScript and JavaScript): an instance created by what the worker serves runs every step to complete', async () => {
    const run = async (lang: string) => {
      const name = `c3-wf-${lang}`;
      await deploy(template(`hello-world-workflows/${lang}`, name));
      const created = (await (await get(name, '/')).json()) as { id: string; details: { status: string } };
      assert.match(created.id, /^[0-9a-f-]{36}$/, 'an id Workflows would give (a UUID)');
      assert.ok(['queued', 'running'].includes(created.details.status), JSON.stringify(created));
      // The template waits (up to a minute) for an event of type "approval": send it as its comment says.
      const sent = await mesh.cli(['workflows', 'event', `workflow-${name}`, created.id, 'approval', '--payload', '{"ok":true}']);
      assert.equal(sent.code, 0, sent.stderr);
      // Then a fetch, a one-minute sleep, and a step that fails at random (half the time) retried up to
      // 5 times, 5 s then 10 s, 20 s… apart: complete within a few minutes, errored once in 64 runs.
      const status = async () => ((await (await get(name, `/?instanceId=${created.id}`)).json()) as { status: { status: string; error?: unknown } }).status;
      const end = await waitFor(
        `instance ${created.id} to end`,
        async () => ((s) => (['complete', 'errored'].includes(s.status) ? s : undefined))(await status()),
        260_000,
        1000,
      );
      const steps = JSON.parse((await mesh.cli(['workflows', 'status', `workflow-${name}`, created.id, '--json'])).stdout) as {
        steps: { name: string; type: string; status: string; attempts: number }[];
      };
      const last = steps.steps.at(-1)!;
      if (end.status === 'errored') {
        // The template's own coin came up "fail" six times in a row: Cloudflare errors the instance too.
        assert.deepEqual([last.name, last.attempts], ['make a call to write that could maybe, just might, fail', 6]);
      } else assert.equal(end.status, 'complete');
      assert.deepEqual(
        steps.steps.slice(0, 4).map((s) => [s.name, s.type, s.status]),
        [
          ['my first step', 'do', 'complete'],
          ['request-approval', 'waitForEvent', 'complete'],
          ['some other step', 'do', 'complete'],
          ['wait on something', 'sleep', 'complete'],
        ],
      );
    };
    // Both run their minute-long sleep at once.
    await Promise.all([run('ts'), run('js')]);
  });

  describe('openapi (chanfana, Hono and zod): its OpenAPI document and the task routes, as on workerd', { skip: workerdMissing() }, () => {
    let workerd: Awaited<ReturnType<typeof startWorkerd>>;
    const both = async (path: string, init?: RequestInit) => {
      const mine = await fetch(`${mesh.httpUrl}${path}`, init);
      const theirs = await fetch(`${workerd.url()}${path}`, init);
      return { mine, theirs };
    };
    before(async () => {
      const dir = template('openapi/ts', 'c3-openapi');
      await deploy(dir, ['--route', '*/api/*', '--route', '*/openapi.json']);
      // The same project bundled as deploy bundles it, on the real workerd.
      const bundle = await bundleWorker(join(dir, 'src/index.ts'), { root: dir, compatibilityDate: '2026-07-01' });
      const files = Object.fromEntries(bundle.modules.map((m) => [m.name, m.content]));
      workerd = await startWorkerd({
        files,
        config: (ports) => `const config :Workerd.Config = (
  services = [ (name = "main", worker = (modules = [${bundle.modules.map((m) => `(name = "${m.name}", esModule = embed "${m.name}")`).join(', ')}], compatibilityDate = "2026-07-01")) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ],
);`,
      });
      await waitFor('workerd', async () => (await fetch(`${workerd.url()}/openapi.json`)).status === 200 || undefined);
      await waitFor('the openapi worker', async () => (await fetch(`${mesh.httpUrl}/openapi.json`)).status === 200 || undefined);
    });
    after(() => workerd?.stop());

    test('the OpenAPI document lists the four task routes, the same document as on workerd', async () => {
      const { mine, theirs } = await both('/openapi.json');
      const doc = (await mine.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
      assert.match(doc.openapi, /^3\.1\./);
      assert.deepEqual(
        Object.entries(doc.paths).map(([p, ops]) => [p, Object.keys(ops).sort()]),
        [
          ['/api/tasks', ['get', 'post']],
          ['/api/tasks/{taskSlug}', ['delete', 'get']],
        ],
      );
      assert.deepEqual(doc, await theirs.json());
    });

    test('task CRUD: create (201, validated by zod), a bad body refused with the same 400, fetch, list, delete', async () => {
      const task = { name: 'write tests', slug: 'tests', description: 'all of them', completed: false, due_date: '2026-12-24' };
      const post = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const created = await both('/api/tasks', post(task));
      assert.equal(created.mine.status, 201);
      assert.deepEqual(await created.mine.json(), { success: true, task });
      const bad = await both('/api/tasks', post({ ...task, due_date: 'tomorrow' }));
      assert.equal(bad.mine.status, 400);
      assert.deepEqual(await bad.mine.json(), await bad.theirs.json());
      const one = (await (await fetch(`${mesh.httpUrl}/api/tasks/tests`)).json()) as { success: boolean; task: { slug: string } };
      assert.equal(one.task.slug, 'tests');
      const list = (await (await fetch(`${mesh.httpUrl}/api/tasks?page=1`)).json()) as { tasks: { slug: string }[] };
      assert.deepEqual(
        list.tasks.map((t) => t.slug),
        ['clean-room', 'cloudflare-workers'],
      );
      const deleted = await fetch(`${mesh.httpUrl}/api/tasks/tests`, { method: 'DELETE' });
      assert.equal(deleted.status, 200);
      assert.equal(((await deleted.json()) as { result: { task: { slug: string } } }).result.task.slug, 'tests');
    });
  });
});
