/**
 * `cordon/client` against the real mesh: the package export, then every workflow call over a real
 * WebSocket on the examples/workflows worker — create, status, list with a cursor, pause/resume,
 * sendEvent, watch (each step end and the final status, pushed by the engine), and 10,000
 * watch/dispose cycles that leave the supervisor's tables where they were. Tracing is on (an OTLP
 * receiver in the test): the engine calls a client's watch inside a run's trace, and a client speaks
 * plain capnweb, so no trace line may reach it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { connect, type Cordon, type WatchEvent } from '../client/index.ts';
import { connect as natsConnect } from '@nats-io/transport-node';
import { natsServerMissing, startNatsServer } from '../lib/rpc/testing/nats-server.ts';
import { receiver, type Receiver } from './helpers/otlp.ts';

describe('cordon/client over WebSocket', () => {
  let mesh: TestMesh;
  let cordon: Cordon;
  let rpcUrl: string;
  let otlp: Receiver;
  const token = async (scope: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scope]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  before(async () => {
    otlp = await receiver();
    mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_TRACES_SAMPLER: 'always_on' });
    rpcUrl = `${mesh.adminUrl.replace('http:', 'ws:')}/rpc`;
    const d = await mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    assert.equal(d.code, 0, d.stderr);
    // The worker's fetch creates the table its steps write to (examples/workflows/index.ts).
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
    cordon = await connect(rpcUrl, { token: await token('workflows') });
  });
  after(async () => {
    cordon?.[Symbol.dispose]();
    await mesh?.stop();
    otlp?.close();
  });

  test('the package exports cordon/client as JavaScript a Node without TypeScript runs', async () => {
    await promisify(execFile)(process.execPath, ['client/build.mjs'], { cwd: ROOT });
    const pkg = (await import('cordon/client' as string)) as typeof import('../client/index.ts');
    const c = await pkg.connect(rpcUrl, { token: await token('read') });
    assert.deepEqual({ ...(await c.whoami()), tokenId: 'x' }, { tokenId: 'x', scopes: ['read'], tenant: 'default', bound: false });
    c[Symbol.dispose]();
  });

  test('create, status, watch each step end and the final status, sendEvent, list with a cursor', async () => {
    const instance = cordon.workflows('signup').create({ id: 'rpc-ada', params: { user: 'ada', sleepMs: 20 } });
    assert.equal(await instance.id, 'rpc-ada');
    const events: WatchEvent[] = [];
    const watch = await instance.watch((e) => void events.push(e));
    await waitFor(
      'the wait for approval',
      async () => ((await instance.status()).status === 'waiting' && (await instance.status()).steps.length === 3) || undefined,
    );
    await instance.sendEvent({ type: 'approved', payload: { by: 'bob' } });
    await waitFor('the final status', () => events.some((e) => e.type === 'status' && e.status.status === 'complete') || undefined);
    const steps = events.filter((e) => e.type === 'step').map((e) => (e.type === 'step' ? [e.step.name, e.step.status] : []));
    assert.deepEqual(steps, [
      ['create user', 'complete'],
      ['cool off', 'complete'],
      ['approval', 'complete'],
      ['flaky', 'complete'],
    ]);
    const last = events.at(-1)!;
    assert.ok(last.type === 'status');
    assert.deepEqual(last.status.output, { user: 'ada', approvedBy: 'bob', attempts: 3 });
    assert.equal(events[0]!.type, 'status', 'a watch starts with the status now');
    watch[Symbol.dispose]();
    const done = await instance.status();
    assert.equal(done.status, 'complete');
    await waitFor('the instance traced meanwhile', () => otlp.spans.some((s) => s.attrs['cordon.workflow.instance'] === 'rpc-ada') || undefined);
    assert.deepEqual(done.steps.find((s) => s.name === 'create user')!.output, { id: 'ada' });

    const batch = await cordon
      .workflows('signup')
      .createBatch([{ id: 'rpc-b1', params: { user: 'b1' } }, { id: 'rpc-b2', params: { user: 'b2' } }, { id: 'rpc-ada' }]);
    assert.deepEqual(await Promise.all(batch.map((b) => b.id)), ['rpc-b1', 'rpc-b2'], 'an id in use is skipped');
    const first = await cordon.workflows('signup').list({ limit: 2 });
    assert.equal(first.instances.length, 2);
    assert.ok(first.cursor);
    const rest = await cordon.workflows('signup').list({ limit: 100, cursor: first.cursor });
    const all = [...first.instances, ...rest.instances].map((i) => i.id);
    assert.deepEqual([...all].sort(), ['rpc-ada', 'rpc-b1', 'rpc-b2']);
    assert.equal(rest.cursor, null);
    assert.deepEqual(
      (await cordon.workflows('signup').list({ status: 'complete' })).instances.map((i) => i.id),
      ['rpc-ada'],
    );
  });

  test('workers: fetch a worker without the public ingress; deploy and list with a deploy token; a read token only reads', async () => {
    const deployer = await connect(rpcUrl, { token: await token('deploy,read') });
    const reader = await connect(rpcUrl, { token: await token('read') });
    try {
      const input = {
        name: 'rpc-hello',
        mainModule: 'index.js',
        modules: [
          {
            name: 'index.js',
            type: 'esm' as const,
            content: "export default { async fetch(r) { return new Response(r.method + ' ' + new URL(r.url).pathname + ' ' + (await r.text())) } }",
          },
        ],
      };
      const deployed = await deployer.deploy(input);
      assert.equal(deployed.worker, 'default/rpc-hello');
      assert.deepEqual(deployed.routes, [], 'no route: it is reachable only through the capability');
      // The same validation as the admin API: a module that is not there is refused with its message.
      await assert.rejects(
        Promise.resolve(deployer.deploy({ ...input, mainModule: 'missing.js' })),
        /mainModule missing.js is not one of the uploaded esm modules/,
      );
      // No tenant parameter: a capability is for one tenant already.
      await assert.rejects(Promise.resolve(deployer.deploy({ ...input, tenant: 'other' })), /deploy takes no tenant/);
      assert.ok((await reader.listWorkers()).some((w) => w.id === 'default/rpc-hello'));
      const res = await cordon.workers('rpc-hello').fetch(new Request('http://rpc-hello.internal/x', { method: 'POST', body: 'hi' }));
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'POST /x hi');
      // The read token reads, and every change is refused naming the scope it lacks.
      await assert.rejects(Promise.resolve(reader.deploy(input)), /lacks the deploy scope, which rpc\.deploy needs/);
      await assert.rejects(
        Promise.resolve(reader.workers('rpc-hello').fetch(new Request('http://x/'))),
        /lacks the workflows scope, which rpc\.workers\.fetch needs/,
      );
      await assert.rejects(Promise.resolve(reader.workflows('signup').create({})), /lacks the workflows scope/);
      await assert.rejects(Promise.resolve(cordon.deploy(input)), /lacks the deploy scope/);
      await assert.rejects(Promise.resolve(cordon.workers('nobody').fetch(new Request('http://x/'))), /no worker default\/nobody/);
    } finally {
      deployer[Symbol.dispose]();
      reader[Symbol.dispose]();
    }
  });

  test('pause and resume from a capability got with get(id); the watch sees both', async () => {
    const instance = cordon.workflows('signup').get('rpc-b1');
    await waitFor('b1 waiting for its event', async () => (await instance.status()).status === 'waiting' || undefined);
    const statuses: string[] = [];
    using _watch = await instance.watch((e) => void (e.type === 'status' && statuses.push(e.status.status)));
    await instance.pause();
    await waitFor('paused', () => statuses.includes('paused') || undefined);
    await instance.resume();
    await waitFor('resumed', () => statuses.at(-1) !== 'paused' || undefined);
    await instance.terminate();
    await waitFor('terminated', () => statuses.at(-1) === 'terminated' || undefined);
    assert.deepEqual(statuses.slice(0, 2), ['waiting', 'paused']);
  });

  test('examples/client: a plain Node service starts the workflow, watches it step by step and prints its output', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['examples/client/main.ts', rpcUrl], {
      cwd: ROOT,
      env: { ...mesh.env, CORDON_TOKEN: await token('workflows') },
      timeout: 60_000,
    });
    assert.match(stdout, /step create user \(do\): complete after 1 attempt/);
    assert.match(stdout, /step flaky \(do\): complete after 3 attempt/);
    assert.match(stdout, /output: \{ user: 'ada', approvedBy: 'the example', attempts: 3 \}/);
  });

  test('a client killed mid-watch: its connection and watch are cleaned up, the instance goes on', async () => {
    const script = `import { connect } from ${JSON.stringify(`${ROOT}/client/index.ts`)};
      const c = await connect(process.argv[1], { token: process.argv[2] });
      await c.workflows('signup').get('rpc-b2').watch(() => {});
      console.log((await c.whoami()).tokenId);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, rpcUrl, await token('read')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const tokenId = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    child.kill('SIGKILL');
    await waitFor(
      'the supervisor to drop the connection',
      () =>
        mesh
          .output()
          .split('\n')
          .some((l) => l.includes('RPC client disconnected') && l.includes(`token:${tokenId}`)) || undefined,
    );
    const instance = cordon.workflows('signup').get('rpc-b2');
    await instance.sendEvent({ type: 'approved', payload: { by: 'after the kill' } });
    await waitFor('rpc-b2 to complete', async () => (await instance.status()).status === 'complete' || undefined);
    assert.doesNotMatch(mesh.output(), /a workflow watcher failed/);
  });

  test('10,000 watch/dispose cycles leave the export tables and the watches where they were', async () => {
    const instance = cordon.workflows('signup').get('rpc-ada');
    await instance.status();
    const before = await cordon.stats();
    // In rounds of 50 at once (within the session's calls-in-flight quota), each disposed at once.
    for (let round = 0; round < 200; round++) {
      const watches = await Promise.all(Array.from({ length: 50 }, () => instance.watch(() => {})));
      for (const w of watches) w[Symbol.dispose]();
    }
    // Releases travel after the last dispose: wait (bounded) until the supervisor has processed them.
    const after = await waitFor(
      'the releases to arrive',
      async () => {
        const s = await cordon.stats();
        return s.watches === 0 && s.imports <= before.imports ? s : undefined;
      },
      30_000,
    );
    assert.equal(after.watches, 0);
    assert.ok(after.exports <= before.exports + 2, `exports ${before.exports} → ${after.exports}`);
    assert.ok(after.imports <= before.imports, `imports ${before.imports} → ${after.imports}`);
  });
});

const natsMissing = natsServerMissing();
if (natsMissing && process.env.CORDON_REQUIRE_ALL === '1') test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(natsMissing));

describe('cordon/client over NATS, in a cluster', { skip: natsMissing }, () => {
  let nats: { url: string; stop(): Promise<void> };
  let mesh: TestMesh;
  const token = async (scope: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scope]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  before(async () => {
    nats = await startNatsServer();
    mesh = await startTestMesh({}, ['--nats', nats.url]);
    const d = await mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    await nats?.stop();
  });

  test('the same calls over NATS: create, watch to completion, sendEvent; the token never crosses; scopes and bad tokens refused', async () => {
    // Another NATS user reading every session subject sees no token.
    const spy = await natsConnect({ servers: nats.url.replace(/^nats:\/\//, '') });
    const seen: string[] = [];
    spy.subscribe('cordon.s.>', { callback: (_e, m) => void seen.push(Buffer.from(m.data).toString('latin1')) });
    const secret = await token('workflows');
    const cordon = await connect(nats.url, { token: secret });
    try {
      const who = await cordon.whoami();
      assert.deepEqual(who.scopes, ['workflows']);
      const instance = cordon.workflows('signup').create({ id: 'nats-ada', params: { user: 'ada', sleepMs: 10 } });
      const events: WatchEvent[] = [];
      const watch = await instance.watch((e) => void events.push(e));
      await waitFor('the wait for approval', async () => ((await instance.status()).status === 'waiting' ? true : undefined));
      await instance.sendEvent({ type: 'approved', payload: { by: 'nats' } });
      await waitFor('the final status', () => events.some((e) => e.type === 'status' && e.status.status === 'complete') || undefined);
      watch[Symbol.dispose]();
      assert.deepEqual((await instance.status()).output, { user: 'ada', approvedBy: 'nats', attempts: 3 });
    } finally {
      cordon[Symbol.dispose]();
    }
    await spy.flush();
    assert.ok(seen.length > 0, 'the spy saw the session');
    assert.ok(!seen.some((m) => m.includes(secret)), 'the token never crossed NATS');
    await spy.close();

    const reader = await connect(nats.url, { token: await token('read') });
    try {
      await assert.rejects(Promise.resolve(reader.workflows('signup').create({})), /lacks the workflows scope/);
    } finally {
      reader[Symbol.dispose]();
    }
    await assert.rejects(connect(nats.url, { token: 'cordon_not-a-token' }), /refused the connection/);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '100'])).stdout, /rpc\.connect\tnats:client-rpc\tdenied/);
  });
});
