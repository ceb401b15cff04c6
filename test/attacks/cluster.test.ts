/**
 * Attacks on sandbox replicas in a cluster (issue 15): a compromised sandbox of cordon `untrusted`,
 * holding its keyring and the NATS credentials every service has, tries to be a replica of cordon
 * `standard` — it answers standard's roll call under names of its choosing (some shaped to escape
 * the subject), floods it with names, joins standard's queue group and accepts sessions with the keys
 * it has. Ingress never opens a session to it, no request of `standard` reaches it, and the bystander
 * worker on `standard` serves every request, spread over its two real replicas. With the same NATS
 * credentials it sniffs every session's subject and reads nothing of them: frames are encrypted. (That a sandbox
 * container's files hold only its own keyring: test/compose.docker.e2e.test.ts, with Docker.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect as natsConnect, usernamePasswordAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { waitFor } from '../helpers/mesh.ts';
import { cli, runCluster, runService, sandboxNode, SANDBOX_FLAGS, type RunCluster } from '../helpers/cluster.ts';
import { natsServerMissing } from '../../lib/rpc/testing/nats-server.ts';
import { accept, Keyring } from '../../lib/rpc/index.ts';
import { connectNats, connectNatsSession, listenNats } from '../../lib/rpc/nats.ts';
import { HANDSHAKE_VERSION } from '../../lib/rpc/handshake.ts';
import type { SupervisorForAgent } from '../../schemas/services.ts';
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
      // At least 120 requests, and on until ingress has held a roll call that reached the impostor
      // (requests can be quicker than its roll-call interval): bounded in count and time.
      const until = Date.now() + 30_000;
      for (let i = 0; i < 120 || (channels === 0 && i < 5000 && Date.now() < until); i++) {
        const r = await get('/cluster/replica');
        if (r.status === 200) answered.set(r.text, (answered.get(r.text) ?? 0) + 1);
        else failed++;
      }
      process.stderr.write(
        `# bystander requests: ${failed} failed, answered by ${answered.size} replicas; the impostor got ${channels} connection attempts, ${sessions.length} sessions\n`,
      );
      assert.equal(failed, 0, 'every bystander request was served');
      assert.equal(answered.size, 2, 'by the two real replicas of standard, both');
      assert.ok(channels > 0, 'ingress did try the impostor (the roll call reached it), so the refusal below means something');
      // Ingress hangs up on a refused proof; the impostor's end hears it a moment later.
      await waitFor('the impostor to hear its refusal', async () => refusals.length > 0 || undefined, 10_000).catch(() => {});
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

/**
 * Attacks on the dedicated-cordon agent (`cordon run dedicated`, on the operator's host): a compromised
 * sandbox holds its stolen keyring — of `standard`, or the one the agent issued for a quarantine
 * cordon — and NATS credentials. It cannot read the list of dedicated cordons (its session's port has
 * no such method), cannot pose as the agent (its keys are not the agent's link key: the supervisor
 * refuses its proof), and the quarantine cordon's keyring opens no other cordon. The quarantined
 * worker and the bystander keep being served.
 */
describe('attacks: a compromised sandbox against the dedicated-cordon agent', { skip: missing }, () => {
  let cluster: RunCluster;
  let nc: NatsConnection;
  let cordon: string;
  const get = async (path: string) => {
    const res = await fetch(`${cluster.httpUrl}${path}`, { signal: AbortSignal.timeout(20_000) });
    return { status: res.status, text: await res.text() };
  };
  /** The keyring the agent handed its dedicated sandbox, read from that process as its own code could. */
  const issuedKeyring = () => {
    const pid = sandboxNode(cluster.operator);
    assert.ok(pid, 'the dedicated sandbox runs');
    const text = /(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))?.[1];
    assert.ok(text, 'its keyring is in its environment');
    return text;
  };
  /** `text` (an encoded keyring) with its JSON changed by `edit`: what an attacker can write. */
  const rewritten = (text: string, edit: (o: Record<string, unknown>) => void) => {
    const o = JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as Record<string, unknown>;
    edit(o);
    return Keyring.decode(Buffer.from(JSON.stringify(o)).toString('base64'));
  };
  /** A handshake to the supervisor as role `agent` by hand, proving with `key`; what the supervisor answers. */
  const asAgent = async (key: Buffer) => {
    const channel = await connectNats(nc, 'supervisor', 1 << 20);
    try {
      const dh = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!;
      const hello = { v: HANDSHAKE_VERSION, role: 'agent', name: 'agent', to: 'supervisor', nonce: randomBytes(32).toString('base64'), dh };
      channel.send(JSON.stringify(hello));
      const reply = JSON.parse(await channel.receive()) as Record<string, unknown>;
      if (reply.error) return reply;
      const transcript = JSON.stringify([hello.role, hello.name, hello.to, hello.nonce, hello.dh, reply.role, reply.name, reply.nonce, reply.dh]);
      const proof = createHmac('sha256', key).update('client').update('\0').update(transcript).digest('base64');
      channel.authenticated();
      channel.send(JSON.stringify({ proof }));
      return JSON.parse(await channel.receive()) as Record<string, unknown>;
    } finally {
      channel.close(new Error('done'));
    }
  };

  before(async () => {
    cluster = await runCluster({ cordons: ['standard'], auth: AUTH });
    for (const role of ['supervisor', 'egress', 'ingress']) cluster.start(role);
    cluster.start('sandbox', { cordon: 'standard' });
    cluster.services.push(runService(['dedicated', ...SANDBOX_FLAGS], { ...cluster.base, CORDON_DATA_DIR: cluster.operator }));
    await cluster.healthy();
    for (const args of [
      ['deploy', '--config', 'test/fixtures/cluster/wrangler.jsonc', '--tenant', 'acme'],
      ['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*'],
    ]) {
      const r = await cli(args, cluster.adminEnv);
      assert.equal(r.code, 0, r.stderr);
    }
    const q = await cli(['quarantine', 'tenant', 'acme'], cluster.adminEnv);
    assert.equal(q.code, 0, q.stderr);
    cordon = /quarantined in (q-[0-9a-z-]+)/.exec(q.stdout)![1]!;
    await waitFor('the dedicated sandbox', () => sandboxNode(cluster.operator), 60_000, 200);
    await waitFor(
      'both workers to serve',
      async () => ((await get('/cluster/replica')).status === 200 && (await get('/hello')).status === 200) || undefined,
      60_000,
      200,
    );
    nc = await natsConnect({ servers: cluster.nats.url.split(','), authenticator: usernamePasswordAuthenticator(AUTH.user, AUTH.pass) });
  });

  after(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  test("a sandbox's session (standard's stolen keyring, or the one issued for the quarantine cordon) has no way to the list", async () => {
    for (const [name, ring] of [
      ['standard', Keyring.decode(readFileSync(cluster.keyFile('standard'), 'utf8'))],
      [cordon, Keyring.decode(issuedKeyring())],
    ] as const) {
      const session = await connectNatsSession<SupervisorForAgent>(nc, 'supervisor', { keyring: ring, name, expect: 'supervisor' });
      try {
        await assert.rejects(Promise.resolve(session.remote.dedicated()), `${name}: the sandbox port has no dedicated()`);
      } finally {
        session.close();
      }
    }
  });

  test("posing as the agent with a sandbox's keys: the supervisor refuses the proof (and admits the real agent key)", async () => {
    const stolen = Keyring.decode(readFileSync(cluster.keyFile('standard'), 'utf8'));
    const issued = Keyring.decode(issuedKeyring());
    const tries = [
      stolen.key('sandbox', 'supervisor', 'standard')!,
      stolen.key('ingress', 'sandbox', 'standard')!,
      issued.key('sandbox', 'supervisor', cordon)!,
      issued.key('ingress', 'sandbox', cordon)!,
    ];
    for (const key of tries) assert.deepEqual(await asAgent(key), { error: 'handshake failed' });
    // A forged keyring of role agent holding the stolen key does not even verify the supervisor.
    const forged = Keyring.decode(
      Buffer.from(JSON.stringify({ v: 2, role: 'agent', links: { 'agent>supervisor': tries[0]!.toString('base64') } })).toString('base64'),
    );
    await assert.rejects(connectNatsSession(nc, 'supervisor', { keyring: forged, name: 'agent', expect: 'supervisor' }), /failed to prove/);
    assert.match(cluster.services[0]!.output(), /client failed to prove it is agent agent/, 'the supervisor logged the refusal');
    // The same procedure with the agent's real key (from the operator's secret) is admitted: the refusals above are the keys'.
    const secret = Buffer.from(readFileSync(`${cluster.operator}/mesh.secret`, 'utf8').trim(), 'hex');
    assert.deepEqual(await asAgent(Keyring.forRole(secret, 'agent').key('agent', 'supervisor')!), { ok: true });
  });

  test("sniffing every session subject with the NATS credentials it holds: no other cordon's request, storage call or answer is readable", async () => {
    const seen: Buffer[] = [];
    const spy = nc.subscribe('cordon.s.>', { callback: (_err, msg) => void seen.push(Buffer.from(msg.data)) });
    await nc.flush();
    const secret = `card-${randomBytes(12).toString('hex')}`;
    try {
      // The request's URL crosses ingress → sandbox, the value sandbox → supervisor and back, and the answer sandbox → ingress.
      assert.deepEqual(await get(`/cluster/put?key=card&value=${secret}`), { status: 200, text: 'stored' });
      assert.deepEqual(await get('/cluster/get?key=card'), { status: 200, text: JSON.stringify({ value: secret }) });
      await waitFor('session frames to be seen', async () => (seen.length >= 8 ? true : undefined), 10_000);
    } finally {
      spy.unsubscribe();
    }
    const all = Buffer.concat(seen);
    assert.equal(all.includes(secret), false, 'the secret never crosses the bus in clear');
    assert.equal(all.includes('/cluster/put'), false, 'nor the request line');
  });

  test('the keyring issued for the quarantine cordon opens no other cordon', async () => {
    const issued = issuedKeyring();
    assert.equal(Keyring.decode(issued).cordon, cordon);
    assert.equal(Keyring.decode(issued).key('sandbox', 'supervisor', 'standard'), undefined);
    // Its keys, relabelled as standard's or another quarantine cordon's: the supervisor refuses the proof.
    for (const other of ['standard', 'q-000000000000']) {
      const relabelled = rewritten(issued, (o) => {
        o.cordon = other;
      });
      await assert.rejects(
        connectNatsSession(nc, 'supervisor', { keyring: relabelled, name: other, expect: 'supervisor' }),
        /refused the handshake/,
        `posing as ${other}`,
      );
    }
    // Refused for the proof, not for an unknown cordon: standard is served, and its key is not this one.
    assert.match(cluster.services[0]!.output(), /client failed to prove it is sandbox standard/);
    // The quarantined worker and the bystander are served.
    assert.equal((await get('/cluster/replica')).status, 200);
    assert.equal((await get('/hello')).status, 200);
  });
});
