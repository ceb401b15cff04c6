/**
 * CPU time is charged per request (docs/limits.md): the attacks are loops that try to run where no
 * request is charged for them — after starting a fetch(), in a continuation after an await, in
 * `waitUntil` after the response went, in a timer callback (while its request waits, and after its
 * request ended), in a stream's `pull`, in another request's continuation through a shared promise, and
 * among many requests in flight, after a Durable Object call. Through the real mesh, each loop is stopped at the CPU limit (a
 * CPU-limit line in the worker's log, never the wall-time limit, which is far off), the worker serves
 * again after, and a bystander tenant is served.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startSlowOrigin } from '../helpers/slow-origin.ts';

const CPU_MS = 300;
/** Far beyond the CPU limit: a loop charged to nobody would run into it instead, and the test fails. */
const WALL_MS = 20_000;
const SLOW_MS = 3000;

const worker = (origin: string) => `
// A loop in the task the host sent in is also caught by isolated-vm's own timeout on that call; one in the
// continuation of a call's answer is not: each loop below runs there, in an answer to a call made from the
// place under test (so it is charged only if that place's task passed its owners on).
const spin = () => { for (;;) {} };
const spinAfterCall = async () => { await fetch('${origin}/fast'); spin(); };
const burn = (n) => { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0; return x; };
export default {
  async fetch(req, env, ctx) {
    const path = new URL(req.url).pathname.split('/').pop();
    switch (path) {
      case 'ok': return new Response('ok');
      // Holds the isolate with nothing coming back for it before its wall-time limit.
      case 'hold-long': await new Promise((r) => setTimeout(r, ${WALL_MS * 2})); return new Response('unreachable');
      case 'hold': return new Response('held ' + (await (await fetch('${origin}/slow')).text()));
      case 'fetch-then-spin': fetch('${origin}/slow'); spin();
      case 'await-then-spin': await fetch('${origin}/fast'); spin();
      case 'waituntil-spin':
        ctx.waitUntil((async () => { await fetch('${origin}/fast'); spin(); })());
        return new Response('sent');
      case 'timer-spin':
        setTimeout(spinAfterCall, 10);
        await new Promise((r) => setTimeout(r, ${WALL_MS * 2}));
        return new Response('unreachable');
      case 'timer-after-end':
        setTimeout(spinAfterCall, 300);
        return new Response('set');
      case 'pull-spin': {
        // The first chunk is pulled while the response is made; the second, when the host asks for it.
        let pulls = 0;
        return new Response(new ReadableStream({ pull(c) { if (pulls++ === 0) c.enqueue(new TextEncoder().encode('first')); else return spinAfterCall(); } }));
      }
      case 'pieces':
        // CPU in pieces, none near the limit, across awaits: the request's own task, then its calls' answers.
        for (let i = 0; i < 2000; i++) { burn(3000000); await fetch('${origin}/fast'); }
        return new Response('unreachable');
      case 'share-wait':
        globalThis.gate = new Promise((r) => (globalThis.open = r));
        await globalThis.gate;
        spin();
      case 'share-open':
        await fetch('${origin}/fast');
        globalThis.open();
        return new Response('opened');
    }
    return new Response('no such path', { status: 404 });
  },
};`;

const objectsWorker = (origin: string) => `
import { DurableObject } from 'cloudflare:workers';
export class Slow extends DurableObject {
  async ping() { return 'pong'; }
}
const spin = () => { for (;;) {} };
export default {
  async fetch(req, env) {
    const path = new URL(req.url).pathname.split('/').pop();
    if (path === 'ok') return new Response('ok');
    // A Durable Object call, then a loop after a call made in its answer's continuation (a loop in that
    // continuation itself is in the task of the answer's delivery, which isolated-vm's timeout covers).
    if (path === 'call-then-spin') { await env.OBJ.get(env.OBJ.idFromName('x')).ping(); await fetch('${origin}/fast'); spin(); }
    return new Response('no such path', { status: 404 });
  },
};`;

describe('CPU accounting: a loop is charged to some request wherever it runs', () => {
  let mesh: TestMesh;
  let origin: Server;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cpu-attacks-'));
  const evil = (path: string) => fetchHost(mesh, 'evil.example', `/spin/${path}`);
  const bystander = () => fetch(`${mesh.httpUrl}/hello`);
  const logs = async () => (await mesh.cli(['logs', 'evil/spin'])).stdout;
  const count = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).length;
  const CPU_LINE = new RegExp(`CPU time limit of ${CPU_MS} ms`);
  const WALL_LINE = /wall time limit/;

  before(async () => {
    const slow = await startSlowOrigin(SLOW_MS);
    origin = slow.server;
    const url = slow.url;
    writeFileSync(join(dir, 'index.js'), worker(url));
    mesh = await startTestMesh();
    const args = ['--tenant', 'evil', '--name', 'spin', '--route', 'evil.example/spin/*', '--origin', url];
    const deploy = await mesh.cli(['deploy', join(dir, 'index.js'), ...args, '--cpu-ms', String(CPU_MS), '--wall-ms', String(WALL_MS)], dir);
    assert.equal(deploy.code, 0, deploy.stderr);
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    // The same tenant's worker with a Durable Object: a call on it answers over a Workers RPC session.
    const objects = join(dir, 'objects');
    mkdirSync(objects);
    writeFileSync(join(objects, 'index.js'), objectsWorker(url));
    writeFileSync(
      join(objects, 'wrangler.json'),
      JSON.stringify({
        name: 'objspin',
        main: 'index.js',
        compatibility_date: '2025-06-01',
        routes: ['evil.example/objspin/*'],
        durable_objects: { bindings: [{ name: 'OBJ', class_name: 'Slow' }] },
        migrations: [{ tag: 'v1', new_sqlite_classes: ['Slow'] }],
        limits: { cpu_ms: CPU_MS },
      }),
    );
    const objDeploy = await mesh.cli(['deploy', '--tenant', 'evil', '--wall-ms', String(WALL_MS), '--origin', url], objects);
    assert.equal(objDeploy.code, 0, objDeploy.stderr);
    await waitFor('the objects worker', async () => ((await fetchHost(mesh, 'evil.example', '/objspin/ok')).status === 200 ? true : undefined));
    await waitFor('both workers', async () => ((await evil('ok')).status === 200 && (await bystander()).status === 200) || undefined);
  });
  after(async () => {
    await mesh?.stop();
    origin?.closeAllConnections();
    origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Runs `attack` (it returns the statuses its requests got, each expected to be `expect`ed), then:
   * one new CPU-limit line, no wall-time line, the worker serving again and the bystander served.
   */
  async function stopped(attack: () => Promise<number[]>, expect: (status: number) => boolean): Promise<void> {
    const before = await logs();
    const statuses = await attack();
    for (const s of statuses) assert.ok(expect(s), `status ${s}`);
    const text = await waitFor('a CPU-limit line', async () => {
      const now = await logs();
      return count(now, CPU_LINE) > count(before, CPU_LINE) ? now : undefined;
    });
    assert.equal(count(text, WALL_LINE), count(before, WALL_LINE), 'stopped by the CPU limit, not the wall-time limit');
    assert.equal((await bystander()).status, 200, 'the bystander is served');
    const again = await waitFor('the worker serving again', async () => ((await evil('ok')).status === 200 ? true : undefined));
    assert.equal(again, true);
  }
  const failed = (s: number) => s >= 500 && s < 600;
  const status = async (path: string) => (await evil(path)).status;

  test('starting a fetch() and then spinning: the loop is in the request’s own task', async () => {
    await stopped(async () => [await status('fetch-then-spin')], failed);
  });

  test('spinning in a continuation after an await: charged to the request whose call it resumes', async () => {
    await stopped(async () => [await status('await-then-spin')], failed);
  });

  test('CPU in pieces across awaits, none near the limit: they add up', async () => {
    await stopped(async () => [await status('pieces')], failed);
  });

  test('spinning in waitUntil after the response went: still the request’s', async () => {
    await stopped(
      async () => {
        const r = await evil('waituntil-spin');
        assert.equal(await r.text(), 'sent');
        return [r.status];
      },
      (s) => s === 200,
    );
  });

  test('spinning in a timer callback while the request waits', async () => {
    await stopped(async () => [await status('timer-spin')], failed);
  });

  test('spinning in a timer that fires after its request ended, while another request holds the isolate', async () => {
    await stopped(async () => {
      const hold = evil('hold-long').then((r) => r.status);
      const set = await evil('timer-after-end');
      assert.equal(await set.text(), 'set');
      // The isolate goes with the loop: the holding request fails with it.
      return [await hold];
    }, failed);
  });

  test('spinning in a stream’s pull, when the host pulls the next chunk', async () => {
    await stopped(async () => {
      // The head went out with the first chunk; the response is cut when the isolate goes.
      const outcome = await evil('pull-spin').then(
        async (r) => `${r.status} ${await r.text()}`,
        (e: Error) => `cut: ${e.message}`,
      );
      assert.notEqual(outcome, '200 first', 'the stream did not end normally');
      return [];
    }, failed);
  });

  test('two requests sharing a promise: one’s loop runs in the other’s continuation', async () => {
    await stopped(async () => {
      const waiting = evil('share-wait').then((r) => r.status);
      // The waiting request has set its gate once it is in flight.
      await new Promise((r) => setTimeout(r, 200));
      return [await status('share-open'), await waiting];
    }, failed);
  });

  test('a Durable Object call, then spinning after a call made in its answer’s continuation', async () => {
    const objLogs = async () => (await mesh.cli(['logs', 'evil/objspin'])).stdout;
    const before = await objLogs();
    const r = await fetchHost(mesh, 'evil.example', '/objspin/call-then-spin');
    assert.ok(failed(r.status), `status ${r.status}`);
    const text = await waitFor('a CPU-limit line', async () => {
      const now = await objLogs();
      return count(now, CPU_LINE) > count(before, CPU_LINE) ? now : undefined;
    });
    assert.equal(count(text, WALL_LINE), count(before, WALL_LINE), 'stopped by the CPU limit, not the wall-time limit');
    assert.equal((await bystander()).status, 200, 'the bystander is served');
  });

  test('many requests in flight, one spinning among them', async () => {
    await stopped(async () => {
      const holders = Array.from({ length: 10 }, () => evil('hold').then((r) => r.status));
      await new Promise((r) => setTimeout(r, 200));
      return [await status('await-then-spin'), ...(await Promise.all(holders))];
    }, failed);
  });
});
