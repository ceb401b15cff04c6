/**
 * Tracing through the real mesh: every service exports OTLP/HTTP (JSON) to a receiver this test runs
 * on loopback; the test rebuilds the span tree of one request (ingress → sandbox → supervisor storage
 * and fetch → egress) and of one workflow instance, and checks that no secret, token, code key or
 * body reached a span. With OTEL_TRACES_SAMPLER=always_off nothing is exported.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { natsServerMissing, startNatsServer } from '../lib/rpc/testing/nats-server.ts';
import { receiver, type Receiver, type SpanRecord } from './helpers/otlp.ts';

/** The only span of `trace` called `name` (from `service`). */
function one(spans: SpanRecord[], traceId: string, service: string, name: string): SpanRecord {
  const found = spans.filter((s) => s.traceId === traceId && s.service === service && s.name === name);
  assert.equal(
    found.length,
    1,
    `one ${service} span "${name}" in the trace; got ${found.length}: ${spans
      .filter((s) => s.traceId === traceId)
      .map((s) => `${s.service}:${s.name}`)
      .join(', ')}`,
  );
  return found[0]!;
}

/**
 * Every span of the trace has its parent in the trace, but its one root. Each process exports in
 * batches of its own, so a child can arrive before its parent: the tree is awaited (bounded), then checked.
 */
async function assertTree(spans: SpanRecord[], traceId: string, root: SpanRecord): Promise<void> {
  const orphans = () => {
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const ids = new Set(inTrace.map((s) => s.spanId));
    return inTrace.filter((s) => s !== root && !(s.parent && ids.has(s.parent)));
  };
  await waitFor('every span’s parent to arrive', () => (orphans().length === 0 ? true : undefined), 20_000).catch(() => {});
  for (const s of orphans()) assert.fail(`${s.service}:${s.name} has its parent in the trace`);
}

/** Send one request through the traced worker and check its trace: the same over Unix sockets and NATS. */
async function checkRequestTrace(mesh: TestMesh, otlp: Receiver, originUrl: string, marker: string): Promise<void> {
  const url = `${mesh.httpUrl}/traced?origin=${encodeURIComponent(originUrl)}`;
  const r = await waitFor('the traced worker', async () => {
    const res = await fetch(url, { method: 'POST', body: marker });
    return res.status === 200 ? res : undefined;
  });
  assert.equal(await r.text(), 'stored and sent: 200 origin ok');
  // The last request's trace: the ingress span of a 200 for the worker, once egress's span of it has arrived too.
  const root = await waitFor(
    'the spans of the request',
    () => {
      const roots = otlp.spans.filter((s) => s.service === 'cordon-ingress' && s.name === 'ingress request' && s.attrs['http.response.status_code'] === 200);
      return roots.find((root) => otlp.spans.some((s) => s.traceId === root.traceId && s.service === 'cordon-egress'));
    },
    20_000,
  ).catch((e: Error) => {
    throw new Error(
      `${e.message}; spans seen: ${otlp.spans.map((s) => `${s.service}:${s.name}:${s.traceId.slice(0, 6)}:${s.spanId.slice(0, 6)}<-${s.parent?.slice(0, 6)}`).join(' ')}`,
    );
  });
  const t = root.traceId;
  assert.equal(root.parent, undefined, 'the ingress span is the root');
  assert.deepEqual(
    [root.attrs['cordon.tenant'], root.attrs['cordon.worker'], root.attrs['cordon.cordon'], root.attrs['http.route']],
    ['default', 'traced', 'standard', '*/traced*'],
  );
  assert.match(String(root.attrs['cordon.version']), /^[0-9a-f]{64}$/);

  const sandbox = one(otlp.spans, t, 'cordon-sandbox', 'sandbox handle');
  assert.equal(sandbox.parent, root.spanId, 'the sandbox span is a child of the ingress span');
  assert.equal(sandbox.resource['cordon.cordon'], 'standard');
  assert.equal(sandbox.attrs['cordon.worker'], 'traced');
  assert.equal(sandbox.attrs['http.response.status_code'], 200);

  const put = one(otlp.spans, t, 'cordon-supervisor', 'kv.put');
  const get = one(otlp.spans, t, 'cordon-supervisor', 'kv.get');
  for (const s of [put, get]) {
    assert.equal(s.parent, sandbox.spanId, `${s.name} is a child of the sandbox span`);
    assert.deepEqual([s.attrs['cordon.tenant'], s.attrs['cordon.worker']], ['default', 'traced']);
  }
  const fetchSpan = one(otlp.spans, t, 'cordon-supervisor', 'fetch');
  assert.equal(fetchSpan.parent, sandbox.spanId, 'the supervisor fetch is a child of the sandbox span');
  const egress = one(otlp.spans, t, 'cordon-egress', 'egress fetch');
  assert.equal(egress.parent, fetchSpan.spanId, 'the egress span is a child of the supervisor fetch');
  assert.deepEqual([egress.attrs['cordon.worker'], egress.attrs['http.response.status_code']], ['traced', 200]);
  await assertTree(otlp.spans, t, root);
}

/** The origin the traced worker fetches, declared by the operator at deploy. */
async function originServer(): Promise<{ url: string; close(): void }> {
  const server: Server = createServer((req, res) => req.resume().on('end', () => res.end('origin ok')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => (server.closeAllConnections(), server.close()) };
}

async function deployTraced(mesh: TestMesh, originUrl: string): Promise<void> {
  const d = await mesh.cli(['deploy', 'test/fixtures/traced/index.ts', '--name', 'traced', '--route', '*/traced*', '--storage', 'DB', '--origin', originUrl]);
  assert.equal(d.code, 0, d.stderr);
}

const CODE_KEY_SHAPE = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/;

/** No exported span carries the admin token, the mesh secret, a code key or the request body. */
function checkNoSecrets(mesh: TestMesh, otlp: Receiver, marker: string): void {
  const adminToken = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const secret = readFileSync(join(mesh.dataDir, 'mesh.secret'));
  const forbidden = [adminToken, secret.toString('utf8').trim(), secret.toString('hex'), secret.toString('base64'), marker].filter(
    (s) => s.length >= 16 || s === marker,
  );
  assert.ok(otlp.spans.length > 0);
  for (const s of otlp.spans)
    for (const v of s.strings) {
      for (const f of forbidden) assert.ok(!v.includes(f), `${s.service}:${s.name} carries a secret or body`);
      assert.doesNotMatch(v, CODE_KEY_SHAPE, `${s.service}:${s.name} carries something shaped like a code key`);
    }
}

describe('one trace per request, exported over OTLP/HTTP', () => {
  let mesh: TestMesh;
  let otlp: Receiver;
  let origin: { url: string; close(): void };
  let originUrl: string;
  const marker = `BODY_MARKER_${randomBytes(6).toString('hex')}`;

  before(async () => {
    otlp = await receiver();
    origin = await originServer();
    originUrl = origin.url;
    mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_TRACES_SAMPLER: 'parentbased_always_on' });
    await deployTraced(mesh, originUrl);
    const w = await mesh.cli(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    assert.equal(w.code, 0, w.stderr);
    // A request to the signup worker creates the table its steps write to.
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    otlp?.close();
    origin?.close();
  });

  test('a request is one trace: ingress → sandbox → supervisor (storage, fetch) → egress, parent links across processes', () =>
    checkRequestTrace(mesh, otlp, originUrl, marker));

  test('a workflow instance is one trace with a span per step attempt, sleep and event wait', async () => {
    const created = await mesh.cli(['workflows', 'create', 'signup', '--params', JSON.stringify({ user: 'ada', sleepMs: 50 })]);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const status = async () => JSON.parse((await mesh.cli(['workflows', 'status', 'signup', id, '--json'])).stdout) as { status: string };
    await waitFor('the instance to wait for its event', async () => ((await status()).status === 'waiting' ? true : undefined), 20_000);
    await mesh.cliOk(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"bob"}']);
    await waitFor('the instance to complete', async () => ((await status()).status === 'complete' ? true : undefined), 30_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await status())}`);
    });
    const root = await waitFor(
      'the instance span',
      () => otlp.spans.find((s) => s.name === 'workflow instance' && s.attrs['cordon.workflow.instance'] === id),
      20_000,
    );
    const t = root.traceId;
    // The flaky step succeeds on its third attempt, in one run or across runs: one span each, all in this trace.
    await waitFor(
      'three attempts of the flaky step',
      () => (otlp.spans.filter((s) => s.traceId === t && s.name === 'step flaky').length === 3 ? true : undefined),
      20_000,
    );
    const names = otlp.spans.filter((s) => s.traceId === t).map((s) => s.name);
    for (const want of ['step create user', 'sleep cool off', 'waitForEvent approval']) assert.ok(names.includes(want), `${want} in ${names.join(', ')}`);
    const runs = otlp.spans.filter((s) => s.traceId === t && s.name === 'workflow run');
    assert.ok(runs.length >= 2, 'the runs before and after the event are in the one trace');
    for (const run of runs) assert.equal(run.parent, root.spanId, 'each run is a child of the instance');
    const runIds = new Set(runs.map((r) => r.spanId));
    for (const s of otlp.spans.filter((s) => s.traceId === t && /^(step|sleep|waitForEvent) /.test(s.name)))
      assert.ok(runIds.has(s.parent!), `${s.name} is a span of a run`);
    const inSandbox = otlp.spans.filter((s) => s.traceId === t && s.service === 'cordon-sandbox' && s.name === 'sandbox workflow run');
    assert.ok(inSandbox.length >= 2, 'the sandbox side of each run is in the trace');
    for (const s of inSandbox) assert.ok(runIds.has(s.parent!) && s.attrs['cordon.worker'] === 'signup', "a child of the engine's run span, naming the worker");
    const flaky = otlp.spans.filter((s) => s.traceId === t && s.name === 'step flaky').map((s) => s.attrs['cordon.workflow.step.attempt']);
    assert.deepEqual(flaky.sort(), [1, 2, 3]);
    assert.deepEqual(
      [root.service, root.attrs['cordon.tenant'], root.attrs['cordon.worker'], root.attrs['cordon.workflow']],
      ['cordon-supervisor', 'default', 'signup', 'signup'],
    );
    await assertTree(otlp.spans, t, root);
  });

  test('no span carries the admin token, the mesh secret, a code key or a request body', () => checkNoSecrets(mesh, otlp, marker));
});

const natsMissing = natsServerMissing();
if (natsMissing && process.env.CORDON_REQUIRE_ALL === '1') test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(natsMissing));

describe('one trace per request over NATS', { skip: natsMissing }, () => {
  test('the same tree when the services talk over nats-server', async () => {
    const otlp = await receiver();
    const origin = await originServer();
    const nats = await startNatsServer();
    const mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url }, ['--nats', nats.url]);
    const marker = `BODY_MARKER_${randomBytes(6).toString('hex')}`;
    try {
      await deployTraced(mesh, origin.url);
      await checkRequestTrace(mesh, otlp, origin.url, marker);
      checkNoSecrets(mesh, otlp, marker);
    } finally {
      await mesh.stop();
      await nats.stop();
      otlp.close();
      origin.close();
    }
  });
});

describe('OTEL_TRACES_SAMPLER=always_off', () => {
  test('nothing is exported', async () => {
    const otlp = await receiver();
    const mesh = await startTestMesh({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_TRACES_SAMPLER: 'always_off' });
    try {
      const d = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
      assert.equal(d.code, 0, d.stderr);
      await waitFor('the hello worker', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200);
    } finally {
      await mesh.stop(); // services flush their exporters when they stop
      otlp.close();
    }
    assert.deepEqual(
      otlp.spans.map((s) => `${s.service}:${s.name}`),
      [],
    );
  });
});
