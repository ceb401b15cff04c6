/**
 * The node:http and node:https clients (nodejs_compat, from the 2025-08-15 compatibility date) through
 * the CLI and a real mesh: a POST with a body and headers, a GET by options that is not redirected,
 * headers as workerd gives them (repeated ones joined, set-cookie too), against an origin on loopback the worker is granted;
 * the same worker on the real workerd (allowed to reach loopback) answers the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorker } from '../cli/bundle.ts';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/node-http');

describe('node:http and node:https clients over fetch()', { skip: workerdMissing() }, () => {
  let mesh: TestMesh;
  let origin: Server;
  let port: number;
  const hits: string[] = [];
  before(async () => {
    origin = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hits.push(`${req.method} ${req.url}`);
        if (req.url === '/redirect') return void res.writeHead(302, { location: '/elsewhere', 'content-type': 'text/plain' }).end('moved');
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.writeHead(200, { 'x-origin': 'here', 'content-type': 'text/plain' }).end(`${req.method} ${req.url} ${req.headers['x-test']} ${body}`);
      });
    });
    port = await new Promise<number>((r) => origin.listen(0, '127.0.0.1', () => r((origin.address() as { port: number }).port)));
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
  });

  test('request and get answer as on workerd; the request went through egress to the granted origin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-node-http-'));
    cpSync(FIXTURE, dir, { recursive: true });
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const r = await mesh.cli(['deploy', '--origin', `http://127.0.0.1:${port}`], dir);
    assert.equal(r.code, 0, r.stderr);
    const query = `origin=${encodeURIComponent(`http://127.0.0.1:${port}`)}`;
    const ours = await waitFor('GET /node-http', async () => {
      const res = await fetch(`${mesh.httpUrl}/node-http?${query}`);
      return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
    });
    assert.deepEqual(ours, {
      post: { status: 200, message: 'OK', echoed: 'POST /echo?q=1 yes hello world', header: 'here', cookies: 'a=1, b=2', complete: true },
      redirect: { status: 302, message: 'Found', location: '/elsewhere', body: 'moved' },
      badProtocol: 'ERR_INVALID_PROTOCOL',
      shape: [true, "I'm a Teapot", 'function', 'function', 'function'],
    });
    assert.deepEqual(hits.slice(0, 2), ['POST /echo?q=1', 'GET /redirect']);
    // The same source on workerd, where node:http is its own (its only imports are node:*, which wrangler leaves to workerd).
    const bundle = await bundleWorker(join(FIXTURE, 'src/index.js'), { compatibilityDate: '2025-09-01', compatibilityFlags: ['nodejs_compat'] });
    assert.ok(bundle.modules[0]!.content.includes('ClientRequest'), 'Cordon bundles its own client');
    const workerd = await startWorkerd({
      files: { 'w.js': readFileSync(join(FIXTURE, 'src/index.js'), 'utf8') },
      config: (ports) => `const config :Workerd.Config = (
  services = [ (name = "main", worker = .w), (name = "net", network = (allow = ["public", "private", "local"])) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "w.js", esModule = embed "w.js") ], compatibilityDate = "2025-09-01", compatibilityFlags = ["nodejs_compat"], globalOutbound = "net" );`,
    });
    try {
      const theirs = await waitFor('workerd', async () => {
        const res = await fetch(`${workerd.url()}/node-http?${query}`).catch(() => undefined);
        return res?.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
      });
      assert.deepEqual(ours, theirs);
    } finally {
      workerd.stop();
    }
  });
});
