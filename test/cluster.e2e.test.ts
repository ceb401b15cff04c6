/**
 * A cluster as an operator runs one: each service started alone with `cordon run`, with its own data
 * dir and a keyring file issued by `cordon keys issue` (no service holds the mesh secret), over a real
 * 3-node nats-server cluster with user/password credentials. A worker deployed and served through
 * ingress; one NATS node killed mid-loop, requests keep being served. Plus the bad inputs of
 * `cordon run`: each one clear line and a non-zero exit.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, ROOT, waitFor } from './helpers/mesh.ts';
import { findBwrap } from '../lib/process-sandbox.ts';
import { natsServerMissing, startNatsCluster, type NatsNode } from '../lib/rpc/testing/nats-server.ts';
import { connect, Keyring } from '../lib/rpc/index.ts';
import { natsTransport } from '../lib/mesh-nats.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}
const execFileP = promisify(execFile);
const CLI = join(ROOT, 'cli/cordon.mjs');
const NATS_AUTH = { user: 'cordon', pass: randomBytes(12).toString('hex') };
// Values a careless host might leave in a sandbox's environment: `cordon run` must not pass them on.
const STRAY = { CORDON_MASTER_KEY: randomBytes(32).toString('hex'), CORDON_ADMIN_TOKEN: randomBytes(24).toString('hex') };
/** Sandboxes run confined as in production; without bubblewrap (a developer machine) unconfined, with a note. */
const SANDBOX_FLAGS = findBwrap() || process.env.CORDON_REQUIRE_ALL === '1' ? [] : ['--insecure-no-process-sandbox'];

async function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [CLI, ...args], { cwd: ROOT, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

interface Running {
  child: ChildProcess;
  output(): string;
}

function runService(args: string[], env: NodeJS.ProcessEnv): Running {
  let out = '';
  const child = spawn(process.execPath, [CLI, 'run', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, output: () => out };
}

async function stopService(s: Running): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill('SIGTERM');
  const timer = setTimeout(() => s.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** The Node process running `services/sandbox/main.ts` with data dir `dataDir` (inside bwrap when confined). */
function sandboxNode(dataDir: string): number | undefined {
  const node = realpathSync(process.execPath);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0] !== node || !cmdline.some((a) => a.endsWith('services/sandbox/main.ts'))) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'utf8').includes(`CORDON_DATA_DIR=${dataDir}\0`)) return Number(entry);
    } catch {
      // gone while we looked
    }
  }
  return undefined;
}

describe('a cluster of `cordon run` services over a 3-node NATS cluster', { skip: missing }, () => {
  let nats: { url: string; nodes: NatsNode[]; stop(): Promise<void> };
  const root = mkdtempSync(join(tmpdir(), 'cordon-cluster-'));
  const dirs = Object.fromEntries(['operator', 'supervisor', 'egress', 'ingress', 'sandbox', 'keys'].map((d) => [d, join(root, d)])) as Record<string, string>;
  const services: Running[] = [];
  let base: NodeJS.ProcessEnv;
  let httpUrl: string;
  let adminEnv: NodeJS.ProcessEnv;
  const keyFile = (name: string) => join(dirs.keys!, `${name}.keyring`);

  before(async () => {
    nats = await startNatsCluster({ size: 3, auth: NATS_AUTH });
    const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    base = {
      ...process.env,
      CORDON_NATS_URL: nats.url,
      CORDON_NATS_USER: NATS_AUTH.user,
      CORDON_NATS_PASS: NATS_AUTH.pass,
      CORDON_CORDONS: 'standard',
      CORDON_HTTP_PORT: String(httpPort),
      CORDON_HTTPS_PORT: String(httpsPort),
      CORDON_ADMIN_PORT: String(adminPort),
      CORDON_HTTP_HOST: '127.0.0.1',
    };
    delete base.CORDON_MESH_SECRET;
    // The operator's host holds the mesh secret; it issues one keyring per service and keeps the secret.
    mkdirSync(dirs.operator!, { mode: 0o700 });
    mkdirSync(dirs.keys!, { mode: 0o700 });
    writeFileSync(join(dirs.operator!, 'mesh.secret'), randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    for (const [role, extra] of [['supervisor'], ['egress'], ['ingress'], ['sandbox', 'standard']] as [string, string?][]) {
      const r = await cli(['keys', 'issue', '--role', role, ...(extra ? ['--cordon', extra] : []), '--out', keyFile(extra ?? role)], {
        ...base,
        CORDON_DATA_DIR: dirs.operator,
      });
      assert.equal(r.code, 0, r.stderr);
    }
    const start = (role: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) =>
      services.push(runService([role, ...args], { ...base, CORDON_DATA_DIR: dirs[role], CORDON_MESH_KEYRING_FILE: keyFile(args[1] ?? role), ...env }));
    // In any order: a service whose peers are not up yet waits for them.
    start('sandbox', ['--cordon', 'standard', ...SANDBOX_FLAGS], {
      ...STRAY,
      CORDON_MESH_SECRET: readFileSync(join(dirs.operator!, 'mesh.secret'), 'utf8').trim(),
    });
    start('ingress');
    start('egress');
    start('supervisor');
    httpUrl = `http://127.0.0.1:${httpPort}`;
    adminEnv = { ...base, CORDON_DATA_DIR: dirs.supervisor, CORDON_ADMIN_URL: `http://127.0.0.1:${adminPort}` };
    try {
      await waitFor(
        'the cluster to become healthy',
        async () => (await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status === 200 || undefined,
        90_000,
        250,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${services.map((s) => s.output()).join('\n---\n')}`);
    }
  });

  after(async () => {
    await Promise.all(services.map(stopService));
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test("keys issue writes one role's keyring, 0600, and the sandbox's is for its cordon only", () => {
    for (const name of ['supervisor', 'egress', 'ingress', 'standard']) assert.equal(statSync(keyFile(name)).mode & 0o777, 0o600, name);
    const ring = Keyring.decode(readFileSync(keyFile('standard'), 'utf8'));
    assert.equal(ring.self, 'sandbox');
    assert.equal(ring.cordon, 'standard');
    assert.equal(ring.key('ingress', 'sandbox', 'untrusted'), undefined, "no other cordon's key");
    assert.throws(() => ring.sign(Buffer.from('x')), /holds no signing key/);
  });

  test('no service was handed the mesh secret, and none created one', () => {
    for (const d of ['supervisor', 'egress', 'ingress', 'sandbox']) assert.equal(existsSync(join(dirs[d]!, 'mesh.secret')), false, d);
  });

  test('a sandbox started with `cordon run` holds no secret, master key or admin token', () => {
    const pid = sandboxNode(dirs.sandbox!);
    assert.ok(pid, 'the sandbox process runs');
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    const secret = readFileSync(join(dirs.operator!, 'mesh.secret'), 'utf8').trim();
    const adminToken = readFileSync(join(dirs.supervisor!, 'admin.token'), 'utf8').trim();
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
    for (const f of [join(dirs.operator!, 'mesh.secret'), keyFile('standard'), join(dirs.supervisor!, 'admin.token'), dirs.supervisor!]) {
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
