/**
 * CPU time is charged per request, through the real mesh: a request that waits (on a slow upstream
 * fetch(), on a timer) while the same isolate serves others that burn CPU is charged only its own CPU,
 * so it answers, however much the others burn meanwhile (each stays under the limit). Before, each
 * request was charged the whole isolate's CPU since it started: the waiting one hit the limit and the
 * isolate, with every request in it, was killed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startSlowOrigin } from './helpers/slow-origin.ts';

/** Well above a burn, so that isolated-vm's own timeout on a call into the isolate (wall-clock) is not hit on a loaded machine. */
const CPU_MS = 400;
const SLOW_MS = 4000;
/** Loop turns of about 10 ms of CPU here (the isolate's clock does not move while code runs: no spinning on Date.now()). */
const BURN_TURNS = 2_000_000;
/** Burns to run while the requests wait: at about 10 ms each, twice the limit. */
const MIN_BURNS = 80;

const worker = (origin: string) => `
const burn = (n) => { let x = 0; for (let i = 0; i < n; i++) x = (x * 31 + i) | 0; return x; };
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    // CPU in the request's own task, or after an await (in the task of a capability call's answer).
    if (path.endsWith('/burn')) { burn(${BURN_TURNS}); return new Response('burned'); }
    if (path.endsWith('/burn-after')) { await fetch('${origin}/fast'); burn(${BURN_TURNS}); return new Response('burned'); }
    if (path.endsWith('/slow-fetch')) return new Response('slow ' + (await (await fetch('${origin}/slow')).text()));
    if (path.endsWith('/slow-timer')) { await new Promise((r) => setTimeout(r, ${SLOW_MS})); return new Response('slow timer'); }
    return new Response('ok');
  },
};`;

describe('CPU time per request: a waiting request is not charged the others’ CPU', () => {
  let mesh: TestMesh;
  let origin: Server;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cpu-accounting-'));
  const get = (path: string) => fetch(`${mesh.httpUrl}/busy/${path}`);
  before(async () => {
    const slow = await startSlowOrigin(SLOW_MS);
    origin = slow.server;
    const url = slow.url;
    writeFileSync(join(dir, 'index.js'), worker(url));
    mesh = await startTestMesh();
    const deploy = await mesh.cli(
      ['deploy', join(dir, 'index.js'), '--name', 'busy', '--route', '*/busy/*', '--origin', url, '--cpu-ms', String(CPU_MS), '--wall-ms', '20000'],
      dir,
    );
    assert.equal(deploy.code, 0, deploy.stderr);
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('both workers', async () => ((await get('x')).status === 200 && (await fetch(`${mesh.httpUrl}/hello`)).status === 200) || undefined);
  });
  after(async () => {
    await mesh?.stop();
    origin?.closeAllConnections();
    origin?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('requests waiting on a slow fetch() and on a timer answer while others burn well over the limit in all; no CPU kill; a bystander is served', async () => {
    let pending = 2;
    const waiting = ['slow-fetch', 'slow-timer'].map((p) =>
      get(p).then(async (r) => {
        pending--;
        return { status: r.status, body: await r.text() };
      }),
    );
    // Requests sent in together are charged together (docs/limits.md): the burning ones start once the waiting ones are in.
    await new Promise((r) => setTimeout(r, 500));
    // Two at a time, alternating a burn in the request's own task and one after an await, until both waiting ones answered.
    let burned = 0;
    const statuses = new Set<number>();
    const failures: string[] = [];
    const deadline = Date.now() + 4 * SLOW_MS;
    await Promise.all(
      [0, 1].map(async (lane) => {
        for (let i = 0; pending > 0 && i < 500 && Date.now() < deadline; i++) {
          const r = await get((i + lane) % 2 ? 'burn-after' : 'burn');
          statuses.add(r.status);
          const body = await r.text();
          if (body === 'burned') burned++;
          else if (failures.length < 3) failures.push(body);
        }
      }),
    );
    const [slowFetch, slowTimer] = await Promise.all(waiting);
    assert.deepEqual(slowFetch, { status: 200, body: 'slow done' });
    assert.deepEqual(slowTimer, { status: 200, body: 'slow timer' });
    // Enough burned meanwhile that charging the waiting requests with it would have broken their limit.
    assert.ok(burned >= MIN_BURNS, `only ${burned} burns ran while the requests waited`);
    assert.deepEqual([...statuses], [200], `every burning request answered: ${failures.join(' | ')}`);
    assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200, 'the bystander is served');
    const logs = (await mesh.cli(['logs', 'busy'])).stdout;
    assert.doesNotMatch(logs, /CPU time limit/, 'no CPU-limit kill');
  });
});
