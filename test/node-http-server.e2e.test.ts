/**
 * node:http servers (nodejs_compat, from the 2025-09-01 compatibility date) through the CLI and a real mesh:
 * a plain Node HTTP app served by cloudflare:node's httpServerHandler answers as the same source does on the
 * real workerd (status, reason, the app's headers, request body, streamed body); Express's hello app,
 * deployed unchanged, serves its routes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const FIXTURES = join(ROOT, 'test/fixtures/projects');
const noExpress = !existsSync(join(ROOT, 'node_modules/express')) && process.env.CORDON_REQUIRE_ALL !== '1' && 'express is not installed (npm install)';

/** A project copied out of the fixtures, with the repository's node_modules, as a user's checkout has its own. */
function project(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `cordon-${name}-`));
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/** What the app decides of an answer: the headers it sets (not the platform's: date, request ids, framing). */
const APP_HEADERS = /^(content-type|x-)/;
async function answer(base: string, method: string, path: string, body?: string) {
  const res = await fetch(`${base}${path}`, { method, body, headers: { 'x-test': 'yes' } });
  const headers = [...res.headers].filter(([k]) => APP_HEADERS.test(k) && k !== 'x-request-id');
  return { status: res.status, statusText: res.statusText, headers, body: await res.text() };
}

const CASES: [string, string, string?][] = [
  ['POST', '/nhs/echo?q=1', 'hello body'],
  ['GET', '/nhs/stream'],
  ['GET', '/nhs/state'],
  ['GET', '/nhs/empty'],
  ['DELETE', '/nhs/'],
  // A request body read after a response that streamed past its handler's return (readable-stream's ticks kept going).
  ['PUT', '/nhs/echo', 'again'],
];

describe('node:http servers behind httpServerHandler', { skip: workerdMissing() }, () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  test('a plain Node HTTP app answers as on workerd: status, reason, headers, request and streamed bodies', async () => {
    const r = await mesh.cli(['deploy'], project('node-http-server'));
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the app', async () => {
      const res = await fetch(`${mesh.httpUrl}/nhs/`);
      return (await res.text()) === 'hello GET' || undefined;
    });
    const ours = [];
    for (const [method, path, body] of CASES) ours.push(await answer(mesh.httpUrl, method, path, body));
    assert.deepEqual(ours[1], { status: 202, statusText: 'unknown', headers: [['content-type', 'text/plain']], body: 'one\ntwo\nthree\n' });
    assert.equal(ours[0]!.status, 201, ours[0]!.body);
    assert.equal(JSON.parse(ours[0]!.body).body, 'hello body');
    const workerd = await startWorkerd({
      files: { 'w.js': readFileSync(join(FIXTURES, 'node-http-server/src/index.js'), 'utf8') },
      config: (ports) => `const config :Workerd.Config = (
  services = [ (name = "main", worker = .w) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "w.js", esModule = embed "w.js") ], compatibilityDate = "2025-09-01", compatibilityFlags = ["nodejs_compat"] );`,
    });
    try {
      await waitFor('workerd', async () => (await fetch(`${workerd.url()}/nhs/`).catch(() => undefined))?.status === 200 || undefined);
      const theirs = [];
      for (const [method, path, body] of CASES) theirs.push(await answer(workerd.url(), method, path, body));
      assert.deepEqual(ours, theirs);
    } finally {
      workerd.stop();
    }
  });

  test("Express's hello app, deployed unchanged, serves its routes", { skip: noExpress }, async () => {
    const r = await mesh.cli(['deploy'], project('express-hello'));
    assert.equal(r.code, 0, r.stderr);
    const hello = await waitFor('express', async () => {
      const res = await fetch(`${mesh.httpUrl}/express/`);
      return res.status === 200 ? res : undefined;
    });
    assert.equal(await hello.text(), 'Hello World!');
    assert.equal(hello.headers.get('x-powered-by'), 'Express');
    assert.equal(hello.headers.get('content-type'), 'text/html; charset=utf-8');
    const user = await fetch(`${mesh.httpUrl}/express/users/7?q=x`);
    assert.deepEqual(await user.json(), { id: '7', q: 'x' });
    const echo = await fetch(`${mesh.httpUrl}/express/echo`, {
      method: 'POST',
      body: JSON.stringify({ a: [1, 2] }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(await echo.json(), { got: { a: [1, 2] } });
    const missing = await fetch(`${mesh.httpUrl}/express/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /Cannot GET \/express\/nope/);
  });
});
