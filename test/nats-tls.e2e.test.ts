/**
 * NATS with TLS: `tls://` seeds, a CA to verify the servers with, a client certificate for servers
 * that verify clients — certificates made here, in a temp dir. The whole mesh (`cordon run` services,
 * the sandbox reaching NATS through its relay, TLS end to end) serves a worker over a 3-node cluster
 * that requires TLS and client certificates; a client whose node dies is on another seed within 2 s;
 * a wrong CA, a missing client certificate and bad settings are refused with one clear line.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './helpers/mesh.ts';
import { cli, runCluster, type RunCluster } from './helpers/cluster.ts';
import { makeNatsCerts, natsServerMissing, startNatsCluster } from '../lib/rpc/testing/nats-server.ts';
import { natsTransport } from '../lib/mesh-nats.ts';
import { loadConfig, type NatsTls } from '../lib/config.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}

const quiet = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return quiet;
  },
};

describe('NATS over TLS', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-nats-tls-'));
  let certs: Awaited<ReturnType<typeof makeNatsCerts>>;
  let cluster: RunCluster;
  let tlsEnv: NodeJS.ProcessEnv;

  before(async () => {
    certs = await makeNatsCerts(dir);
    tlsEnv = { CORDON_NATS_TLS_CA: certs.ca, CORDON_NATS_TLS_CERT: certs.clientCert, CORDON_NATS_TLS_KEY: certs.clientKey };
    cluster = await runCluster({
      cordons: ['standard'],
      auth: { user: 'cordon', pass: randomBytes(12).toString('hex') },
      tls: { cert: certs.cert, key: certs.key, ca: certs.ca, verify: true },
      env: tlsEnv,
    });
    for (const role of ['supervisor', 'egress', 'ingress']) cluster.start(role);
    cluster.start('sandbox', { cordon: 'standard', dir: 'sandbox' });
    await cluster.healthy();
  });

  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the mesh runs over tls:// seeds with client certificates, the sandbox through its relay', async () => {
    assert.match(cluster.nats.url, /^tls:\/\//);
    const r = await cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*'], cluster.adminEnv);
    assert.equal(r.code, 0, r.stderr);
    const res = await waitFor(
      'hello over TLS',
      async () => {
        const x = await fetch(`${cluster.httpUrl}/hello?name=tls`);
        return x.status === 200 ? x.text() : undefined;
      },
      30_000,
    );
    assert.equal(res, 'Hello, tls! (from a Cordon isolate)\n');
  });

  test('a client whose NATS node dies is on another seed within 2 s', async () => {
    const nats = await startNatsCluster({ size: 3, tls: { cert: certs.cert, key: certs.key, ca: certs.ca, verify: true } });
    const tls: NatsTls = { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey, names: ['127.0.0.1'] };
    const server = await natsTransport(nats.url, { env: { CORDON_NATS_CLIENT_NAME: 'tls-server' }, tls, waitSeconds: 10, log: quiet });
    const client = await natsTransport(nats.url, { env: { CORDON_NATS_CLIENT_NAME: 'tls-client' }, tls, waitSeconds: 10, log: quiet });
    const listener = await server.listen('echo', 1 << 20, (channel) => channel.close(), 'only');
    try {
      (await client.dial('echo', 1 << 20)).close();
      const names = await Promise.all(nats.nodes.map((n) => n.clientNames()));
      const victim = names.findIndex((n) => n.includes('tls-client'));
      assert.ok(victim >= 0, `the client is on a node: ${JSON.stringify(names)}`);
      const killed = Date.now();
      await nats.nodes[victim]!.kill();
      // A dial fails at once while no node has the client (no responders): retry every 20 ms, for at most 10 s.
      let attempts = 0;
      let opened = false;
      for (; !opened && Date.now() - killed < 10_000; attempts++) {
        try {
          (await client.dial('echo', 1 << 20)).close();
          opened = true;
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      const took = Date.now() - killed;
      process.stderr.write(`# a session opened again ${took} ms after the client's node was killed (${attempts - 1} failed dials)\n`);
      assert.ok(opened, 'a session opened again');
      assert.ok(took < 2000, `reconnected within 2 s (took ${took} ms)`);
    } finally {
      await listener.close();
      await client.close();
      await server.close();
      await nats.stop();
    }
  });

  test('refused: a server certificate from another CA, no client certificate where the servers verify clients', async () => {
    const url = cluster.nats.url;
    await assert.rejects(
      natsTransport(url, { env: {}, waitSeconds: 2, tls: { ca: certs.otherCa, cert: certs.clientCert, key: certs.clientKey, names: ['127.0.0.1'] } }),
      /TLS to NATS at .* failed \(.*certificate/,
    );
    await assert.rejects(natsTransport(url, { env: {}, waitSeconds: 2, tls: { ca: certs.ca, names: ['127.0.0.1'] } }), /cannot reach NATS.*TLS settings/);
  });

  test('bad settings: one clear line each', async () => {
    const base = { CORDON_DATA_DIR: dir };
    assert.throws(() => loadConfig({ ...base, CORDON_NATS_URL: 'tls://a:4222,nats://b:4222' }), /mixes tls:\/\/ and nats:\/\//);
    assert.throws(() => loadConfig({ ...base, CORDON_NATS_URL: 'nats://a:4222', CORDON_NATS_TLS_CA: certs.ca }), /take effect with tls:\/\/ seeds only/);
    assert.throws(() => loadConfig({ ...base, CORDON_NATS_URL: 'tls://a:4222', CORDON_NATS_TLS_CERT: certs.clientCert }), /set both CORDON_NATS_TLS_CERT/);
    const r = await cli(['run', 'egress'], {
      ...cluster.base,
      ...tlsEnv,
      CORDON_DATA_DIR: join(dir, 'bad'),
      CORDON_MESH_KEYRING_FILE: cluster.keyFile('egress'),
      CORDON_NATS_TLS_CA: join(dir, 'missing-ca.pem'),
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /cannot read CORDON_NATS_TLS_CA=.*missing-ca\.pem/);
  });
});
