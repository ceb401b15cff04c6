/**
 * The HTTP fast path (lib/rpc/fast-frames.ts) is a new wire format on the ingress ↔ sandbox link:
 * fuzzed and hostile frames against the real sandbox process. The peer here holds ingress's keyring
 * (only ingress may open the sandbox's endpoint); before the handshake no binary frame is read at all.
 * The sandbox must apply the capnweb path's checks to a fast request (code key, request schema), close
 * only the offending session on a malformed frame, and keep serving a bystander tenant's worker
 * through the real ingress throughout. The other direction (a compromised sandbox answering ingress)
 * is services/ingress/fast-link.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { createConnection } from 'node:net';
import { startTestMesh, sandboxNodes, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import type { BinaryChannel } from '../../lib/rpc/channel.ts';
import { encodeRequest, encodeResponse } from '../../lib/rpc/fast-frames.ts';
import { Rng } from '../../lib/rpc/testing/fuzz.ts';
import { socketPath } from '../../lib/config.ts';
import { FastLink } from '../../services/ingress/fast-link.ts';
import type { SandboxApi } from '../../schemas/services.ts';
import type { WireRequest } from '../../schemas/http.ts';

const SEED = process.env.CORDON_FUZZ_SEED ? Number(process.env.CORDON_FUZZ_SEED) : randomInt(2 ** 31);
/** Sessions of fuzzed frames, each ended by the sandbox or left after its frames: bounded in count. */
const FUZZ_SESSIONS = 12;

const forged = { workerId: 'bystander/hello', version: 'a'.repeat(64), codeKey: 'A'.repeat(43) };
const wire = (over: Partial<WireRequest> = {}): WireRequest => ({
  method: 'GET',
  url: 'http://example.test/x',
  headers: [['host', 'example.test']],
  body: null,
  ...over,
});

describe('the fast path into a sandbox, against a hostile peer', () => {
  let mesh: TestMesh;
  let sandboxPid: number;
  const bystanderOk = async () => {
    const r = await fetch(`${mesh.httpUrl}/bystander/hello`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /Hello, world/);
  };
  const open = () =>
    connectUnixSession<SandboxApi>(socketPath(mesh.dataDir, 'sandbox-standard'), {
      keyring: Keyring.forRole(loadMeshSecret(mesh.dataDir, {}), 'ingress'),
      name: 'ingress',
      expect: 'sandbox',
      expectName: 'standard',
    });
  const closedWithin = (session: MeshSession<SandboxApi>, ms: number) =>
    Promise.race([session.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

  before(async () => {
    mesh = await startTestMesh();
    const d = await mesh.cli([
      'deploy',
      'examples/hello/index.ts',
      '--name',
      'hello',
      '--tenant',
      'bystander',
      '--cordon',
      'standard',
      '--route',
      '*/bystander/hello*',
    ]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the bystander', async () => (await fetch(`${mesh.httpUrl}/bystander/hello`)).status === 200 || undefined);
    // Two tenants' echo workers in the same sandbox, for the bodies' test below.
    for (const tenant of ['tenant-a', 'tenant-b']) {
      const e = await mesh.cli([
        'deploy',
        'bench/request-path-worker.js',
        '--name',
        'echo',
        '--tenant',
        tenant,
        '--cordon',
        'standard',
        '--route',
        `*/${tenant}/*`,
      ]);
      assert.equal(e.code, 0, e.stderr);
      await waitFor(tenant, async () => (await fetch(`${mesh.httpUrl}/${tenant}/echo`, { method: 'POST', body: 'x' })).status === 200 || undefined);
    }
    sandboxPid = sandboxNodes(mesh).get('standard')!;
    assert.ok(sandboxPid);
  });
  after(() => mesh?.stop());

  test('a forged code key and a request the schema refuses fail that call alone, as on capnweb', async () => {
    const session = await open();
    try {
      const link = FastLink.of(session)!;
      await assert.rejects(link.call(forged, wire()), /worker code unavailable/);
      await assert.rejects(link.call(forged, wire({ method: 'get' })), /invalid request at method/);
      await assert.rejects(link.call(forged, wire({ url: 'file:///etc/passwd' })), /invalid request at url/);
      await assert.rejects(link.call(forged, wire({ headers: [['bad name', 'x']] })), /invalid request at headers/);
      await assert.rejects(
        link.call(forged, wire({ headers: Array.from({ length: 200 }, (_, i) => [`h${i}`, 'x'] as [string, string]) })),
        /invalid request at headers/,
      );
      await assert.rejects(link.call({ ...forged, codeKey: 'short' }, wire()), /malformed code key/);
      assert.equal(session.isClosed, false, 'a refused call leaves the session open');
      await bystanderOk();
    } finally {
      session.close();
    }
  });

  test('an answer-kind frame from the ingress side closes that session; the sandbox and the bystander are unharmed', async () => {
    const session = await open();
    (session.channel as BinaryChannel).sendBinary(encodeResponse({ id: 1, status: 200, statusText: '', headers: [], body: null, streamed: false }));
    assert.equal(await closedWithin(session, 5000), true, 'the sandbox closed the session');
    assert.equal(sandboxNodes(mesh).get('standard'), sandboxPid, 'the same sandbox process');
    await bystanderOk();
  });

  test(`fuzzed frames close at most their own session (seed ${SEED})`, async () => {
    const rng = new Rng(SEED);
    const valid = Buffer.concat(
      encodeRequest({
        id: 1,
        traceparent: '',
        target: forged,
        method: 'GET',
        url: 'http://x.test/',
        headers: [['a', 'b']],
        body: new Uint8Array(10),
        cf: undefined,
      }),
    );
    for (let s = 0; s < FUZZ_SESSIONS; s++) {
      const session = await open();
      const channel = session.channel as BinaryChannel;
      for (let f = 0; f < 20 && !session.isClosed; f++) {
        let frame = rng.chance(0.3) ? rng.bytes(rng.int(100)) : Buffer.from(valid);
        for (let m = rng.int(4); m > 0 && frame.length; m--) {
          const at = rng.int(frame.length);
          if (rng.chance(0.6)) frame[at] = rng.int(256);
          else frame = frame.subarray(0, at);
        }
        channel.sendBinary(frame);
      }
      await closedWithin(session, 300);
      session.close();
      await bystanderOk();
    }
    assert.equal(sandboxNodes(mesh).get('standard'), sandboxPid, `the same sandbox process (seed ${SEED})`);
  });

  test("bodies in flight at once through the real mesh each come back byte for byte: no request's bytes in another's body (the decoders reuse their assembly buffers)", async () => {
    // Distinct content per request (tenant, index and position in every 4 bytes), sizes on both sides
    // of the decoders' reads (64 KiB) and lent buffer, all in flight together on the one link.
    const bodyOf = (tenant: number, i: number) => {
      const size = [1, 3000, 40_000, 65_536 - 7, 65_536][i % 5]!;
      const b = Buffer.alloc(size);
      for (let at = 0; at + 4 <= size; at += 4) b.writeUInt32BE(((tenant << 28) | (i << 20) | at) >>> 0, at);
      return b;
    };
    const ROUNDS = 3;
    for (let round = 0; round < ROUNDS; round++) {
      const calls = [0, 1].flatMap((tenant) =>
        Array.from({ length: 20 }, async (_, i) => {
          const sent = bodyOf(tenant, i + 20 * round);
          const r = await fetch(`${mesh.httpUrl}/${tenant ? 'tenant-b' : 'tenant-a'}/echo`, { method: 'POST', body: sent });
          assert.equal(r.status, 200);
          const got = Buffer.from(await r.arrayBuffer());
          assert.ok(got.equals(sent), `tenant ${tenant} request ${i}: ${got.length} bytes back for ${sent.length}, not its own`);
        }),
      );
      await Promise.all(calls);
    }
    await bystanderOk();
  });

  test('a binary frame before the handshake closes the connection unread', async () => {
    const socket = createConnection(socketPath(mesh.dataDir, 'sandbox-standard'));
    await new Promise((r) => socket.once('connect', r));
    const header = Buffer.alloc(4);
    header.writeUInt32BE((0x8000_0000 | 16) >>> 0, 0);
    socket.write(Buffer.concat([header, Buffer.alloc(16)]));
    socket.resume();
    const closed = await Promise.race([new Promise((r) => socket.once('close', () => r(true))), new Promise((r) => setTimeout(() => r(false), 2000))]);
    socket.destroy();
    // At once, not at the handshake's time-out (5 s) as for a client that merely says nothing.
    assert.equal(closed, true, 'the sandbox closed the connection within 2 s');
    assert.equal(sandboxNodes(mesh).get('standard'), sandboxPid);
    await bystanderOk();
  });
});
