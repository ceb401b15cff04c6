/**
 * `nodejs_compat` through the CLI and a real mesh: a project using real npm packages written for Node
 * (sha.js, combined-stream, mime-types) and the node:* modules Workers provides, deployed unchanged,
 * answers what the same source answers on the real workerd (bundled there as wrangler does: node:*
 * left to workerd). Unknown compatibility flags and node:* without the flag are refused at deploy.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/nodejs-compat');
const noWorkerd = workerdMissing();

/** The fixture copied outside the repository, its packages reachable as after `npm install`. */
function project(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-node-'));
  cpSync(FIXTURE, dir, { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** What the fixture answers on workerd: bundled as wrangler does for workerd (node:* and bare built-in names left to it). */
async function onWorkerd(): Promise<Record<string, unknown>> {
  const builtins = new Set(builtinModules);
  const out = await build({
    entryPoints: [join(FIXTURE, 'src/index.js')],
    nodePaths: [join(ROOT, 'node_modules')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    conditions: ['workerd', 'worker', 'browser'],
    write: false,
    plugins: [
      {
        name: 'node-builtins',
        setup(b) {
          // require() of a built-in becomes an import, as wrangler rewrites it (ESM output has no require).
          const resolveBuiltin = (name: string, kind: string) =>
            kind === 'require-call' ? { path: name, namespace: 'require-builtin' } : { path: name, external: true };
          b.onResolve({ filter: /^cloudflare:/ }, (a) => ({ path: a.path, external: true }));
          b.onResolve({ filter: /^node:/ }, (a) => resolveBuiltin(a.path, a.kind));
          b.onResolve({ filter: /^[a-z_/]+$/ }, (a) => (builtins.has(a.path) ? resolveBuiltin(`node:${a.path}`, a.kind) : undefined));
          b.onLoad({ filter: /.*/, namespace: 'require-builtin' }, (a) => ({
            contents: `import * as m from ${JSON.stringify(a.path)}; module.exports = m.default ?? m;`,
            loader: 'js',
          }));
        },
      },
    ],
  });
  const workerd = await startWorkerd({
    files: { 'w.js': out.outputFiles[0]!.text },
    stderr: Boolean(process.env.DEBUG_WORKERD),
    config: (
      ports,
    ) => `const config :Workerd.Config = ( services = [ (name = "main", worker = .w) ], sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "w.js", esModule = embed "w.js") ], compatibilityDate = "2025-06-01", compatibilityFlags = ["nodejs_compat"],
  bindings = [ (name = "GREETING", text = "hello"), (name = "LIMITS", json = "{\\"max\\":3}") ] );`,
  });
  try {
    return await waitFor('workerd', async () => {
      const res = await fetch(`${workerd.url()}/node?id=7`).catch(() => undefined);
      return res?.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    });
  } finally {
    workerd.stop();
  }
}

describe('nodejs_compat', { skip: noWorkerd }, () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  test('real npm packages and the node:* modules answer as on workerd', async () => {
    const r = await mesh.cli(['deploy', '--route', '*/node*'], project());
    assert.equal(r.code, 0, r.stderr);
    const ours = await waitFor('GET /node', async () => {
      const res = await fetch(`${mesh.httpUrl}/node?id=7`);
      return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    });
    const theirs = await onWorkerd();
    assert.deepEqual(ours, theirs);
    assert.equal(ours.store, '7', 'AsyncLocalStorage kept the request id across await and timers');
    assert.deepEqual(ours.processEnv, ['hello', '{"max":3}', null]);
  });

  test('an unknown compatibility flag, and node:* without nodejs_compat, are refused at deploy', async () => {
    const flag = await mesh.cli(
      ['deploy'],
      project({ 'wrangler.jsonc': JSON.stringify({ name: 'f', main: 'src/index.js', compatibility_flags: ['nodejs_compat', 'no_such_flag'] }) }),
    );
    assert.notEqual(flag.code, 0);
    assert.match(flag.stderr, /compatibility_flags: no_such_flag: a compatibility flag Cordon does not implement/);
    const none = await mesh.cli(['deploy'], project({ 'wrangler.jsonc': JSON.stringify({ name: 'g', main: 'src/index.js' }) }));
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /node:async_hooks: Node\.js modules need the nodejs_compat compatibility flag/);
    const als = await mesh.cli(
      ['deploy'],
      project({ 'wrangler.jsonc': JSON.stringify({ name: 'h', main: 'src/index.js', compatibility_flags: ['nodejs_als'] }) }),
    );
    assert.notEqual(als.code, 0);
    assert.match(als.stderr, /only node:async_hooks is available with nodejs_als/);
  });
});
