/**
 * `cordon debug`: the worker runs alone in a sandbox process of its own with the V8 inspector on,
 * reached on loopback with a one-time token; the shared sandboxes never have the inspector.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { freePort, ROOT, sandboxNodes, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

/** Opens a DevTools protocol connection; resolves to a caller, or rejects with the HTTP status it got. */
function devtools(
  url: string,
): Promise<{ call(method: string, params?: object): Promise<Record<string, unknown>>; notifications: Record<string, unknown>[]; close(): void }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    let id = 0;
    const waiting = new Map<number, (m: Record<string, unknown>) => void>();
    const notifications: Record<string, unknown>[] = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as Record<string, unknown>;
      if (typeof m.id === 'number') waiting.get(m.id)?.(m);
      else notifications.push(m);
    });
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        call: (method, params = {}) =>
          new Promise((r) => {
            waiting.set(++id, r);
            ws.send(JSON.stringify({ id, method, params }));
          }),
        notifications,
        close: () => ws.close(),
      }),
    );
  });
}

describe('cordon debug', () => {
  let mesh: TestMesh;
  let debug: ChildProcess | undefined;
  let out = '';
  before(async () => {
    mesh = await startTestMesh();
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('hello', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
  });
  after(async () => {
    debug?.kill('SIGKILL');
    await mesh?.stop();
  });

  test('the worker moves into a process of its own; DevTools attaches with the token, once', async () => {
    const port = await freePort();
    debug = spawn(process.execPath, [join(ROOT, 'cli/cordon.mjs'), 'debug', 'hello', '--port', String(port)], {
      cwd: ROOT,
      env: mesh.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    debug.stdout!.on('data', (d) => (out += d));
    debug.stderr!.on('data', (d) => (out += d));
    const url = await waitFor('the inspector address', () => /inspector: (ws:\/\/\S+)/.exec(out)?.[1], 30_000);
    assert.match(url, new RegExp(`^ws://127\\.0\\.0\\.1:${port}/[A-Za-z0-9_-]{43}$`));
    // Requests now run in the debug sandbox (and create its isolate).
    assert.equal((await fetch(`${mesh.httpUrl}/hello?name=debugger`)).status, 200);
    const cordon = /cordon (d-[0-9a-f]{12})/.exec(out)![1]!;
    const pids = sandboxNodes(mesh);
    assert.ok(pids.has(cordon), 'a sandbox process of its own');
    const envOf = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8');
    assert.match(envOf(pids.get(cordon)!), /CORDON_INSPECTOR_TOKEN_SHA256=[0-9a-f]{64}/);
    for (const shared of ['standard', 'untrusted']) assert.doesNotMatch(envOf(pids.get(shared)!), /CORDON_INSPECTOR/, `${shared} has no inspector`);

    await assert.rejects(devtools(url.replace(/\/[^/]+$/, '/wrong-token')), /status 401/);
    const session = await devtools(url);
    await session.call('Runtime.enable');
    const created = session.notifications.find((n) => n.method === 'Runtime.executionContextCreated') as { params: { context: { id: number } } } | undefined;
    assert.ok(created, `the worker's context is announced: ${JSON.stringify(session.notifications)}`);
    const evaluated = await session.call('Runtime.evaluate', { expression: 'typeof Response + " " + (6 * 7)', contextId: created.params.context.id });
    assert.deepEqual((evaluated.result as { result: { value: unknown } } | undefined)?.result.value, 'function 42', JSON.stringify(evaluated));
    session.close();
    await assert.rejects(devtools(url), /status 401/, 'the token opens one session only');
    const audit = await mesh.cli(['audit', 'tail', '--limit', '20']);
    assert.match(audit.stdout, /worker\.debug\.start/);
  });

  test('Ctrl-C ends the session: the worker goes back, the debug process stops, requests are served', async () => {
    const cordon = /cordon (d-[0-9a-f]{12})/.exec(out)![1]!;
    debug!.kill('SIGINT');
    await new Promise((r) => debug!.once('exit', r));
    assert.match(out, /debug session ended/);
    await waitFor('the debug process to stop', () => (sandboxNodes(mesh).has(cordon) ? undefined : true));
    assert.equal(await (await fetch(`${mesh.httpUrl}/hello?name=back`)).text(), 'Hello, back! (from a Cordon isolate)\n');
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '20'])).stdout, /worker\.debug\.end/);
  });

  test('a worker already in a cordon of its own cannot be debugged twice; ending twice or an unknown worker is a clear error; tokens need admin scope', async () => {
    const admin = (method: string, path: string, token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim()) =>
      fetch(`${mesh.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
    assert.equal((await admin('POST', '/v1/workers/default/hello/debug')).status, 201);
    const twice = await admin('POST', '/v1/workers/default/hello/debug');
    assert.equal(twice.status, 409);
    assert.match(await twice.text(), /already in a cordon of its own/);
    assert.equal((await admin('DELETE', '/v1/workers/default/hello/debug')).status, 200);
    assert.equal((await admin('DELETE', '/v1/workers/default/hello/debug')).status, 404);
    const unknown = await mesh.cli(['debug', 'nosuch']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no worker default\/nosuch/);
    const created = await mesh.cli(['tokens', 'create', '--scope', 'deploy']);
    const deployToken = /\S{20,}/.exec(created.stdout)![0];
    assert.equal((await admin('POST', '/v1/workers/default/hello/debug', deployToken)).status, 403, 'a deploy token cannot open an inspector');
  });
});
