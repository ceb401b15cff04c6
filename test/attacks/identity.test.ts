/**
 * Attacks on mesh identity by a compromised sandbox (issue 12, items 1 and 2): the untrusted
 * sandbox's keyring is taken from its process environment, and the test process, holding it, tries
 * to be someone else — another cordon to the supervisor, a quarantine or debug cordon, ingress to
 * another cordon's sandbox — and, as itself, to blame another cordon's worker for crashes. Each
 * attempt is refused, and the cordon it aimed at keeps serving, its cron and workflows included.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring } from '../../lib/rpc/index.ts';
import { connectUnix } from '../../lib/rpc/unix.ts';
import { HANDSHAKE_VERSION } from '../../lib/rpc/handshake.ts';
import { socketPath } from '../../lib/config.ts';
import { Quarantine } from '../../services/supervisor/quarantine.ts';
import type { Role } from '../../lib/rpc/keys.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';

/** The keyring a process was handed, read from its environment as a process that took it over would. */
function keyringOf(pid: number): Keyring {
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  return Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(environ)![1]!);
}

describe('attacks on mesh identity, with a sandbox keyring stolen from its environment', () => {
  let mesh: TestMesh;
  let stolen: Keyring;
  const admin = async (method: string, path: string) => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    return fetch(`${mesh.adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  };
  const serves = async (path: string) => (await fetch(`${mesh.httpUrl}${path}`)).status === 200;
  const audit = async () => (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;

  /**
   * A hostile client speaking the handshake by hand: it names whatever identity it likes, proves
   * with whatever key it holds, and ignores the server's proof. Resolves to the server's verdict.
   */
  async function claim(endpoint: string, hello: { role: Role; name: string; to: Role }, key: Buffer | Keyring): Promise<'accepted' | 'refused'> {
    const channel = await connectUnix(socketPath(mesh.dataDir, endpoint), 1 << 20);
    const timer = setTimeout(() => channel.close(new Error('no verdict within 5 s')), 5000);
    try {
      const dh = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!;
      const h = { v: HANDSHAKE_VERSION, ...hello, nonce: randomBytes(32).toString('base64'), dh };
      channel.send(JSON.stringify(h));
      const reply = JSON.parse(await channel.receive()) as Record<string, string>;
      if (reply.error) return 'refused';
      const transcript = JSON.stringify([h.role, h.name, h.to, h.nonce, h.dh, reply.role, reply.name, reply.nonce, reply.dh]);
      // A link key proves by HMAC; a keyring given instead signs (what ingress and the supervisor do).
      const proof = Buffer.isBuffer(key)
        ? createHmac('sha256', key).update('client\0').update(transcript).digest()
        : key.sign(Buffer.from(`client\0${transcript}`));
      channel.send(JSON.stringify({ proof: proof.toString('base64') }));
      const verdict = JSON.parse(await channel.receive()) as Record<string, unknown>;
      return verdict.ok === true ? 'accepted' : 'refused';
    } catch (e) {
      if (/no verdict/.test((e as Error).message)) throw e;
      return 'refused'; // the server closed the connection
    } finally {
      clearTimeout(timer);
      channel.close();
    }
  }
  /** Every key the stolen keyring holds, tried for `hello`: accepted if any one is. */
  const claimWithEveryKey = async (endpoint: string, hello: { role: Role; name: string; to: Role }, ring: Keyring) => {
    const keys = [ring.key('sandbox', 'supervisor', ring.cordon), ring.key('ingress', 'sandbox', ring.cordon)].filter((k): k is Buffer => k !== undefined);
    assert.equal(keys.length, 2, 'the sandbox keyring holds its two keys');
    const verdicts = await Promise.all(keys.map((k) => claim(endpoint, hello, k)));
    return verdicts.includes('accepted') ? 'accepted' : 'refused';
  };

  before(async () => {
    mesh = await startTestMesh();
    for (const args of [
      ['deploy', '--config', 'examples/cron/wrangler.jsonc'],
      ['deploy', '--config', 'examples/workflows/wrangler.jsonc'],
      ['deploy', 'examples/hello/index.ts', '--name', 'bystander', '--route', '*/bystander*'],
      ['deploy', 'examples/hello/index.ts', '--name', 'debugged', '--route', '*/debugged*'],
    ]) {
      const r = await mesh.cli(args);
      assert.equal(r.code, 0, r.stderr);
    }
    // (signup's fetch creates the table its workflow writes to)
    await waitFor(
      'the standard workers',
      async () => ((await serves('/bystander')) && (await serves('/cron')) && (await fetch(`${mesh.httpUrl}/signup/none`)).status === 404) || undefined,
    );
    const pid = await waitFor('the untrusted sandbox', () => sandboxNodes(mesh).get('untrusted'));
    stolen = keyringOf(pid);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('the stolen keyring is the untrusted cordon’s own: it proves that cordon, and only it', async () => {
    assert.equal(stolen.self, 'sandbox');
    assert.equal(stolen.cordon, 'untrusted');
    assert.equal(
      await claim('supervisor', { role: 'sandbox', name: 'untrusted', to: 'supervisor' }, stolen.key('sandbox', 'supervisor', 'untrusted')!),
      'accepted',
      'the hostile client speaks the handshake',
    );
    assert.equal(stolen.key('sandbox', 'supervisor', 'standard'), undefined);
  });

  test('(a) claiming cordon standard to the supervisor is refused; standard keeps serving, its cron and workflows run', async () => {
    assert.equal(await claimWithEveryKey('supervisor', { role: 'sandbox', name: 'standard', to: 'supervisor' }, stolen), 'refused');
    // Through lib/rpc too, with a keyring rewritten to name cordon standard around the stolen keys.
    const rewritten = Keyring.decode(
      Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(stolen.encode(), 'base64').toString()), cordon: 'standard' })).toString('base64'),
    );
    await assert.rejects(
      connectUnixSession(socketPath(mesh.dataDir, 'supervisor'), { keyring: rewritten, name: 'standard', expect: 'supervisor' }),
      /failed to prove|refused/,
    );

    assert.ok(await serves('/bystander'), 'a standard worker still serves');
    const trigger = await mesh.cli(['trigger', 'cron']);
    assert.equal(trigger.code, 0, trigger.stderr);
    const runs = (await (await fetch(`${mesh.httpUrl}/cron`)).json()) as { cron: string }[];
    assert.ok(
      runs.some((r) => r.cron === '*/5 * * * *'),
      'the cron ran on the real standard sandbox',
    );
    const created = await mesh.cli(['workflows', 'create', 'signup', '--params', JSON.stringify({ user: 'ada', sleepMs: 10 })]);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    const status = async () => JSON.parse((await mesh.cli(['workflows', 'status', 'signup', id, '--json'])).stdout) as { status: string };
    await waitFor('the workflow to wait for its event', async () => (await status()).status === 'waiting' || undefined, 30_000);
    await mesh.cliOk(['workflows', 'event', 'signup', id, 'approved', '--payload', '{"by":"bob"}']);
    await waitFor('the workflow to complete', async () => (await status()).status === 'complete' || undefined, 30_000);
  });

  test('(b) claiming a quarantine or debug cordon is refused; that cordon’s own process has only its keys', async () => {
    const q = Quarantine.cordonFor('default/bystander');
    assert.equal(await claimWithEveryKey('supervisor', { role: 'sandbox', name: q, to: 'supervisor' }, stolen), 'refused');

    // A debug cordon the supervisor does run: its process holds that cordon's keys and no other's.
    const started = await admin('POST', '/v1/workers/default/debugged/debug');
    assert.equal(started.status, 201, await started.clone().text());
    const { cordon: d } = (await started.json()) as { cordon: string };
    const dPid = await waitFor('the debug sandbox', () => sandboxNodes(mesh).get(d), 30_000);
    await waitFor('the debugged worker to serve from it', () => serves('/debugged'), 30_000);
    assert.equal(await claimWithEveryKey('supervisor', { role: 'sandbox', name: d, to: 'supervisor' }, stolen), 'refused');
    const debugRing = keyringOf(dPid);
    assert.equal(debugRing.cordon, d);
    assert.equal(
      await claimWithEveryKey('supervisor', { role: 'sandbox', name: 'standard', to: 'supervisor' }, debugRing),
      'refused',
      'a debug sandbox is tenant code too',
    );
    assert.ok(await serves('/debugged'), 'the debugged worker still serves');
    assert.ok(await serves('/bystander'));
    // Its own keys open its session only while the supervisor runs that cordon.
    const own = () => claim('supervisor', { role: 'sandbox', name: d, to: 'supervisor' }, debugRing.key('sandbox', 'supervisor', d)!);
    assert.equal(await own(), 'accepted');
    assert.equal((await admin('DELETE', '/v1/workers/default/debugged/debug')).status, 200);
    assert.equal(await own(), 'refused', 'a cordon that is no longer run is refused, its key notwithstanding');
    await waitFor('the debugged worker back in standard', () => serves('/debugged'), 30_000);
  });

  test('(c) as itself, blaming another cordon’s worker for crashes is refused, audited and never counted', async () => {
    const s = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolen,
      name: 'untrusted',
      expect: 'supervisor',
    });
    try {
      await s.remote.crashed(['default/bystander']);
      await s.remote.crashed(['default/bystander']);
    } finally {
      s.close();
    }
    assert.equal((await mesh.cli(['quarantine', 'list'])).stdout, '', 'nothing was quarantined');
    assert.match((await mesh.cli(['workers'])).stdout, /default\/bystander\t[0-9a-f]{12}\tstandard/);
    const log = await audit();
    assert.match(log, /sandbox:untrusted\tworker\.crash\.refused\t-\tdenied\t.*"workers":\["default\/bystander"\]/);
    assert.doesNotMatch(log, /worker\.crash\tdefault\/bystander/, 'never counted as a crash');
    assert.ok(await serves('/bystander'), 'the named worker is still served');
  });

  test('(d) posing as ingress to another cordon’s sandbox is refused; that sandbox keeps serving', async () => {
    assert.equal(await claimWithEveryKey('sandbox-standard', { role: 'ingress', name: 'ingress', to: 'sandbox' }, stolen), 'refused');
    // The same hand-made client with ingress's real keyring is accepted: the refusal is the key's.
    const ingress = keyringOf(mesh.servicePids().get('ingress')!);
    assert.equal(await claim('sandbox-standard', { role: 'ingress', name: 'ingress', to: 'sandbox' }, ingress), 'accepted');
    assert.ok(await serves('/bystander'), 'the standard sandbox keeps serving');
  });

  test('(e) posing as ingress even to its own cordon’s sandbox is refused: ingress signs, a sandbox cannot', async () => {
    // The untrusted sandbox holds the link key ingress→untrusted (it must check ingress's proof), but
    // ingress proves with a signature, so that key opens no session as ingress — not to itself, not
    // to a replica of its cordon.
    assert.equal(
      await claim('sandbox-untrusted', { role: 'ingress', name: 'ingress', to: 'sandbox' }, stolen.key('ingress', 'sandbox', 'untrusted')!),
      'refused',
    );
    assert.throws(() => stolen.sign(Buffer.from('x')), /holds no signing key/);
    const ingress = keyringOf(mesh.servicePids().get('ingress')!);
    assert.equal(await claim('sandbox-untrusted', { role: 'ingress', name: 'ingress', to: 'sandbox' }, ingress), 'accepted');
    assert.ok(await serves('/bystander'));
  });
});
