/**
 * Attacks on the client RPC endpoint (`/rpc` on the admin port), through the real mesh and real
 * WebSockets: no token, a wrong one, a revoked one (live capabilities stop at once), a tenant-bound
 * token reaching for another tenant's workflow, a `read` token changing things, a stub where a string
 * is declared, and oversized, too-deep, garbage and binary frames. Each ends only the offending
 * connection: a bystander client keeps working, and the instances attacked are as they were. Over NATS
 * (a cluster): garbage, oversized and forged proofs before authentication, and oversized, too-deep,
 * garbage, non-UTF-8 and unknown-import messages on an authenticated session, each ending only that
 * session while a bystander session and its watch go on. The e2e cases (test/client.e2e.test.ts) run
 * revocation, tenant isolation and scope refusals over both transports. A worker's entrypoint: another
 * tenant's cannot be named, and a token revoked mid-call ends the call and what it returned at once.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { sign } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connect, type Cordon, type WatchEvent } from '../../client/index.ts';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { natsServerMissing, startNatsServer } from '../../lib/rpc/testing/nats-server.ts';
import { connectNats, sealFrame, type NatsChannel } from '../../lib/rpc/nats.ts';
import { CLIENT_RPC_ENDPOINT, proveToken, tokenNatsKey } from '../../lib/rpc/client-proof.ts';

/** capnweb's RpcPromise is a thenable, not a Promise: node:assert wants the latter. */
const rejects = (p: PromiseLike<unknown>, error: RegExp) => assert.rejects(Promise.resolve(p), error);

describe('attacks on the client RPC endpoint', () => {
  let mesh: TestMesh;
  let rpcUrl: string;
  let bystander: Cordon;
  const token = async (scope: string, tenant?: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scope, ...(tenant ? ['--tenant', tenant] : [])]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  /** The bystander's instance is untouched and its connection still answers. */
  const bystanderFine = async () => {
    const s = await bystander.workflows('signup').get('victim').status();
    assert.equal(s.status, 'waiting');
  };
  /** A raw WebSocket: what an attacker's own code sends, frame by frame. */
  const raw = (headers: Record<string, string> = {}) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(rpcUrl, { headers });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    });
  const closed = (ws: WebSocket) => new Promise<number>((resolve) => (ws.readyState === ws.CLOSED ? resolve(-1) : ws.once('close', (code) => resolve(code))));
  const answer = (ws: WebSocket) =>
    new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.once('close', (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
    });

  before(async () => {
    mesh = await startTestMesh();
    rpcUrl = `${mesh.adminUrl.replace('http:', 'ws:')}/rpc`;
    await mesh.cliOk(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
    bystander = await connect(rpcUrl, { token: await token('workflows') });
    await bystander.workflows('signup').create({ id: 'victim', params: { user: 'v', sleepMs: 10 } });
    await waitFor('the victim waiting for its event', async () => (await bystander.workflows('signup').get('victim').status()).steps.length === 3 || undefined);
  });
  after(async () => {
    bystander?.[Symbol.dispose]();
    await mesh?.stop();
  });

  test('no token, a wrong token: refused before any capability, and audited', async () => {
    await rejects(connect(rpcUrl, { token: 'cordon_not-a-token' }), /Cordon refused the connection: .*4401.*invalid bearer token/);
    await rejects(connect(rpcUrl, { token: '' }), /4401/);
    // With the header, the upgrade itself is refused: no WebSocket exists.
    await rejects(raw({ authorization: 'Bearer cordon_wrong' }), /Unexpected server response: 401/);
    // Connections that never send a token: at most 64 wait at once (each may hold a frame in ws), each
    // is closed after 5 s, and the bystander is served meanwhile.
    const silent = await Promise.all(Array.from({ length: 64 }, () => raw()));
    const extra = await raw();
    assert.equal(await closed(extra), 1013, 'the 65th waiting connection is turned away');
    await bystanderFine();
    assert.deepEqual(new Set(await Promise.all(silent.map(closed))), new Set([4401]), 'a connection that never sends a token is closed');
    const r = await mesh.cli(['audit', 'tail', '--limit', '50']);
    assert.match(r.stdout, /rpc\.connect.*denied/);
    // The header route works for a good token: capnweb spoken by hand.
    const good = await raw({ authorization: `Bearer ${await token('read')}` });
    good.send('["push",["pipeline",0,["whoami"],[]]]');
    good.send('["pull",1]');
    assert.match(await answer(good), /^\["resolve",1,.*"scopes":\[\["read"\]\]|^\["resolve",1,.*"read"/);
    good.close();
    await bystanderFine();
  });

  test('a revoked token: every live capability of it stops at once; a new connection is refused', async () => {
    const t = await token('workflows');
    const victim = await connect(rpcUrl, { token: t });
    const instance = victim.workflows('signup').get('victim');
    await instance.status();
    const events: string[] = [];
    await instance.watch((e) => void events.push(e.type));
    await waitFor('the watch to be live', () => events.length > 0 || undefined);
    const { tokenId } = await victim.whoami();
    const revoked = await mesh.cli(['tokens', 'revoke', tokenId]);
    assert.equal(revoked.code, 0, revoked.stderr);
    await rejects(instance.status(), /revoked/);
    await rejects(victim.workflows('signup').get('victim').pause(), /revoked/);
    await rejects(connect(rpcUrl, { token: t }), /4401/);
    await bystanderFine();
  });

  test("a tenant-bound token cannot reach another tenant's workflow, by name or by id", async () => {
    const acme = await connect(rpcUrl, { token: await token('workflows', 'acme') });
    assert.deepEqual({ ...(await acme.whoami()), tokenId: '' }, { tokenId: '', scopes: ['workflows'], tenant: 'acme', bound: true });
    await rejects(acme.tenant('default').workflows('signup').get('victim').status(), /bound to tenant acme/);
    await rejects(acme.workflows('signup').get('victim').status(), /no instance victim/);
    await rejects(acme.workflows('signup').create({ id: 'victim' }), /no workflow signup in tenant acme/);
    assert.deepEqual((await acme.workflows('signup').list()).instances, []);
    acme[Symbol.dispose]();
    await bystanderFine();
  });

  test('a read token reads and cannot create, pause or send events; the refusal names the scope', async () => {
    const reader = await connect(rpcUrl, { token: await token('read') });
    const instance = reader.workflows('signup').get('victim');
    assert.equal((await instance.status()).status, 'waiting');
    await rejects(reader.workflows('signup').create({ id: 'by-reader' }), /lacks the workflows scope/);
    await rejects(instance.pause(), /lacks the workflows scope/);
    await rejects(instance.terminate(), /lacks the workflows scope/);
    await rejects(instance.sendEvent({ type: 'approved', payload: { by: 'reader' } }), /lacks the workflows scope/);
    const deployer = await connect(rpcUrl, { token: await token('deploy') });
    await rejects(deployer.workflows('signup').get('victim').status(), /lacks the read \(or workflows\) scope/);
    reader[Symbol.dispose]();
    deployer[Symbol.dispose]();
    await rejects(bystander.workflows('signup').get('by-reader').status(), /no instance/);
    await bystanderFine();
  });

  test("entrypoint calls: another tenant's worker cannot be named; a token revoked mid-call ends the call and what it returned; a bystander's calls go on", async () => {
    const deployer = await connect(rpcUrl, { token: await token('deploy') });
    await deployer.deploy({
      name: 'rpc-api',
      mainModule: 'index.js',
      modules: [
        {
          name: 'index.js',
          type: 'esm',
          content: `import { WorkerEntrypoint, RpcTarget } from 'cloudflare:workers';
            class Counter extends RpcTarget { #n = 0; inc() { return ++this.#n; } }
            export default class extends WorkerEntrypoint {
              add(a, b) { return a + b; }
              counter() { return new Counter(); }
              slow(ms) { return new Promise((r) => setTimeout(() => r('slept'), ms)); }
            }`,
        },
      ],
    });
    deployer[Symbol.dispose]();
    const acme = await connect(rpcUrl, { token: await token('workflows', 'acme') });
    try {
      await rejects(acme.workers('rpc-api').getEntrypoint().add(1, 2), /no worker acme\/rpc-api/);
      await rejects(acme.workers('default/rpc-api').getEntrypoint().add(1, 2), /worker name/);
      await rejects(acme.tenant('default').workers('rpc-api').getEntrypoint().add(1, 2), /bound to tenant acme/);
    } finally {
      acme[Symbol.dispose]();
    }
    const victim = await connect(rpcUrl, { token: await token('workflows') });
    const api = victim.workers('rpc-api').getEntrypoint();
    const counter = (await api.counter()) as { inc(): Promise<number> };
    assert.equal(await counter.inc(), 1);
    const slow = Promise.resolve(api.slow(20_000));
    slow.catch(() => {});
    const { tokenId } = await victim.whoami();
    await mesh.cliOk(['tokens', 'revoke', tokenId]);
    await rejects(slow, /revoked|closed/);
    await rejects(counter.inc(), /revoked|closed/);
    victim[Symbol.dispose]();
    assert.equal(await bystander.workers('rpc-api').getEntrypoint().add(2, 3), 5, "the bystander's own calls go on");
    await bystanderFine();
  });

  test('a stub or an object where a string is declared is refused, not used', async () => {
    const c = await connect(rpcUrl, { token: await token('workflows') });
    await rejects(c.workflows((() => 'signup') as unknown as string).list(), /invalid workflow name/);
    await rejects(
      c
        .workflows('signup')
        .get({ toString: () => 'victim' } as unknown as string)
        .status(),
      /invalid instance id/,
    );
    await rejects(c.workflows('signup').create({ id: 'x', params: { f: () => 1 } }), /invalid create options/);
    await rejects(
      c
        .workflows('signup')
        .get('victim')
        .watch('not a function' as never),
      /invalid listener/,
    );
    c[Symbol.dispose]();
    await bystanderFine();
  });

  test('more calls in flight than a client may have: only its connection ends, and it is told why, without a host stack', async () => {
    const ws = await raw({ authorization: `Bearer ${await token('workflows')}` });
    const heard: string[] = [];
    ws.on('message', (d) => heard.push(d.toString()));
    // Pushed and never pulled, each call stays in flight: one more than a client's quota of 100.
    for (let i = 0; i < 101; i++) ws.send('["push",["pipeline",0,["whoami"],[]]]');
    assert.notEqual(await closed(ws), 1000);
    assert.ok(
      heard.some((m) => m.startsWith('["abort"') && /exceeded 100 calls in flight/.test(m)),
      `the abort names the quota: ${heard.join(' ').slice(0, 300)}`,
    );
    assert.ok(!heard.some((m) => /file:\/\/|node:internal/.test(m)), `no host stack reaches the client: ${heard.join(' ').slice(0, 300)}`);
    await bystanderFine();
  });

  test('oversized, too deep, garbage and binary frames end only their own connection', async () => {
    const t = await token('workflows');
    const frames: [string, (ws: WebSocket) => void][] = [
      ['a token over 1 KiB before authenticating', (ws) => ws.send('Bearer ' + 'x'.repeat(4096))],
      ['5 MiB', (ws) => ws.send('["push",["pipeline",0,["whoami"],["' + 'a'.repeat(5 * 1024 * 1024) + '"]]]')],
      ['200 levels deep', (ws) => ws.send(`["push",["pipeline",0,["workflows"],[${'['.repeat(200)}${']'.repeat(200)}]]]`)],
      ['garbage text', (ws) => ws.send('this is not capnweb')],
      ['binary', (ws) => ws.send(Buffer.from([1, 2, 3]))],
      ['an import it was never given', (ws) => ws.send('["push",["pipeline",4242,["status"],[]]]')],
    ];
    for (const [what, attack] of frames) {
      const ws = await raw(what.startsWith('a token') ? {} : { authorization: `Bearer ${t}` });
      attack(ws);
      const code = await closed(ws);
      assert.notEqual(code, 1000, `${what}: closed with ${code}`);
      await bystanderFine();
    }
    // The supervisor is still whole: a new client connects and works.
    const after = await connect(rpcUrl, { token: t });
    assert.equal((await after.workflows('signup').get('victim').status()).status, 'waiting');
    after[Symbol.dispose]();
  });
});

const natsMissing = natsServerMissing();
if (natsMissing && process.env.CORDON_REQUIRE_ALL === '1') test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(natsMissing));

/** The supervisor ended the session: its close frame (unkeyed, so unexpected to our unkeyed side) or the close itself. */
const ENDED = /closed|unexpected frame before the handshake/;

describe('attacks on the client RPC endpoint over NATS', { skip: natsMissing }, () => {
  let nats: { url: string; stop(): Promise<void> };
  let mesh: TestMesh;
  let nc: NatsConnection;
  let bystander: Cordon;
  const token = async (scope: string) => (await mesh.cli(['tokens', 'create', '--scope', scope])).stdout.trim();
  /** A session authenticated by hand, as a client's own code could: it then sends whatever it likes. */
  const authenticated = async (secret: string) => {
    // Our side's limit well over the supervisor's, so that an oversized message leaves it.
    const channel = await connectNats(nc, CLIENT_RPC_ENDPOINT, 16 * 1024 * 1024);
    const key = await proveToken(channel, secret);
    return Object.assign(channel, { key });
  };

  before(async () => {
    nats = await startNatsServer();
    mesh = await startTestMesh({}, ['--nats', nats.url]);
    nc = await natsConnect({ servers: nats.url.replace(/^nats:\/\//, '') });
    await mesh.cliOk(['deploy', '--config', 'examples/workflows/wrangler.jsonc']);
    await waitFor('the signup worker', async () => (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404 || undefined);
    bystander = await connect(nats.url, { token: await token('workflows') });
    await bystander.workflows('signup').create({ id: 'victim', params: { user: 'v', sleepMs: 10 } });
    await waitFor('the victim waiting for its event', async () => (await bystander.workflows('signup').get('victim').status()).steps.length === 3 || undefined);
  });
  after(async () => {
    bystander?.[Symbol.dispose]();
    await nc?.close();
    await mesh?.stop();
    await nats?.stop();
  });

  test('garbage, an oversized first message, a wrong proof and a replayed proof each end that session; a bystander connects and works', async () => {
    const supervisor = mesh.servicePids().get('supervisor');
    // Garbage on the connect subject.
    await nc.request(`cordon.connect.${CLIENT_RPC_ENDPOINT}`, 'not json', { timeout: 1000 }).catch(() => undefined);
    // A first message far over the pre-authentication bound.
    const big = await connectNats(nc, CLIENT_RPC_ENDPOINT, 4 * 1024 * 1024);
    await big.receive();
    big.authenticated(); // our side lets it go out; the supervisor's does not take it
    big.send(`Proof ${'x'.repeat(8 * 1024)}`);
    await assert.rejects(big.receive(), ENDED);
    // A proof for a token nobody issued; a real token's public key with a signature made by another key.
    const wrong = await connectNats(nc, CLIENT_RPC_ENDPOINT, 4 * 1024 * 1024);
    await assert.rejects(proveToken(wrong, 'cordon_guess'), /refused the connection/);
    const real = tokenNatsKey(await token('workflows')).publicKey;
    const forged = await connectNats(nc, CLIENT_RPC_ENDPOINT, 4 * 1024 * 1024);
    const hello = JSON.parse(await forged.receive()) as { dh: string };
    const signature = sign(null, Buffer.from('anything'), tokenNatsKey('cordon_guess').privateKey).toString('base64url');
    forged.send(`Proof ${hello.dh} ${real} ${signature}`);
    await assert.rejects(forged.receive(), ENDED);
    // Whoever copied admin.db holds each token's hash and public key, and opens no session with them.
    const copy = new Database(join(mesh.dataDir, 'supervisor', 'admin.db'), { readonly: true });
    const stored = copy.prepare('SELECT hash, nats_key FROM tokens WHERE revoked = 0').all() as { hash: string; nats_key: string }[];
    copy.close();
    assert.ok(stored.length >= 2 && stored.every((r) => r.nats_key));
    for (const row of stored) {
      const thief = await connectNats(nc, CLIENT_RPC_ENDPOINT, 4 * 1024 * 1024);
      const opened = JSON.parse(await thief.receive()) as { dh: string };
      const withHash = sign(null, Buffer.from(row.hash), tokenNatsKey(row.hash).privateKey).toString('base64url');
      thief.send(`Proof ${opened.dh} ${row.nats_key} ${withHash}`);
      await assert.rejects(thief.receive(), ENDED);
    }
    // A proof seen on the wire, replayed on a session of the attacker's: it names another session and nonce.
    const secret = await token('workflows');
    const seen: string[] = [];
    const spy = nc.subscribe('cordon.s.*.c2s', { callback: (_e, m) => void seen.push(Buffer.from(m.data.subarray(29)).toString()) });
    const victim = await connect(nats.url, { token: secret });
    await victim.whoami();
    spy.unsubscribe();
    const stolen = seen.find((m) => m.startsWith('Proof '));
    assert.ok(stolen, 'the spy saw the proof');
    const replay = await connectNats(nc, CLIENT_RPC_ENDPOINT, 4 * 1024 * 1024);
    await replay.receive();
    replay.send(stolen);
    await assert.rejects(replay.receive(), ENDED);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '100'])).stdout, /rpc\.connect\tnats:client-rpc\tdenied/);
    // The bystander (the victim's own connection) and the supervisor are unharmed.
    assert.deepEqual((await victim.whoami()).scopes, ['workflows']);
    victim[Symbol.dispose]();
    assert.equal(mesh.servicePids().get('supervisor'), supervisor);
  });

  test('an oversized, too deep, garbage, non-UTF-8 or unknown-import message on an authenticated session ends only that session; a bystander session and its watch are unharmed', async () => {
    const supervisor = mesh.servicePids().get('supervisor');
    const secret = await token('workflows');
    const heard: WatchEvent[] = [];
    using _watch = await bystander
      .workflows('signup')
      .get('victim')
      .watch((e) => void heard.push(e));
    await waitFor('the bystander watch to be live', () => heard.length > 0 || undefined);
    const attacks: [string, (channel: NatsChannel) => void, RegExp][] = [
      ['5 MiB', (c) => c.send(`["push",["pipeline",0,["whoami"],["${'a'.repeat(5 * 1024 * 1024)}"]]]`), /exceeds the limit of 4194304 bytes/],
      ['200 levels deep', (c) => c.send(`["push",["pipeline",0,["workflows"],[${'['.repeat(200)}${']'.repeat(200)}]]]`), /maximum allowed message depth/],
      ['garbage text', (c) => c.send('this is not capnweb'), /./],
      ['an import it was never given', (c) => c.send('["push",["pipeline",4242,["status"],[]]]'), /./],
    ];
    for (const [what, attack, why] of attacks) {
      const channel = await authenticated(secret);
      attack(channel);
      // The supervisor may say why in capnweb (an abort) before it closes: read up to the close, bounded.
      const heard: string[] = [];
      let reason = 'still open after 10 messages';
      for (let i = 0; i < 10; i++) {
        const next = await channel.receive().then(
          (m) => void heard.push(m.slice(0, 300)),
          (e: Error) => e.message,
        );
        if (next !== undefined) {
          reason = next;
          break;
        }
      }
      assert.match(reason, /^peer closed session/, `${what}: ${reason}`);
      assert.match([...heard, reason].join(' '), why, `${what}: ${heard.join(' ')} ${reason}`);
      assert.equal((await bystander.workflows('signup').get('victim').status()).status, 'waiting', `after ${what}`);
    }
    // Bytes that are not UTF-8, in a frame sealed as the channel would seal it (its sender takes only strings).
    const raw = await authenticated(secret);
    const sid = raw.description.slice('nats:'.length);
    const ended = new Promise<string>((resolve) => raw.onClose((e) => resolve(e.message)));
    const payload = Buffer.from([0xff, 0xfe, 0x80]);
    const frame = Buffer.alloc(29 + payload.length);
    frame[0] = 0x44; // data
    frame.writeUInt32BE(1, 1); // the Proof was frame 0
    frame.writeUInt16BE(0, 5);
    frame.writeUInt16BE(1, 7);
    frame.writeUInt32BE(payload.length, 9);
    sealFrame(raw.key, 1, sid, frame, payload);
    nc.publish(`cordon.s.${sid}.c2s`, frame);
    assert.match(await ended, /^peer closed session \S+: .*(encoded data was not valid|utf-8)/i);
    // The supervisor is whole, and the bystander's session, instance and watch are as they were.
    assert.equal(mesh.servicePids().get('supervisor'), supervisor);
    assert.deepEqual((await bystander.whoami()).scopes, ['workflows']);
    const before = heard.length;
    await bystander.workflows('signup').get('victim').pause();
    await waitFor(
      'the bystander watch to see the pause',
      () => heard.slice(before).some((e) => e.type === 'status' && e.status.status === 'paused') || undefined,
    );
    await bystander.workflows('signup').get('victim').resume();
  });
});
