/**
 * Issue 12, item 12: amplification. A compromised sandbox (holding its cordon's keyring) makes 5,000 refused code-key calls in a couple of seconds: the audit log gets a few entries
 * and a summary with the count rather than 5,000 fsync'd entries, the chain still verifies, and the
 * supervisor keeps answering /healthz and serving a bystander worker. An unauthenticated connection
 * that declares a 16 MiB frame before the handshake is dropped at its header: the supervisor does not
 * buffer it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';

const REFUSALS = 5000;
const MiB = 1024 * 1024;

describe('attack: amplification through refusals and unauthenticated frames', () => {
  let mesh: TestMesh;
  const hello = () => fetch(`${mesh.httpUrl}/hello`);
  const auditEntries = () =>
    readFileSync(join(mesh.dataDir, 'supervisor', 'audit.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { actor: string; action: string; detail?: { count?: number } });
  const rssKiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

  /**
   * What a compromised sandbox process of cordon standard holds: its own keyring. (The one place this
   * test derives a sandbox's keyring.)
   */
  function stolenSandboxSession(): Promise<MeshSession<SupervisorForSandbox>> {
    const keyring = Keyring.forRole(loadMeshSecret(mesh.dataDir, mesh.env), 'sandbox', 'standard');
    return connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), { keyring, name: 'standard', expect: 'supervisor' });
  }

  before(async () => {
    mesh = await startTestMesh();
    const r = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the bystander worker', async () => (await hello()).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('5,000 refused code-key calls: a few audit entries and a summary with the count; the chain verifies; /healthz answers', async () => {
    const session = await stolenSandboxSession();
    const refusedBefore = auditEntries().filter((e) => e.action === 'codekey.refused').length;
    let flooding = true;
    const health: number[] = [];
    const healthLoop = (async () => {
      for (let i = 0; i < 600 && flooding; i++) {
        health.push((await fetch(`${mesh.adminUrl}/healthz`)).status);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    let refused = 0;
    for (let sent = 0; sent < REFUSALS; sent += 250) {
      const calls = Array.from({ length: 250 }, () =>
        Promise.resolve(session.remote.loadWorker(randomBytes(32).toString('base64url'))).then(
          () => 'loaded',
          (e: Error) => e.message,
        ),
      );
      for (const outcome of await Promise.all(calls)) if (outcome === 'code key refused') refused++;
    }
    flooding = false;
    await healthLoop;
    assert.equal(refused, REFUSALS, 'every call was refused');
    assert.ok(health.length > 0 && health.every((s) => s === 200), `healthz answered ${JSON.stringify(health)}`);
    assert.equal((await hello()).status, 200, 'the bystander worker is served');
    session.close();

    const written = () =>
      auditEntries()
        .filter((e) => e.action === 'codekey.refused' && e.actor === 'sandbox:standard')
        .slice(refusedBefore);
    assert.ok(written().length <= 50, `${written().length} audit entries for ${REFUSALS} refusals`);
    // The window's summary is written when it ends: every refusal is counted, none silently dropped.
    const counted = () => written().reduce((n, e) => n + (e.detail?.count ?? 1), 0);
    await waitFor('the summary entry', () => counted() === REFUSALS || undefined, 20_000, 250).catch((e: Error) =>
      assert.fail(`${e.message}: ${counted()} counted`),
    );
    assert.ok(
      written().some((e) => (e.detail?.count ?? 0) > 1000),
      'one summary holds most of them',
    );
    const verify = await mesh.cli(['audit', 'verify']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /audit log intact/);
  });

  test('a 16 MiB frame before the handshake is dropped at its header, not buffered', async () => {
    const pid = mesh.servicePids().get('supervisor')!;
    const rssBefore = rssKiB(pid);
    const path = socketPath(mesh.dataDir, 'supervisor');
    const floods = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const sock = createConnection(path);
        sock.on('error', () => {});
        await once(sock, 'connect');
        const closed = new Promise<void>((r) => sock.once('close', () => r()));
        const header = Buffer.alloc(4);
        header.writeUInt32BE(16 * MiB);
        sock.write(header);
        const chunk = Buffer.alloc(MiB, 0x20);
        for (let i = 0; i < 16 && !sock.destroyed; i++) {
          if (!sock.write(chunk)) await Promise.race([once(sock, 'drain').catch(() => {}), closed]);
        }
        await Promise.race([closed, new Promise<void>((r) => sock.end(r))]);
        return sock;
      }),
    );
    const grownKiB = rssKiB(pid) - rssBefore;
    for (const sock of floods) {
      assert.ok(sock.bytesWritten < 4 * MiB, `the supervisor took ${sock.bytesWritten} bytes from an unauthenticated connection`);
      sock.destroy();
    }
    assert.ok(grownKiB < 8 * 1024, `supervisor RSS grew by ${grownKiB} KiB`);
    assert.equal((await fetch(`${mesh.adminUrl}/healthz`)).status, 200);
    assert.equal((await hello()).status, 200, 'the bystander worker is served');
    // An honest keyed client still gets in.
    const session = await stolenSandboxSession();
    await assert.rejects(Promise.resolve(session.remote.loadWorker('x'.repeat(43))), /code key refused/);
    session.close();
  });
});
