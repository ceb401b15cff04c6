/**
 * A cluster as an operator runs one: each service started alone with `cordon run`, with its own data
 * dir and a keyring file issued by `cordon keys issue` (no service holds the mesh secret), over a real
 * 3-node nats-server cluster with user/password credentials. A worker deployed and served through
 * ingress; one NATS node killed mid-loop, requests keep being served. Plus the bad inputs of
 * `cordon run`: each one clear line and a non-zero exit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ROOT, waitFor } from './helpers/mesh.ts';
import { cli, runCluster, SANDBOX_FLAGS, sandboxNode, type RunCluster } from './helpers/cluster.ts';
import { natsServerMissing } from '../lib/rpc/testing/nats-server.ts';
import { connect, Keyring } from '../lib/rpc/index.ts';
import { natsTransport } from '../lib/mesh-nats.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}
const NATS_AUTH = { user: 'cordon', pass: randomBytes(12).toString('hex') };
// Values a careless host might leave in a sandbox's environment: `cordon run` must not pass them on.
const STRAY = { CORDON_MASTER_KEY: randomBytes(32).toString('hex'), CORDON_ADMIN_TOKEN: randomBytes(24).toString('hex') };

describe('a cluster of `cordon run` services over a 3-node NATS cluster', { skip: missing }, () => {
  let cluster: RunCluster;
  let httpUrl: string;
  let adminEnv: NodeJS.ProcessEnv;
  let nats: RunCluster['nats'];
  const keyFile = (name: string) => cluster.keyFile(name);
  const dir = (name: string) => cluster.dir(name);

  before(async () => {
    cluster = await runCluster({ cordons: ['standard'], auth: NATS_AUTH });
    ({ nats, httpUrl, adminEnv } = cluster);
    // In any order: a service whose peers are not up yet waits for them.
    cluster.start('sandbox', {
      cordon: 'standard',
      dir: 'sandbox',
      env: { ...STRAY, CORDON_MESH_SECRET: readFileSync(join(cluster.operator, 'mesh.secret'), 'utf8').trim() },
    });
    cluster.start('ingress');
    cluster.start('egress');
    cluster.start('supervisor');
    await cluster.healthy();
  });

  after(() => cluster?.stop());

  test("keys issue writes one role's keyring, 0600, and the sandbox's is for its cordon only", () => {
    for (const name of ['supervisor', 'egress', 'ingress', 'standard']) assert.equal(statSync(keyFile(name)).mode & 0o777, 0o600, name);
    const ring = Keyring.decode(readFileSync(keyFile('standard'), 'utf8'));
    assert.equal(ring.self, 'sandbox');
    assert.equal(ring.cordon, 'standard');
    assert.equal(ring.key('ingress', 'sandbox', 'untrusted'), undefined, "no other cordon's key");
    assert.throws(() => ring.sign(Buffer.from('x')), /holds no signing key/);
  });

  test('no service was handed the mesh secret, and none created one', () => {
    for (const d of ['supervisor', 'egress', 'ingress', 'sandbox']) assert.equal(existsSync(join(dir(d), 'mesh.secret')), false, d);
  });

  test('a sandbox started with `cordon run` holds no secret, master key or admin token', () => {
    const pid = sandboxNode(dir('sandbox'));
    assert.ok(pid, 'the sandbox process runs');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    const secret = readFileSync(join(cluster.operator, 'mesh.secret'), 'utf8').trim();
    const adminToken = readFileSync(join(dir('supervisor'), 'admin.token'), 'utf8').trim();
    for (const [what, value] of [
      ['the mesh secret', secret],
      ['the admin token', adminToken],
      ['a stray master key', STRAY.CORDON_MASTER_KEY],
      ['a stray admin token', STRAY.CORDON_ADMIN_TOKEN],
    ]) {
      assert.ok(!environ.includes(value!), `${what} is not in the sandbox's environment`);
    }
    assert.doesNotMatch(environ, /(?:^|\0)CORDON_(MESH_SECRET|MASTER_KEY|ADMIN_TOKEN|MESH_KEYRING_FILE)=/);
    const handed = Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(environ)![1]!);
    assert.deepEqual([handed.self, handed.cordon], ['sandbox', 'standard']);
    if (SANDBOX_FLAGS.length) return;
    // Confined: of the host's files it sees only what bwrap binds — not the secret, the keyring file, the supervisor's data.
    for (const f of [join(cluster.operator, 'mesh.secret'), keyFile('standard'), join(dir('supervisor'), 'admin.token'), dir('supervisor')]) {
      assert.equal(existsSync(`/proc/${pid}/root${f}`), false, `${f} is not in the sandbox's view`);
    }
    assert.ok(existsSync(`/proc/${pid}/root${ROOT}/package.json`), "the sandbox's view is readable from here (the check above means something)");
  });

  test('attack: a sandbox keyring file stolen from its host cannot join as another cordon; NATS without credentials is refused', async () => {
    const stolen = Keyring.decode(readFileSync(keyFile('standard'), 'utf8'));
    const log = {
      debug() {},
      info() {},
      warn() {},
      error() {},
      child() {
        return log;
      },
    };
    // Without NATS credentials the bus itself is closed to a stranger.
    await assert.rejects(natsTransport(nats.url, { env: {}, waitSeconds: 1 }), /refused this process's credentials/);
    const transport = await natsTransport(nats.url, { env: { CORDON_NATS_USER: NATS_AUTH.user, CORDON_NATS_PASS: NATS_AUTH.pass }, waitSeconds: 5, log });
    try {
      // The holder names another cordon: its keys prove only "standard", so the supervisor refuses the handshake.
      const channel = await transport.dial('supervisor', 1 << 20);
      await assert.rejects(connect(channel, { keyring: stolen, name: 'untrusted', expect: 'supervisor' }));
      // Nor can it answer as the supervisor to a sandbox, or as ingress: it holds no signing key.
      assert.throws(() => stolen.sign(Buffer.from('x')), /holds no signing key/);
      assert.equal(stolen.key('ingress', 'sandbox', 'untrusted'), undefined);
    } finally {
      await transport.close();
    }
    // The bystander, cordon standard's real sandbox, still serves.
    const r = await cli(['deploy', 'examples/hello/index.ts', '--name', 'bystander', '--route', '*/bystander*'], adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the bystander to serve', async () => ((await fetch(`${httpUrl}/bystander`)).status === 200 ? true : undefined), 30_000);
  });

  test('a worker deploys and serves through ingress; a NATS node killed mid-loop costs only what was in flight', async () => {
    const r = await cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*'], adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('hello over the cluster', async () => ((await fetch(`${httpUrl}/hello?name=cluster`)).status === 200 ? true : undefined), 30_000);
    const failures: string[] = [];
    let killedAt = -1;
    let recoveredMs: number | undefined;
    let killTime = 0;
    const TOTAL = 150;
    const deadline = Date.now() + 90_000;
    let i = 0;
    for (; i < TOTAL && Date.now() < deadline; i++) {
      if (i === 30) {
        // The node most services are connected to: the kill must cost some of them their connection.
        const counts = await Promise.all(nats.nodes.map((n) => n.clients()));
        const victim = counts.indexOf(Math.max(...counts));
        assert.ok(counts[victim]! > 0, 'services are connected to the node killed');
        process.stderr.write(`# clients per NATS node: ${counts.join(', ')}; killing node ${victim}\n`);
        killedAt = i;
        killTime = Date.now();
        await nats.nodes[victim]!.kill();
      }
      let ok = false;
      try {
        const res = await fetch(`${httpUrl}/hello?name=n${i}`, { signal: AbortSignal.timeout(10_000) });
        const body = await res.text();
        ok = res.status === 200 && body === `Hello, n${i}! (from a Cordon isolate)\n`;
        if (!ok) failures.push(`#${i}: ${res.status} ${body.slice(0, 120)}`);
      } catch (e) {
        failures.push(`#${i}: ${(e as Error).message}`);
      }
      if (ok && killedAt >= 0 && recoveredMs === undefined) recoveredMs = Date.now() - killTime;
    }
    process.stderr.write(
      `# ${i} requests, ${failures.length} failed after one of 3 NATS nodes was killed at #${killedAt}; serving again ${recoveredMs} ms after the kill\n${failures.map((f) => `#   ${f}\n`).join('')}`,
    );
    assert.equal(i, TOTAL, 'the loop ran to its end within its time bound');
    // Each session that lost frames with the node fails what was in flight on it, one request at a time here.
    assert.ok(failures.length <= 3, `at most the requests in flight on the lost node fail: ${failures.join('; ')}`);
    assert.ok(
      failures.every((f) => Number(/^#(\d+)/.exec(f)![1]) >= killedAt),
      'nothing failed before the kill',
    );
    assert.ok(
      failures.every((f) => Number(/^#(\d+)/.exec(f)![1]) < TOTAL - 50),
      'the last 50 requests all succeeded',
    );
  });
});

describe('`cordon run` refuses bad input with one clear line', { skip: missing }, () => {
  const root = mkdtempSync(join(tmpdir(), 'cordon-run-bad-'));
  let env: NodeJS.ProcessEnv;
  before(async () => {
    writeFileSync(join(root, 'mesh.secret'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    env = { ...process.env, CORDON_DATA_DIR: root, CORDON_NATS_URL: `nats://127.0.0.1:${await freePort()}`, CORDON_NATS_WAIT_SECONDS: '1' };
    delete env.CORDON_MESH_SECRET;
    for (const [name, role, cordon] of [
      ['standard', 'sandbox', 'standard'],
      ['ingress', 'ingress'],
    ]) {
      const r = await cli(['keys', 'issue', '--role', role!, ...(cordon ? ['--cordon', cordon] : []), '--out', join(root, `${name}.keyring`)], env);
      assert.equal(r.code, 0, r.stderr);
    }
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const errorLines = (stderr: string) => stderr.split('\n').filter((l) => /"level":"error"|^cordon: /.test(l));

  const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['a wrong role', ['gateway'], {}, /"gateway" is not a service/],
    ['a missing keyring file', ['egress'], { CORDON_MESH_KEYRING_FILE: '/nonexistent/egress.keyring' }, /cannot read the keyring file/],
    ['a keyring of another role', ['egress'], { CORDON_MESH_KEYRING_FILE: join(root, 'ingress.keyring') }, /is for ingress, not egress/],
    [
      "a sandbox's keyring for another cordon",
      ['sandbox', '--cordon', 'untrusted', ...SANDBOX_FLAGS],
      { CORDON_MESH_KEYRING_FILE: join(root, 'standard.keyring') },
      /is for cordon standard, not untrusted.*--cordon untrusted/,
    ],
    [
      'a bad setting',
      ['egress'],
      { CORDON_MESH_KEYRING_FILE: join(root, 'ingress.keyring'), CORDON_ADMIN_PORT: 'eighty' },
      /CORDON_ADMIN_PORT must be a port number/,
    ],
    [
      'credentials in the NATS URL',
      ['ingress'],
      { CORDON_MESH_KEYRING_FILE: join(root, 'ingress.keyring'), CORDON_NATS_URL: 'nats://u:p@127.0.0.1:4222' },
      /must not carry credentials/,
    ],
    ['an unreachable NATS', ['ingress'], { CORDON_MESH_KEYRING_FILE: join(root, 'ingress.keyring') }, /cannot reach NATS at 127\.0\.0\.1:\d+ \(tried for 1 s/],
  ];
  for (const [what, args, extra, expected] of cases) {
    test(what, async () => {
      const r = await cli(['run', ...args], { ...env, ...extra });
      assert.notEqual(r.code, 0, r.stderr);
      const lines = errorLines(r.stderr);
      assert.ok(
        lines.some((l) => expected.test(l)),
        `one line says what went wrong:\n${r.stderr}`,
      );
      assert.ok(lines.length <= 2, `no cascade of errors:\n${r.stderr}`);
    });
  }
});
