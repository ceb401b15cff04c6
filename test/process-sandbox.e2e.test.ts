/**
 * The second sandbox layer on the real processes: a probe confined as a sandbox is tries to get out;
 * the sandboxes of a running mesh are checked from outside (namespaces, seccomp, capabilities, what
 * their root holds); a machine without the layer refuses to start unless told it is insecure.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { checkProbe, probeSandbox } from '../cli/doctor.ts';
import { findBwrap } from '../lib/process-sandbox.ts';
import { ROOT, sandboxNodes, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const run = promisify(execFile);
const missing = findBwrap() ? undefined : 'bubblewrap is not installed (apt-get install -y bubblewrap)';
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('bubblewrap is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

describe('the process sandbox', { skip: missing }, () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('hello', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('a probe confined as a sandbox is: no files, no exec, no network; the Unix socket, isolates, limits, Wasm and timers work', async () => {
    for (const c of checkProbe(await probeSandbox())) assert.ok(c.ok, `${c.finding}: got ${JSON.stringify(c.value)}`);
  });

  test('every sandbox of the running mesh is in its own namespaces, seccomp-filtered, without capabilities, on an empty root', async () => {
    const nodes = await waitFor('both sandboxes', () => {
      const n = sandboxNodes(mesh);
      return n.has('standard') && n.has('untrusted') ? n : undefined;
    });
    for (const [cordon, pid] of nodes) {
      for (const ns of ['mnt', 'net', 'pid', 'ipc', 'uts', 'user'])
        assert.notEqual(readlinkSync(`/proc/${pid}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), `${cordon}: its own ${ns} namespace`);
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^Seccomp:\s+2$/m, `${cordon}: a seccomp filter`);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.match(status, /^CapEff:\s+0+$/m, `${cordon}: no capabilities`);
      assert.match(readFileSync(`/proc/${pid}/uid_map`, 'utf8'), /^\s*65534\s/, `${cordon}: uid 65534 inside`);
      const root = `/proc/${pid}/root`;
      assert.ok(!existsSync(`${root}/etc/passwd`), 'no /etc/passwd in its root');
      assert.ok(!existsSync(`${root}/bin/sh`), 'no shell');
      assert.ok(!existsSync(`${root}${join(mesh.dataDir, 'mesh.secret')}`), 'not the mesh secret');
      assert.ok(!existsSync(`${root}${join(mesh.dataDir, 'admin.token')}`), 'not the admin token');
      assert.ok(!existsSync(`${root}${join(ROOT, 'cli')}`), 'only the parts of the app a sandbox runs');
      assert.ok(existsSync(`${root}${join(mesh.dataDir, 'sockets')}`), 'its socket directory');
      const other = cordon === 'standard' ? 'untrusted' : 'standard';
      assert.ok(existsSync(`${root}${join(mesh.dataDir, 'run', `sandbox-${cordon}.inflight`)}`), 'its own flight recorder');
      assert.ok(!existsSync(`${root}${join(mesh.dataDir, 'run', `sandbox-${other}.inflight`)}`), "not another cordon's");
      assert.doesNotMatch(readFileSync(`/proc/${pid}/net/dev`, 'utf8'), /eth|ens|enp|wl/, 'no network interface but loopback');
    }
    assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200, 'and it serves');
  });

  test('cordon doctor lists every layer active and the probe passing', async () => {
    const { stdout } = await run(process.execPath, [join(ROOT, 'cli/main.ts'), 'doctor'], { cwd: ROOT });
    assert.match(stdout, /All layers active/);
    assert.doesNotMatch(stdout, /✖/);
  });

  test('without bubblewrap, start refuses and says what to do; --insecure-no-process-sandbox starts, loudly; doctor exits 1', async () => {
    const env = { ...process.env, PATH: '/nonexistent' };
    const refused = await run(process.execPath, [join(ROOT, 'cli/main.ts'), 'start'], {
      cwd: ROOT,
      env: { ...env, CORDON_DATA_DIR: join(mesh.dataDir, 'other') },
    }).then(
      () => assert.fail('start should refuse'),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /bubblewrap is not installed/);
    assert.match(refused.stderr, /--insecure-no-process-sandbox/);
    const doctor = await run(process.execPath, [join(ROOT, 'cli/main.ts'), 'doctor'], { cwd: ROOT, env }).then(
      () => assert.fail('doctor should exit 1'),
      (e: { code: number; stdout: string }) => e,
    );
    assert.equal(doctor.code, 1);
    assert.match(doctor.stdout, /✖ namespaces/);
    const insecure = await startTestMesh({ PATH: '/nonexistent' }, ['--insecure-no-process-sandbox']);
    try {
      assert.match(insecure.output(), /WARNING: --insecure-no-process-sandbox/);
      await waitFor('the sandboxes to say so', () => (/running WITHOUT the process sandbox/.test(insecure.output()) ? true : undefined));
    } finally {
      await insecure.stop();
    }
  });
});
