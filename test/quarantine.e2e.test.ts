/**
 * Blast radius: a worker that keeps taking its sandbox process down is blamed (the flight recorder
 * survives the crash), moved into a sandbox process of its own, and audited; its co-tenants stay.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('crash attribution and quarantine', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
    for (const [file, name, route] of [
      ['examples/slow/index.ts', 'crasher', '*/slow*'],
      ['examples/hello/index.ts', 'hello', '*/hello*'],
    ]) {
      await mesh.cliOk(['deploy', file!, '--name', name!, '--route', route!]);
    }
    await waitFor(
      'both workers',
      async () => ((await fetch(`${mesh.httpUrl}/slow?ms=1`)).status === 200 && (await fetch(`${mesh.httpUrl}/hello`)).status === 200) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
  });

  /** The process dies while `crasher` is running in it (as an aborting allocation would make it). */
  async function crashWhileRunning(): Promise<void> {
    const pid = mesh.servicePids().get('sandbox:standard')!;
    const inFlight = fetch(`${mesh.httpUrl}/slow?ms=3000`, { method: 'POST' }).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, 'SIGKILL');
    await inFlight;
    await waitFor('a new standard sandbox', () => {
      const p = mesh.servicePids().get('sandbox:standard');
      return p && p !== pid ? p : undefined;
    });
  }

  test('two crashes while the worker runs: it is blamed, audited and moved to a process of its own', async () => {
    await crashWhileRunning();
    await waitFor(
      'the first crash to be attributed',
      async () => /worker\.crash\tdefault\/crasher/.test((await mesh.cli(['audit', 'tail', '--limit', '200'])).stdout) || undefined,
    );
    assert.equal((await mesh.cli(['quarantine', 'list'])).stdout, '', 'one crash is not enough');
    await waitFor('crasher to serve again', async () => (await fetch(`${mesh.httpUrl}/slow?ms=1`)).status === 200 || undefined);
    await crashWhileRunning();
    const list = await waitFor('the quarantine', async () => {
      const out = (await mesh.cli(['quarantine', 'list'])).stdout;
      return out.includes('default/crasher') ? out : undefined;
    });
    const cordon = /default\/crasher\t(q-[0-9a-f]{12})\t\(was standard\)/.exec(list)![1]!;
    await waitFor('a dedicated sandbox process', () => mesh.servicePids().get(`sandbox:${cordon}`));
    await waitFor('crasher to serve from its own process', async () => (await fetch(`${mesh.httpUrl}/slow?ms=1`)).status === 200 || undefined);
    assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200, 'its co-tenant stays where it was, unharmed');
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '300'])).stdout;
    assert.match(audit, new RegExp(`supervisor\\tworker\\.quarantined\\tdefault/crasher\\tok\\t.*"cordon":"${cordon}"`));
    assert.doesNotMatch(audit, /worker\.crash\tdefault\/hello/, 'the idle co-tenant is not blamed');
    // A redeploy does not release it.
    await mesh.cliOk(['deploy', 'examples/slow/index.ts', '--name', 'crasher', '--route', '*/slow*']);
    assert.match((await mesh.cli(['workers'])).stdout, new RegExp(`default/crasher\\t[0-9a-f]{12}\\t${cordon}`));
  });

  test('release puts it back and the dedicated process goes away', async () => {
    const r = await mesh.cli(['quarantine', 'release', 'crasher']);
    assert.equal(r.code, 0, r.stderr);
    assert.match((await mesh.cli(['workers'])).stdout, /default\/crasher\t[0-9a-f]{12}\tstandard/);
    await waitFor('the dedicated process to stop', () => ([...mesh.servicePids().keys()].some((k) => k.startsWith('sandbox:q-')) ? undefined : true));
    await waitFor('crasher back on standard', async () => (await fetch(`${mesh.httpUrl}/slow?ms=1`)).status === 200 || undefined);
  });

  test('other signals over the window move a worker too: CPU-limit hits, memory-limit kills, refused capability calls, egress refusals', async () => {
    await mesh.cliOk(['deploy', 'examples/misbehave/index.ts', '--name', 'hog', '--route', '*/hog/*', '--cpu-ms', '20']);
    await mesh.cliOk(['deploy', 'examples/fetcher/index.ts', '--name', 'prober', '--route', '*/probe*']);
    // A high CPU limit for the glutton: on a busy machine a memory bomb can otherwise end on CPU time first.
    assert.equal(
      (await mesh.cli(['deploy', 'examples/misbehave/index.ts', '--name', 'glutton', '--route', '*/glutton/*', '--memory-mb', '32', '--cpu-ms', '20000'])).code,
      0,
    );
    assert.equal(
      (await mesh.cli(['deploy', 'examples/notes/index.ts', '--name', 'snoop', '--route', '*/snoop*', '--storage', 'DB', '--directory', 'FILES'])).code,
      0,
    );
    await waitFor('the workers', async () => {
      for (const path of ['hog/ok', 'probe', 'glutton/ok', 'snoop?op=list']) if ((await fetch(`${mesh.httpUrl}/${path}`)).status !== 200) return undefined;
      return true;
    });
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${mesh.httpUrl}/hog/loop`)).status, 503);
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${mesh.httpUrl}/glutton/bomb`)).status, 503);
    for (let i = 0; i < 20; i++) assert.equal((await fetch(`${mesh.httpUrl}/snoop?op=sql`, { method: 'POST', body: 'PRAGMA database_list' })).status, 409);
    for (let i = 0; i < 50; i++) assert.match(await (await fetch(`${mesh.httpUrl}/probe?url=http://127.0.0.1:1/`)).text(), /egress denied/);
    let out = '';
    const moved = [
      /default\/hog\t.*20 CPU-limit hits/,
      /default\/glutton\t.*5 memory-limit kills/,
      /default\/snoop\t.*20 refused capability calls/,
      /default\/prober\t.*50 egress refusals/,
    ];
    const list = await waitFor(
      'all four to be quarantined',
      async () => {
        out = (await mesh.cli(['quarantine', 'list'])).stdout;
        return moved.every((m) => m.test(out)) ? out : undefined;
      },
      40_000,
    ).catch(() => assert.fail(`not all four were moved:\n${out}`));
    assert.match(list, /default\/hog\tq-[0-9a-f]{12}/);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '400'])).stdout, /worker\.quarantined\tdefault\/prober/);
    await waitFor(
      'the prober served from its own process',
      async () =>
        ((await fetch(`${mesh.httpUrl}/probe`)).status === 200 && [...mesh.servicePids().keys()].filter((k) => k.startsWith('sandbox:q-')).length >= 2) ||
        undefined,
    );
  });

  test('the exact allocations that can abort a process: contained or not, co-tenants keep being served', async () => {
    assert.equal(
      (await mesh.cli(['deploy', 'examples/bomb/index.ts', '--name', 'bomb', '--route', '*/bomb*', '--memory-mb', '32', '--cpu-ms', '10000'])).code,
      0,
    );
    for (const kind of ['fill', 'copy', 'fill']) {
      const res = await fetch(`${mesh.httpUrl}/bomb?kind=${kind}`);
      // 503: the isolate hit its memory limit and was disposed; 500: V8 threw; 502: the process aborted.
      assert.ok([500, 502, 503].includes(res.status), `${kind}: ${res.status}`);
      await waitFor('the co-tenant to be served', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined, 15_000);
    }
  });
});
