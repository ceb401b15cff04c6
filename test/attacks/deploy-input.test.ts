/**
 * Issue 12, items 8 and 13: deploy input a hostile tenant controls, through the real mesh.
 * - Module names become paths when `cordon export` writes them on the operator's machine: a `.git`
 *   segment (a nested repository whose config runs core.fsmonitor on `git status`) or `..` is refused
 *   at deploy, and export never writes one even when an older store already holds it.
 * - The admin API's edges: bad percent-encoding, too many headers, an oversized body, reserved var
 *   names, HEAD, the drift report for a tenant-bound admin, and VACUUM INTO from tenant SQL.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { CodeStore } from '../../services/supervisor/store.ts';
import { History } from '../../services/supervisor/history.ts';
import { MasterKey } from '../../services/supervisor/master-key.ts';

const HELLO = 'export default { fetch() { return new Response("hi") } }';
const hasGit = (() => {
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Every path under `dir` (relative), not following symlinks. */
function walk(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? [rel, ...walk(join(dir, e.name), rel)] : [rel];
  });
}

describe('deploy input: module names and admin API edges', () => {
  let mesh: TestMesh;
  let dataDir: string;
  let work: string;
  let evil: string; // deploy + read, bound to tenant evil
  let evilAdmin: string; // admin, bound to tenant evil
  const marker = () => join(work, 'fsmonitor-ran');

  const call = (token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  const root = () => readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
  const deployBody = (name: string, modules: { name: string; type: string; content: string }[], mainModule = modules[0]!.name) => ({
    name,
    mainModule,
    modules,
  });
  const token = async (scopes: string, tenant: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scopes, '--tenant', tenant]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'cordon-attack-input-'));
    // An older store that accepted any module name: tenant legacy's worker holds a nested git
    // repository whose fsmonitor would run a command, and a name climbing out of the export.
    dataDir = join(work, 'data');
    mkdirSync(join(dataDir, 'supervisor'), { recursive: true, mode: 0o700 });
    const supervisor = join(dataDir, 'supervisor');
    const store = new CodeStore(join(supervisor, 'code.db'), MasterKey.load(dataDir).derive('wrap'), new History(join(supervisor, 'git')));
    await store.deploy(
      {
        tenant: 'legacy',
        name: 'old',
        cordon: 'standard',
        mainModule: 'main.js',
        modules: [
          { name: 'main.js', type: 'esm', content: HELLO },
          { name: '.git/config', type: 'text', content: `[core]\n\trepositoryformatversion = 0\n\tfsmonitor = "touch ${marker()}; false"\n` },
          { name: '.git/HEAD', type: 'text', content: 'ref: refs/heads/main\n' },
          { name: 'sub/.GIT./config', type: 'text', content: `[core]\n\tfsmonitor = "touch ${marker()}; false"\n` },
          { name: '../../x.js', type: 'text', content: 'escaped' },
        ],
        limits: { cpuMs: 1000, wallMs: 30_000, memoryMb: 128 },
        vars: {},
        bindings: [],
        origins: [],
        routes: [],
      },
      'operator',
    );
    store.close();
    mesh = await startTestMesh({ CORDON_DATA_DIR: dataDir });
    evil = await token('deploy,read', 'evil');
    evilAdmin = await token('admin', 'evil');
    assert.equal(
      (await call(root(), 'POST', '/v1/workers', { tenant: 'good', ...deployBody('api', [{ name: 'w.js', type: 'esm', content: HELLO }]) })).status,
      201,
    );
  });
  after(async () => {
    await mesh?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('item 8: module names with a .git segment (any spelling git accepts) or that leave the worker are refused with 400 naming them', async () => {
    const bad = [
      '.git/config',
      '../../x.js',
      'a/../../x.js',
      '/etc/x.js',
      './x.js',
      'a//b.js',
      '.GIT/config',
      'src/.git./config',
      'GIT~1/config',
      'deep/er/.Git/hooks/pre-commit',
      'a\\b.js',
      'a\u0001.js',
      '.',
    ];
    for (const name of bad) {
      const res = await call(
        evil,
        'POST',
        '/v1/workers',
        deployBody(
          'x',
          [
            { name: 'main.js', type: 'esm', content: HELLO },
            { name, type: 'text', content: '[core]\n\tfsmonitor = "touch /tmp/pwned"\n' },
          ],
          'main.js',
        ),
      );
      assert.equal(res.status, 400, name);
      const { error } = (await res.json()) as { error: string };
      assert.ok(error.includes(JSON.stringify(name)), `the error names ${JSON.stringify(name)}: ${error}`);
    }
    // As the entry point too.
    assert.equal((await call(evil, 'POST', '/v1/workers', deployBody('x', [{ name: '.git/x.js', type: 'esm', content: HELLO }]))).status, 400);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /evil\/x/, 'nothing was stored');
    // Names that only look alike are fine.
    assert.equal(
      (
        await call(
          evil,
          'POST',
          '/v1/workers',
          deployBody('y', [
            { name: 'main.js', type: 'esm', content: HELLO },
            { name: 'a.git/.gitignore', type: 'text', content: '' },
            { name: 'gitx1/..a', type: 'text', content: '' },
          ]),
        )
      ).status,
      201,
    );
    assert.equal((await call(root(), 'GET', '/v1/workers/good/api')).status, 200, 'the bystander is unharmed');
  });

  test('item 8: export of a store that already holds such names writes none of them, and a bystander export works', async (t) => {
    const out = join(work, 'a', 'b', 'export');
    const r = await mesh.cli(['export', 'legacy', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /not written: module "\.git\/config"/);
    assert.match(r.stderr, /not written: module "\.\.\/\.\.\/x\.js"/);
    assert.equal(readFileSync(join(out, 'old', 'main.js'), 'utf8'), HELLO);
    const nested = walk(out).filter((p) => p !== '.git' && !p.startsWith('.git/') && p.split('/').some((s) => /^\.git\.*$/i.test(s)));
    assert.deepEqual(nested, [], 'no repository inside the export');
    assert.equal(existsSync(resolve(out, 'old', '../../x.js')), false, 'nothing outside the export');
    const settings = JSON.parse(readFileSync(join(out, 'old', 'cordon.json'), 'utf8')) as { refusedModules: { module: string }[] };
    assert.deepEqual(settings.refusedModules.map((m) => m.module).sort(), ['../../x.js', '.git/HEAD', '.git/config', 'sub/.GIT./config'].sort());
    // What the attack wanted: git status in the worker's directory runs the nested repository's fsmonitor.
    if (hasGit || process.env.CORDON_REQUIRE_ALL === '1') {
      execFileSync('git', ['-C', join(out, 'old'), 'status', '--short'], { stdio: 'ignore' });
      assert.equal(existsSync(marker()), false, 'no command of the tenant ran');
    } else t.diagnostic('git is not installed: git status in the export was not tried');
    const good = join(work, 'good-export');
    const g = await mesh.cli(['export', 'good', good]);
    assert.equal(g.code, 0, g.stderr);
    assert.equal(readFileSync(join(good, 'api', 'w.js'), 'utf8'), HELLO);
    assert.equal(g.stderr, '');
  });

  test('item 13: a malformed percent-escape in the path is 400, not 500', async () => {
    for (const path of ['/v1/workers/evil/%E0%A4%A', '/v1/workers/%/x', '/v1/tenants/%zz/export']) {
      const res = await call(evil, 'GET', path);
      assert.equal(res.status, 400, path);
      assert.match(((await res.json()) as { error: string }).error, /percent-encoding/);
    }
    assert.equal((await call(evil, 'GET', '/v1/workers/evil/y')).status, 200);
  });

  test('item 13: too many or too long request headers are 431, at the admin API and at ingress', async () => {
    const many = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x-h${i}`, 'v']));
    assert.equal((await call(evil, 'GET', '/v1/workers', undefined, many)).status, 431);
    assert.equal((await call(evil, 'GET', '/v1/workers', undefined, { 'x-long': 'v'.repeat(20_000) })).status, 431);
    assert.equal((await call(evil, 'GET', '/v1/workers')).status, 200, 'the next request is served');
    // The same request to a worker: ingress answers 431 itself rather than failing in the sandbox and retrying into a 502.
    const r = await mesh.cli(['deploy', 'examples/echo/index.ts', '--name', 'echo', '--tenant', 'good', '--route', '*/good/echo*']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('echo', async () => (await fetch(`${mesh.httpUrl}/good/echo`)).status === 200 || undefined);
    const tooMany = await fetch(`${mesh.httpUrl}/good/echo`, { headers: many });
    assert.equal(tooMany.status, 431);
    assert.match(await tooMany.text(), /Too many request headers/);
    assert.equal((await fetch(`${mesh.httpUrl}/good/echo`)).status, 200, 'the worker still serves');
  });

  /** POST `size` bytes of a deploy body in 1 MiB chunks; the status, as soon as the server answers. */
  function bigPost(size: number, declared: boolean): Promise<number> {
    return new Promise((resolveStatus, reject) => {
      const head = Buffer.from(`{"name":"huge","mainModule":"w.js","modules":[{"name":"w.js","type":"esm","content":"`);
      const tail = Buffer.from('"}]}');
      const chunk = Buffer.alloc(1024 * 1024, 'x');
      const req = request(`${mesh.adminUrl}/v1/workers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${evil}`, 'content-type': 'application/json', ...(declared ? { 'content-length': String(size) } : {}) },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        res.resume();
        resolveStatus(res.statusCode!);
      });
      req.on('error', (e) => (answered ? undefined : reject(e)));
      let sent = 0;
      const pump = () => {
        while (!answered && sent < size) {
          const piece =
            sent === 0 ? head : sent + chunk.length + tail.length >= size ? Buffer.concat([chunk.subarray(0, size - sent - tail.length), tail]) : chunk;
          sent += piece.length;
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
  }

  /** The supervisor's peak resident memory so far, in MiB. */
  const peakMb = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${mesh.servicePids().get('supervisor')}/status`, 'utf8'))![1]) / 1024;

  test('item 13: an 87 MB deploy is refused with 413 before it is parsed, whether its length is declared or not', async () => {
    const before = peakMb();
    assert.equal(await bigPost(87_000_000, true), 413);
    assert.equal(await bigPost(87_000_000, false), 413);
    // A parsed 87 MB body costs the supervisor several hundred MB; a counted-and-refused one costs at most the cap.
    assert.ok(peakMb() - before < 250, `supervisor peak grew by ${Math.round(peakMb() - before)} MiB`);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /evil\/huge/);
    assert.equal(
      (await call(root(), 'POST', '/v1/workers', { tenant: 'good', ...deployBody('api', [{ name: 'w.js', type: 'esm', content: HELLO + ' ' }]) })).status,
      201,
      'the bystander still deploys',
    );
  });

  test('item 13: vars named __proto__, constructor or prototype are refused with 400, not dropped', async () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      // Written by hand: a JavaScript object literal would take __proto__ as its prototype.
      const body = `{"name":"vars","mainModule":"w.js","modules":[{"name":"w.js","type":"esm","content":"export default {}"}],"vars":{"A":"1","${key}":"x"}}`;
      const res = await call(evil, 'POST', '/v1/workers', body);
      assert.equal(res.status, 400, key);
      assert.match(((await res.json()) as { error: string }).error, new RegExp(`a var may not be named ${key}`));
    }
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /evil\/vars/);
  });

  test('item 13: HEAD is answered like GET, without a body', async () => {
    for (const path of ['/v1/workers', '/v1/workers/evil/y', '/healthz', '/openapi.json']) {
      const res = await call(evil, 'HEAD', path);
      assert.equal(res.status, 200, path);
      assert.equal((await res.arrayBuffer()).byteLength, 0, path);
    }
    assert.equal((await call(evil, 'HEAD', '/v1/workers/good/api')).status, 403, 'HEAD is no way around tenant binding');
  });

  test('item 13: a tenant-bound admin token cannot read the mesh-wide drift report', async () => {
    const res = await call(evilAdmin, 'GET', '/v1/drift');
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { error: string }).error, /not bound to a tenant/);
    assert.equal((await call(root(), 'GET', '/v1/drift')).status, 200);
  });

  test('item 13: VACUUM INTO from tenant SQL is refused by name and writes no copy', async () => {
    const copy = join(work, 'stolen.db');
    for (const t of ['evil', 'good']) {
      const r = await mesh.cli([
        'deploy',
        'examples/notes/index.ts',
        '--name',
        'notes',
        '--tenant',
        t,
        '--route',
        `*/${t}/notes*`,
        '--storage',
        'DB',
        '--directory',
        'FILES',
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(
      'the notes workers',
      async () =>
        ((await fetch(`${mesh.httpUrl}/evil/notes?op=list`)).status === 200 && (await fetch(`${mesh.httpUrl}/good/notes?op=list`)).status === 200) || undefined,
    );
    assert.equal((await fetch(`${mesh.httpUrl}/good/notes?op=add`, { method: 'POST', body: 'kept' })).status, 200);
    for (const sql of [`VACUUM INTO '${copy}'`, `/* hi */ vacuum main into '${copy}'`, 'VACUUM']) {
      const res = await fetch(`${mesh.httpUrl}/evil/notes?op=sql`, { method: 'POST', body: sql });
      assert.equal(res.status, 409, sql);
      assert.match(await res.text(), /not authorized: .*VACUUM/, sql);
    }
    assert.equal(existsSync(copy), false);
    assert.match(await (await fetch(`${mesh.httpUrl}/good/notes?op=list`)).text(), /kept/, 'the bystander keeps its data');
  });
});
