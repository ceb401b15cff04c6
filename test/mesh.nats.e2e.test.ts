/** `cordon start --nats <url>`: the same mesh, with a real nats-server as the transport. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxNodes, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { findBwrap } from '../lib/process-sandbox.ts';
import { natsServerMissing, startNatsServer } from '../lib/rpc/testing/nats-server.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

describe('the mesh over NATS', { skip: missing }, () => {
  let nats: { url: string; stop(): Promise<void> };
  let mesh: TestMesh;
  before(async () => {
    nats = await startNatsServer();
    mesh = await startTestMesh({}, ['--nats', nats.url]);
  });
  after(async () => {
    await mesh?.stop();
    await nats?.stop();
  });

  test('no Unix sockets are used, and a deployed worker serves through ingress', async () => {
    assert.equal(existsSync(join(mesh.dataDir, 'sockets', 'supervisor.sock')), false);
    const r = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    assert.equal(r.code, 0, r.stderr);
    const res = await waitFor('hello over NATS', async () => {
      const x = await fetch(`${mesh.httpUrl}/hello?name=nats`);
      return x.status === 200 ? x : undefined;
    });
    assert.equal(await res.text(), 'Hello, nats! (from a Cordon isolate)\n');
    if (!findBwrap()) return;
    // Confined, the sandbox has no network of its own: it reached NATS through the launcher's relay.
    for (const [cordon, pid] of sandboxNodes(mesh))
      assert.notEqual(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync('/proc/self/ns/net'), `${cordon}: its own network namespace`);
  });

  test('a killed sandbox is restarted and serves again over NATS', async () => {
    const old = mesh.servicePids().get('sandbox:standard')!;
    process.kill(old, 'SIGKILL');
    await waitFor('a new sandbox', () => {
      const pid = mesh.servicePids().get('sandbox:standard');
      return pid && pid !== old ? pid : undefined;
    });
    const res = await waitFor(
      'hello again',
      async () => {
        const x = await fetch(`${mesh.httpUrl}/hello`);
        return x.status === 200 ? x : undefined;
      },
      20_000,
    );
    assert.equal(res.status, 200);
  });
});
