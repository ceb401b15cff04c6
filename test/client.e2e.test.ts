/**
 * `cordon/client` against the real mesh, one list of cases run over each transport: a WebSocket to
 * `/rpc` on the admin port, and NATS in a cluster (`connect('nats://…')`, the token proven, never sent).
 * On the examples/workflows worker: the package export, create/createBatch/get/list with a cursor,
 * status, pause/resume/terminate/restart, sendEvent, watch (each step end and the final status, pushed
 * by the engine) and its disposal, `workers(name).fetch`, deploy/listWorkers with a deploy token, a read
 * token's refusals naming the scope, a tenant-bound token that cannot name another tenant, a revocation
 * mid-watch, a client killed mid-watch, and the example service. Tracing is on (an OTLP receiver in
 * the test): the engine calls a client's watch inside a run's trace, and a client speaks plain
 * capnweb, so no trace line may reach it.
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

/** capnweb's RpcPromise is a thenable, not a Promise: node:assert wants the latter. */
const rejects = (p: PromiseLike<unknown>, error: RegExp) => assert.rejects(Promise.resolve(p), error);

/** What a case gets: the mesh, the URL a client connects to, a main capability with a workflows token. */
interface Ctx {
  mesh: TestMesh;
  url: string;
  cordon: Cordon;
  otlp: Receiver;
  nats?: { url: string; stop(): Promise<void> };
  token(scope: string, tenant?: string): Promise<string>;
}

interface Transport {
  name: string;
  skip?: string | false;
  /** Started before the mesh; gives the mesh's extra arguments and the URL clients use. */
  start(): Promise<{ args: string[]; url(mesh: TestMesh): string; nats?: Ctx['nats'] }>;
  /** Cases of this transport alone. */
  only?(ctx: Ctx): void;
}

const natsMissing = natsServerMissing();
if (natsMissing && process.env.CORDON_REQUIRE_ALL === '1') test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(natsMissing));

const transports: Transport[] = [
  {
    name: 'WebSocket',
    start: async () => ({ args: [], url: (mesh) => `${mesh.adminUrl.replace('http:', 'ws:')}/rpc` }),
    // Over WebSocket only: the tables counted are the capnweb session's, above the transport, so over
    // NATS they would count the same; the 20,000 calls take half a minute here already, and NATS adds a
    // hop through nats-server to each. A NATS client's release on going away is the killed-client case.
    only: (ctx) =>
      test('10,000 watch/dispose cycles leave the export tables and the watches where they were', async () => {
        const instance = ctx.cordon.workflows('signup').get('rpc-ada');
        await instance.status();
        const before = await ctx.cordon.stats();
        // In rounds of 50 at once (within the session's calls-in-flight quota), each disposed at once.
        for (let round = 0; round < 200; round++) {
          const watches = await Promise.all(Array.from({ length: 50 }, () => instance.watch(() => {})));
          for (const w of watches) w[Symbol.dispose]();
        }
        // Releases travel after the last dispose: wait (bounded) until the supervisor has processed them.
        const after = await waitFor(
          'the releases to arrive',
          async () => {
            const s = await ctx.cordon.stats();
            return s.watches === 0 && s.imports <= before.imports ? s : undefined;
          },
          30_000,
        );
        assert.equal(after.watches, 0);
        assert.ok(after.exports <= before.exports + 2, `exports ${before.exports} → ${after.exports}`);
        assert.ok(after.imports <= before.imports, `imports ${before.imports} → ${after.imports}`);
      }),
  },
  {
    name: 'NATS, in a cluster',
    skip: natsMissing,
    start: async () => {
      const nats = await startNatsServer();
      return { args: ['--nats', nats.url], url: () => nats.url, nats };
    },
    only: (ctx) =>
      test('the token never crosses NATS; a client idle past the session time-out keeps its session; a bad token is refused and audited', async () => {
        // Another NATS user reading every session subject sees no token.
        const spy = await natsConnect({ servers: ctx.url.replace(/^nats:\/\//, '') });
        const seen: string[] = [];
        spy.subscribe('cordon.s.>', { callback: (_e, m) => void seen.push(Buffer.from(m.data).toString('latin1')) });
        const secret = await ctx.token('workflows');
        const c = await connect(ctx.url, { token: secret });
        try {
          assert.equal((await c.workflows('signup').get('rpc-ada').status()).status, 'complete');
          // Idle past the supervisor's session time-out (3 s): heartbeats keep the session.
          await new Promise((r) => setTimeout(r, 4000));
          assert.deepEqual((await c.whoami()).scopes, ['workflows']);
        } finally {
          c[Symbol.dispose]();
        }
        await spy.flush();
        assert.ok(seen.length > 0, 'the spy saw the session');
        assert.ok(!seen.some((m) => m.includes(secret)), 'the token never crossed NATS');
        await spy.close();
        await rejects(connect(ctx.url, { token: 'cordon_not-a-token' }), /refused the connection/);
        assert.match((await ctx.mesh.cli(['audit', 'tail', '--limit', '100'])).stdout, /rpc\.connect\tnats:client-rpc\tdenied/);
      }),
  },
];

const RPC_API = `import { WorkerEntrypoint, RpcTarget } from 'cloudflare:workers';
class Counter extends RpcTarget { #n = 0; inc() { return ++this.#n; } }
export default class extends WorkerEntrypoint {
  add(a, b) { return a + b; }
  async twice(fn, x) { return await fn(await fn(x)); }
  counter() { return new Counter(); }
  whoami() { return { props: this.ctx.props ?? null }; }
  slow(ms) { return new Promise((r) => setTimeout(() => r('slept'), ms)); }
}
export class Named extends WorkerEntrypoint { whoami() { return { named: true, props: this.ctx.props ?? null }; } }`;

for (const transport of transports) {
  describe(`cordon/client over ${transport.name}`, { skip: transport.skip }, () => {
    const ctx = {} as Ctx;
    let stopNats: (() => Promise<void>) | undefined;

    before(async () => {
      const started = await transport.start();
      stopNats = started.nats?.stop;
      ctx.nats = started.nats;
      ctx.otlp = await receiver();
      ctx.mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlp.url, OTEL_TRACES_SAMPLER: 'always_on' }, started.args);
      ctx.url = started.url(ctx.mesh);
      ctx.token = async (scope, tenant) => {
        const r = await ctx.mesh.cli(['tokens', 'create', '--scope', scope, ...(tenant ? ['--tenant', tenant] : [])]);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.trim();
      };
      const d = await ctx.mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
      assert.equal(d.code, 0, d.stderr);
      // The worker's fetch creates the table its steps write to (examples/workflows/index.ts).
      await waitFor('the signup worker', async () => (await fetch(`${ctx.mesh.httpUrl}/signup/none`)).status === 404 || undefined);
      ctx.cordon = await connect(ctx.url, { token: await ctx.token('workflows') });
    });
    after(async () => {
      ctx.cordon?.[Symbol.dispose]();
      await ctx.mesh?.stop();
      ctx.otlp?.close();
      await stopNats?.();
    });

    clientCases(ctx);
    transport.only?.(ctx);
  });
}

/** The cases every transport runs, in order (later ones use the instances earlier ones made). */
function clientCases(ctx: Ctx): void {
  test('the package exports cordon/client as JavaScript a Node without TypeScript runs', async () => {
    await promisify(execFile)(process.execPath, ['client/build.mjs'], { cwd: ROOT });
    const pkg = (await import('cordon/client' as string)) as typeof import('../client/index.ts');
    const c = await pkg.connect(ctx.url, { token: await ctx.token('read') });
    assert.deepEqual({ ...(await c.whoami()), tokenId: 'x' }, { tokenId: 'x', scopes: ['read'], tenant: 'default', bound: false });
    c[Symbol.dispose]();
  });

  test('create, status, watch each step end and the final status, sendEvent, createBatch, list with a cursor', async () => {
    const { cordon, otlp } = ctx;
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
    const { cordon, url } = ctx;
    const deployer = await connect(url, { token: await ctx.token('deploy,read') });
    const reader = await connect(url, { token: await ctx.token('read') });
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
      await rejects(deployer.deploy({ ...input, mainModule: 'missing.js' }), /mainModule missing.js is not one of the uploaded esm modules/);
      // No tenant parameter: a capability is for one tenant already.
      await rejects(deployer.deploy({ ...input, tenant: 'other' }), /deploy takes no tenant/);
      assert.ok((await reader.listWorkers()).some((w) => w.id === 'default/rpc-hello'));
      const res = await cordon.workers('rpc-hello').fetch(new Request('http://rpc-hello.internal/x', { method: 'POST', body: 'hi' }));
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'POST /x hi');
      // The read token reads, and every change is refused naming the scope it lacks.
      await rejects(reader.deploy(input), /lacks the deploy scope, which rpc\.deploy needs/);
      await rejects(reader.workers('rpc-hello').fetch(new Request('http://x/')), /lacks the workflows scope, which rpc\.workers\.fetch needs/);
      await rejects(cordon.deploy(input), /lacks the deploy scope/);
      await rejects(cordon.workers('nobody').fetch(new Request('http://x/')), /no worker default\/nobody/);
      await rejects(deployer.workflows('signup').create({}), /lacks the workflows scope/);
    } finally {
      deployer[Symbol.dispose]();
      reader[Symbol.dispose]();
    }
  });

  test('workers: the methods of an entrypoint, callbacks and RpcTargets by reference; props need a deploy token; a read token cannot call', async () => {
    const { cordon, url } = ctx;
    const deployer = await connect(url, { token: await ctx.token('deploy,workflows') });
    const reader = await connect(url, { token: await ctx.token('read') });
    try {
      await deployer.deploy({ name: 'rpc-api', mainModule: 'index.js', modules: [{ name: 'index.js', type: 'esm', content: RPC_API }] });
      const api = cordon.workers('rpc-api').getEntrypoint();
      assert.equal(await api.add(1, 2), 3);
      assert.equal(await api.twice((x: number) => x + 1, 5), 7, 'a callback from the client, called back twice');
      {
        using counter = (await api.counter()) as { inc(): Promise<number> } & Disposable;
        await counter.inc();
        assert.equal(await counter.inc(), 2, 'an RpcTarget of the worker, held by the client');
      }
      assert.deepEqual(await api.whoami(), { props: {} });
      await rejects(Promise.resolve(api.nothing()), /The RPC receiver does not implement the method "nothing"/);
      // Props are the binding owner's word to the callee: only a token that could deploy such a binding sets them.
      assert.deepEqual(
        await deployer
          .workers('rpc-api')
          .getEntrypoint('Named', { props: { caller: 'svc' } })
          .whoami(),
        {
          named: true,
          props: { caller: 'svc' },
        },
      );
      await rejects(
        cordon
          .workers('rpc-api')
          .getEntrypoint('Named', { props: { caller: 'forged' } })
          .whoami(),
        /lacks the deploy scope, which rpc\.workers\.props needs/,
      );
      await rejects(reader.workers('rpc-api').getEntrypoint().add(1, 2), /lacks the workflows scope, which rpc\.workers\.entrypoint needs/);
      await rejects(cordon.workers('rpc-api').getEntrypoint('Missing').add(1, 2), /no entrypoint named "Missing"/);
      await rejects(cordon.workers('nobody').getEntrypoint().add(1, 2), /no worker default\/nobody/);
    } finally {
      deployer[Symbol.dispose]();
      reader[Symbol.dispose]();
    }
  });

  test('a read token reads an instance and watches it; each change is refused naming the scope it lacks', async () => {
    const reader = await connect(ctx.url, { token: await ctx.token('read') });
    try {
      const instance = reader.workflows('signup').get('rpc-b1');
      assert.equal((await instance.status()).id, 'rpc-b1');
      using _watch = await instance.watch(() => {});
      assert.deepEqual((await reader.workflows('signup').list({ limit: 100 })).instances.map((i) => i.id).sort(), ['rpc-ada', 'rpc-b1', 'rpc-b2']);
      await rejects(reader.workflows('signup').create({}), /lacks the workflows scope, which rpc\.workflows\.create needs/);
      await rejects(reader.workflows('signup').createBatch([{}]), /lacks the workflows scope, which rpc\.workflows\.createBatch needs/);
      for (const change of ['pause', 'resume', 'terminate', 'restart'] as const)
        await rejects(instance[change](), new RegExp(`lacks the workflows scope, which rpc\\.workflows\\.${change} needs`));
      await rejects(instance.sendEvent({ type: 'approved', payload: { by: 'reader' } }), /lacks the workflows scope, which rpc\.workflows\.sendEvent needs/);
      const deployOnly = await connect(ctx.url, { token: await ctx.token('deploy') });
      await rejects(deployOnly.workflows('signup').get('rpc-b1').status(), /lacks the read \(or workflows\) scope/);
      deployOnly[Symbol.dispose]();
      assert.equal((await ctx.cordon.workflows('signup').get('rpc-b1').status()).status, 'waiting', 'nothing the reader tried happened');
    } finally {
      reader[Symbol.dispose]();
    }
  });

  test('pause, resume, terminate and restart from a capability got with get(id); the watch sees each', async () => {
    const instance = ctx.cordon.workflows('signup').get('rpc-b1');
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
    await instance.restart();
    await waitFor('restarted, waiting for its event again', () => statuses.at(-1) === 'waiting' || undefined);
    assert.ok(statuses.indexOf('terminated') < statuses.lastIndexOf('waiting'));
    await instance.terminate();
    await waitFor('terminated again', () => statuses.at(-1) === 'terminated' || undefined);
  });

  test("a tenant-bound token cannot name another tenant's workflow or worker: its capabilities are its tenant's", async () => {
    const acme = await connect(ctx.url, { token: await ctx.token('workflows,deploy', 'acme') });
    try {
      assert.deepEqual({ ...(await acme.whoami()), tokenId: '' }, { tokenId: '', scopes: ['workflows', 'deploy'], tenant: 'acme', bound: true });
      await rejects(acme.tenant('default').workflows('signup').get('rpc-ada').status(), /bound to tenant acme/);
      await rejects(acme.workflows('signup').get('rpc-ada').status(), /no instance rpc-ada/);
      await rejects(acme.workflows('signup').create({ id: 'rpc-ada' }), /no workflow signup in tenant acme/);
      assert.deepEqual((await acme.workflows('signup').list()).instances, []);
      await rejects(acme.workers('rpc-hello').fetch(new Request('http://x/')), /no worker acme\/rpc-hello/);
      await rejects(acme.workers('rpc-api').getEntrypoint().add(1, 2), /no worker acme\/rpc-api/);
      assert.ok(!(await acme.listWorkers()).some((w) => !w.id.startsWith('acme/')), 'it lists only its own workers');
      // The same operator-wide name in its own tenant is its own.
      assert.equal((await acme.tenant('acme').whoami()).tenant, 'acme');
    } finally {
      acme[Symbol.dispose]();
    }
    assert.equal((await ctx.cordon.workflows('signup').get('rpc-ada').status()).status, 'complete', 'the other tenant is as it was');
  });

  test('a revocation mid-watch ends the watch and every capability got with the token at once; the instance goes on', async () => {
    const { cordon } = ctx;
    await cordon.workflows('signup').create({ id: 'rpc-revoked', params: { user: 'rev', sleepMs: 10 } });
    const secret = await ctx.token('workflows');
    const victim = await connect(ctx.url, { token: secret });
    const instance = victim.workflows('signup').get('rpc-revoked');
    const workflow = victim.workflows('signup');
    const worker = victim.workers('rpc-hello');
    const counter = (await victim.workers('rpc-api').getEntrypoint().counter()) as { inc(): Promise<number> };
    assert.equal(await counter.inc(), 1);
    const events: WatchEvent[] = [];
    await instance.watch((e) => void events.push(e));
    await waitFor('the watch to see the wait for approval', () => events.some((e) => e.type === 'status' && e.status.status === 'waiting') || undefined);
    const { tokenId } = await victim.whoami();
    const revoked = await ctx.mesh.cli(['tokens', 'revoke', tokenId]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const heard = events.length;
    await rejects(instance.status(), /revoked/);
    await rejects(instance.sendEvent({ type: 'approved' }), /revoked/);
    await rejects(workflow.list(), /revoked/);
    await rejects(worker.fetch(new Request('http://x/')), /revoked/);
    await rejects(counter.inc(), /revoked/);
    await rejects(victim.whoami(), /revoked/);
    await rejects(connect(ctx.url, { token: secret }), /refused the connection/);
    // The instance goes on for others, and the revoked watch hears none of it.
    const others = cordon.workflows('signup').get('rpc-revoked');
    await others.sendEvent({ type: 'approved', payload: { by: 'someone else' } });
    await waitFor('rpc-revoked to complete', async () => (await others.status()).status === 'complete' || undefined);
    assert.equal(events.length, heard, 'no event reached the revoked watch');
    victim[Symbol.dispose]();
  });

  test('examples/client: a plain Node service starts the workflow, watches it step by step and prints its output', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['examples/client/main.ts', ctx.url], {
      cwd: ROOT,
      env: { ...ctx.mesh.env, CORDON_TOKEN: await ctx.token('workflows') },
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
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, ctx.url, await ctx.token('read')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const tokenId = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    child.kill('SIGKILL');
    // Over NATS nothing tells the supervisor at once: the session's silence does, within its time-out.
    await waitFor(
      'the supervisor to drop the connection',
      () =>
        ctx.mesh
          .output()
          .split('\n')
          .some((l) => l.includes('RPC client disconnected') && l.includes(`token:${tokenId}`)) || undefined,
      30_000,
    );
    const instance = ctx.cordon.workflows('signup').get('rpc-b2');
    await instance.sendEvent({ type: 'approved', payload: { by: 'after the kill' } });
    await waitFor('rpc-b2 to complete', async () => (await instance.status()).status === 'complete' || undefined);
    assert.doesNotMatch(ctx.mesh.output(), /a workflow watcher failed/);
  });
}
