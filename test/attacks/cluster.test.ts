/**
 * Attacks on sandbox replicas in a cluster (issue 15): a compromised sandbox of cordon `untrusted`,
 * holding its keyring and the NATS credentials every service has, tries to be a replica of cordon
 * `standard` — it answers standard's roll call under names of its choosing (some shaped to escape
 * the subject), floods it with names, joins standard's queue group and accepts sessions with the keys
 * it has. Ingress never opens a session to it, no request of `standard` reaches it, and the bystander
 * worker on `standard` serves every request, spread over its two real replicas. (That a sandbox
 * container's files hold only its own keyring: test/compose.docker.e2e.test.ts, with Docker.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as natsConnect, usernamePasswordAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '../helpers/mesh.ts';
import { cli, runCluster, type RunCluster } from '../helpers/cluster.ts';
import { natsServerMissing } from '../../lib/rpc/testing/nats-server.ts';
import { accept, Keyring } from '../../lib/rpc/index.ts';
import { listenNats } from '../../lib/rpc/nats.ts';
import { RpcTarget } from 'capnweb';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') {
  test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));
}
const AUTH = { user: 'cordon', pass: randomBytes(12).toString('hex') };

describe("attacks: a sandbox of one cordon posing as another cordon's replica", { skip: missing }, () => {
  let cluster: RunCluster;
  let nc: NatsConnection;
  const get = async (path: string) => {
    const res = await fetch(`${cluster.httpUrl}${path}`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, text: await res.text() };
  };

  before(async () => {
    cluster = await runCluster({ cordons: ['standard', 'untrusted'], auth: AUTH });
    for (const role of ['supervisor', 'egress', 'ingress']) cluster.start(role);
    cluster.start('sandbox', { cordon: 'standard', dir: 'standard-a' });
    cluster.start('sandbox', { cordon: 'standard', dir: 'standard-b' });
    cluster.start('sandbox', { cordon: 'untrusted', dir: 'untrusted' });
    await cluster.healthy();
    const r = await cli(['deploy', '--config', 'test/fixtures/cluster/wrangler.jsonc', '--cordon', 'standard'], cluster.adminEnv);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the bystander to serve', async () => ((await get('/cluster/replica')).status === 200 ? true : undefined), 30_000);
    nc = await natsConnect({ servers: cluster.nats.url.split(','), authenticator: usernamePasswordAuthenticator(AUTH.user, AUTH.pass) });
  });

  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  test("answering standard's roll call and joining its queue group with untrusted's keys: no session, no request; the bystander serves", async () => {
    const stolen = Keyring.decode(readFileSync(cluster.keyFile('untrusted'), 'utf8'));
    let channels = 0;
    const sessions: string[] = [];
    const refusals: string[] = [];
    // The impostor serves sandbox-standard, as instance "evil", with the keys it has (cordon untrusted).
    const impostor = await listenNats(
      nc,
      'sandbox-standard',
      1 << 20,
      (channel) => {
        channels++;
        void accept(channel, {
          keyring: stolen,
          name: 'untrusted',
          accept: ['ingress'],
          mainFor: () => new (class extends RpcTarget {})(),
          onSession: (s) => sessions.push(s.peer.role),
          onError: (e) => refusals.push(e.message),
        });
      },
      { instance: 'evil' },
    );
    // And floods the roll call: many names, and names shaped to reach other subjects.
    const flood = nc.subscribe('cordon.who.sandbox-standard', {
      callback: (_err, msg) => {
        for (const name of ['>', '*', 'a.b', 'evil.>', 'UPPER', '', 'x'.repeat(200)]) msg.respond(name);
        for (let i = 0; i < 200; i++) msg.respond(`fake-${i}`);
      },
    });
    try {
      const answered = new Map<string, number>();
      let failed = 0;
      for (let i = 0; i < 120; i++) {
        const r = await get('/cluster/replica');
        if (r.status === 200) answered.set(r.text, (answered.get(r.text) ?? 0) + 1);
        else failed++;
      }
      process.stderr.write(
        `# 120 bystander requests: ${failed} failed, answered by ${answered.size} replicas; the impostor got ${channels} connection attempts, ${sessions.length} sessions\n`,
      );
      assert.equal(failed, 0, 'every bystander request was served');
      assert.equal(answered.size, 2, 'by the two real replicas of standard, both');
      assert.ok(channels > 0, 'ingress did try the impostor (the roll call reached it), so the refusal below means something');
      assert.deepEqual(sessions, [], 'no session was ever opened with the impostor');
      assert.ok(refusals.length > 0, 'the attempts ended in the handshake (ingress refused the proof and hung up)');
    } finally {
      flood.unsubscribe();
      await impostor.close();
    }
    // Once it is gone, standard keeps serving.
    assert.equal((await get('/cluster/replica')).status, 200);
  });
});
