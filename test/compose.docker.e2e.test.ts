/**
 * The cluster in real containers: compose.yaml brought up as a user would (its own project name and
 * networks, keyrings from `cordon keys cluster` as Compose secrets, three sandbox-standard replicas),
 * a worker deployed with the CLI through the published loopback port, requests served, a workflow
 * run to completion. Then, under load, one NATS node and one sandbox-standard replica are killed and
 * the supervisor container restarted: no idempotent request fails (the others' failures are counted
 * and printed), the workflow completes, every acknowledged storage write is still there. And a
 * sandbox container holds its own keyring only: no mesh secret, master key or admin token.
 *
 * No registry is reachable here: the Dockerfile's base (debian:bookworm-slim) is built from Debian
 * packages with debootstrap + `docker import` when the engine does not have it (kept by tag). Without
 * a Docker engine the suite skips, unless CORDON_REQUIRE_ALL=1.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, ROOT, waitFor } from './helpers/mesh.ts';
import { cli } from './helpers/cluster.ts';
import { Keyring } from '../lib/rpc/index.ts';

const execFileP = promisify(execFile);
const BASE_IMAGE = 'debian:bookworm-slim';
/** The uid of the image's `cordon` user (Dockerfile): the keyrings must be readable by it. */
const CONTAINER_UID = '10001';

function which(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, bin)));
}

/** Why this suite cannot run here, or undefined. */
function dockerMissing(): string | undefined {
  for (const bin of ['docker', 'docker-compose', 'debootstrap'])
    if (!which(bin)) return `${bin} is not installed (apt-get install -y docker.io docker-compose debootstrap)`;
  try {
    execFileSync('docker', ['info'], { stdio: 'pipe', timeout: 20_000 });
  } catch {
    return 'no Docker engine answers (start dockerd)';
  }
  return undefined;
}

const missing = dockerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('a Docker engine is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): Promise<string> {
  try {
    const { stdout } = await execFileP(cmd, args, { cwd: ROOT, env: opts.env ?? process.env, timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${err.stderr ?? ''}`);
  }
}

/** The Dockerfile's base, made from Debian packages when the engine does not have it (~35 s, once). */
async function ensureBaseImage(): Promise<void> {
  try {
    await run('docker', ['image', 'inspect', BASE_IMAGE]);
    return;
  } catch {
    // not here yet
  }
  const rootfs = mkdtempSync(join(tmpdir(), 'cordon-rootfs-'));
  try {
    await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, 'http://deb.debian.org/debian'], { timeout: 600_000 });
    await run('sh', ['-c', `tar -C "${rootfs}" -c . | docker import - ${BASE_IMAGE}`], { timeout: 300_000 });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

/** CA certificates this host added locally (a TLS-intercepting proxy's): the image build trusts them too. */
function localCaCerts(): string {
  const dir = '/usr/local/share/ca-certificates';
  if (!existsSync(dir)) return '';
  return readdirSync(dir)
    .filter((f) => f.endsWith('.crt'))
    .map((f) => readFileSync(join(dir, f), 'utf8').trim())
    .join('\n');
}

// The first build installs the dependencies in the image (minutes, more on a busy machine; the layer
// cache keeps later ones short): longer than npm test's per-test default of 5 minutes allows.
const BUILD_MS = 1_800_000;

describe('compose.yaml: the cluster in containers', { skip: missing, timeout: BUILD_MS + 600_000 }, () => {
  const project = `cordon-e2e-${randomBytes(3).toString('hex')}`;
  const work = mkdtempSync(join(tmpdir(), 'cordon-compose-'));
  const keys = join(work, 'keys');
  let env: NodeJS.ProcessEnv;
  let adminEnv: NodeJS.ProcessEnv;
  let httpUrl: string;
  let adminUrl: string;
  let up = false;
  const compose = (args: string[], timeout?: number) => run('docker-compose', ['-f', join(ROOT, 'compose.yaml'), ...args], { env, timeout });
  const container = (service: string, index = 1) => `${project}_${service}_${index}`;
  const get = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${httpUrl}/cluster${path}`, { ...init, signal: AbortSignal.timeout(20_000) });
    return { status: res.status, text: await res.text() };
  };
  const logs = async () => {
    try {
      return (await compose(['logs', '--no-color', '--tail', '60'])).slice(-20_000);
    } catch (e) {
      return (e as Error).message;
    }
  };

  before(
    async () => {
      const started = Date.now();
      await ensureBaseImage();
      const [http, https, admin] = [await freePort(), await freePort(), await freePort()];
      httpUrl = `http://127.0.0.1:${http}`;
      adminUrl = `http://127.0.0.1:${admin}`;
      env = {
        ...process.env,
        COMPOSE_PROJECT_NAME: project,
        CORDON_KEYS_DIR: keys,
        CORDON_HTTP_PUBLISH: `127.0.0.1:${http}`,
        CORDON_HTTPS_PUBLISH: `127.0.0.1:${https}`,
        CORDON_ADMIN_PUBLISH: `127.0.0.1:${admin}`,
        CORDON_BUILD_CA_CERTS: localCaCerts(),
      };
      const k = await cli(['keys', 'cluster', '--out', keys, '--cordons', 'standard,untrusted', '--owner', CONTAINER_UID], env);
      assert.equal(k.code, 0, k.stderr);
      await compose(['build'], BUILD_MS);
      const built = Date.now();
      up = true;
      await compose(['up', '-d', '--scale', 'sandbox-standard=3'], 300_000);
      try {
        await waitFor(
          'the cluster to become healthy',
          async () => (await fetch(`${adminUrl}/healthz`).catch(() => undefined))?.status === 200 || undefined,
          180_000,
          500,
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${await logs()}`);
      }
      process.stderr.write(`# base image and build ${Math.round((built - started) / 1000)} s, up and healthy ${Math.round((Date.now() - built) / 1000)} s\n`);
      const token = (await run('docker', ['exec', container('supervisor'), 'cat', '/var/lib/cordon/admin.token'])).trim();
      adminEnv = { ...process.env, CORDON_ADMIN_URL: adminUrl, CORDON_TOKEN: token, CORDON_DATA_DIR: join(work, 'cli') };
    },
    { timeout: BUILD_MS + 300_000 },
  );

  after(async () => {
    if (up) {
      try {
        await compose(['down', '-v', '--remove-orphans'], 180_000);
      } catch (e) {
        process.stderr.write(`# compose down failed: ${(e as Error).message}\n`);
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  test('a worker deployed with the CLI through the published port serves, and a workflow completes', async () => {
    const r = await cli(['deploy', '--config', 'test/fixtures/cluster/wrangler.jsonc', '--cordon', 'standard'], adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker to serve', async () => ((await get('/replica').catch(() => undefined))?.status === 200 ? true : undefined), 60_000, 250);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await get('/replica')).text);
    process.stderr.write(`# 30 requests answered by ${seen.size} sandbox-standard replicas\n`);
    const { id } = JSON.parse((await get('/start?stepMs=100&steps=2')).text) as { id: string };
    const done = await waitFor(
      'the workflow to complete',
      async () => {
        const s = JSON.parse((await get(`/status?id=${id}`)).text) as { status: string; output?: unknown };
        return s.status === 'complete' ? s : undefined;
      },
      60_000,
      250,
    );
    assert.deepEqual(done.output, { done: [0, 1] });
  });

  test('a NATS node and a sandbox replica killed, the supervisor restarted: idempotent requests never fail, the workflow completes, acknowledged writes stay', async () => {
    const started = JSON.parse((await get('/start?stepMs=1000&steps=8')).text) as { id: string };
    const faults: [number, string, () => Promise<unknown>][] = [
      [40, 'docker kill nats-2', () => run('docker', ['kill', container('nats-2')])],
      [120, 'docker kill sandbox-standard #2', () => run('docker', ['kill', container('sandbox-standard', 2)])],
      [
        200,
        'docker restart supervisor',
        async () => {
          await run('docker', ['restart', container('supervisor')], { timeout: 60_000 });
          // Over once it serves again (and the sandboxes are back with it); writes fail until then.
          await waitFor(
            'the supervisor to be healthy again',
            async () => (await fetch(`${adminUrl}/healthz`).catch(() => undefined))?.status === 200 || undefined,
            120_000,
            250,
          );
        },
      ],
    ];
    const idempotentFailures: string[] = [];
    const writeFailures: string[] = [];
    const acknowledged: string[] = [];
    let sent = 0;
    const deadline = Date.now() + 240_000;
    const pending: Promise<unknown>[] = [];
    // The load goes on until every fault is over and 150 requests more have been served after it.
    let settledAt: number | undefined;
    const more = () => (settledAt === undefined || sent < settledAt + 150) && Date.now() < deadline;
    // Three readers (GET, retried by ingress on another replica) and one writer (POST, never retried).
    const reader = async () => {
      while (more()) {
        const n = sent++;
        const fault = faults.find(([at]) => at === n);
        if (fault) {
          process.stderr.write(`# at request #${n}: ${fault[1]}\n`);
          pending.push(fault[2]());
          if (pending.length === faults.length) void Promise.all(pending).then(() => (settledAt = sent));
        }
        try {
          const r = await get('/replica');
          if (r.status !== 200) idempotentFailures.push(`#${n}: ${r.status} ${r.text.slice(0, 160)}`);
        } catch (e) {
          idempotentFailures.push(`#${n}: ${(e as Error).message}`);
        }
      }
    };
    const writer = async () => {
      for (let i = 0; more(); i++) {
        const key = `w${i}`;
        try {
          const r = await get(`/put?key=${key}&value=${i}`, { method: 'POST' });
          if (r.status === 200) acknowledged.push(key);
          else writeFailures.push(`${key}: ${r.status} ${r.text.slice(0, 160)}`);
        } catch (e) {
          writeFailures.push(`${key}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all([reader(), reader(), reader(), writer()]);
    await Promise.all(pending);
    process.stderr.write(
      `# ${sent} idempotent requests, ${idempotentFailures.length} failed; ${acknowledged.length + writeFailures.length} writes (POST), ${writeFailures.length} failed:\n` +
        [...idempotentFailures, ...writeFailures].map((f) => `#   ${f}\n`).join(''),
    );
    assert.ok(settledAt !== undefined && sent >= settledAt + 150, 'the load ran to its end within its time bound');
    assert.deepEqual(idempotentFailures, [], 'no idempotent request failed');
    assert.ok(acknowledged.length > 0, 'writes were acknowledged');
    assert.ok(acknowledged.includes(`w${acknowledged.length + writeFailures.length - 1}`), 'writes are acknowledged again after the faults');
    for (const key of acknowledged) {
      const r = await get(`/get?key=${key}`);
      assert.equal(r.status, 200, r.text);
      assert.notEqual(JSON.parse(r.text).value, null, `acknowledged write ${key} is there`);
    }
    const status = await waitFor(
      'the workflow to complete',
      async () => {
        const s = JSON.parse((await get(`/status?id=${started.id}`)).text) as { status: string; output?: unknown; error?: unknown };
        if (s.status === 'errored' || s.status === 'terminated') throw new Error(`the workflow ended ${s.status}: ${JSON.stringify(s.error)}`);
        return s.status === 'complete' ? s : undefined;
      },
      120_000,
      500,
    );
    assert.deepEqual(status.output, { done: [0, 1, 2, 3, 4, 5, 6, 7] });
  });

  test("a sandbox container holds its own cordon's keyring only (no mesh secret, master key or admin token), and confines its sandboxes", async () => {
    const sandbox = container('sandbox-standard', 1);
    // Its sandbox processes are confined as on a host: every layer, and the probe's escape attempts refused.
    const doctor = await run('docker', ['exec', sandbox, 'cordon', 'doctor'], { timeout: 180_000 }).catch((e: Error) => e.message);
    assert.match(doctor, /All layers active/, doctor);
    const secrets = (await run('docker', ['exec', sandbox, 'ls', '/run/secrets'])).trim().split('\n');
    assert.deepEqual(secrets, ['sandbox-standard.keyring']);
    const ring = Keyring.decode(await run('docker', ['exec', sandbox, 'cat', '/run/secrets/sandbox-standard.keyring']));
    assert.deepEqual([ring.self, ring.cordon], ['sandbox', 'standard']);
    assert.equal(ring.key('ingress', 'sandbox', 'untrusted'), undefined, "no other cordon's key");
    const values: [string, string][] = [
      ['the mesh secret', readFileSync(join(keys, 'mesh.secret'), 'utf8').trim()],
      ['the admin token', (await run('docker', ['exec', container('supervisor'), 'cat', '/var/lib/cordon/admin.token'])).trim()],
      ['the master key', (await run('docker', ['exec', container('supervisor'), 'cat', '/var/lib/cordon/master.key'])).trim()],
    ];
    // Every file of the container (its image, volumes and secrets) and every process's environment.
    for (const [what, value] of values) {
      assert.ok(value.length >= 32, `${what} was read`);
      const found = await run(
        'docker',
        [
          'exec',
          sandbox,
          'sh',
          '-c',
          // Every directory a file of Cordon's or a secret can be in (not /proc, /sys, /dev, nor /usr and
          // node_modules: installed from packages when the image was built, before any key existed).
          `for d in /app /etc /home /root /run /tmp /var /opt /srv /mnt; do [ -d "$d" ] && grep -rlsF -D skip --exclude-dir=node_modules -- "$1" "$d"; done; cat /proc/[0-9]*/environ 2>/dev/null | grep -cF -- "$1"; true`,
          'sh',
          value,
        ],
        { timeout: 300_000 },
      );
      assert.deepEqual(
        found
          .trim()
          .split('\n')
          .filter((l) => l && l !== '0'),
        [],
        `${what} is nowhere in the sandbox container`,
      );
    }
  });
});
