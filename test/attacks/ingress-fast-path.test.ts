/**
 * The HTTP fast path (lib/rpc/fast-frames.ts) is a new wire format on the ingress ↔ sandbox link:
 * fuzzed and hostile frames against the real sandbox process. The peer here holds ingress's keyring
 * (only ingress may open the sandbox's endpoint); before the handshake no binary frame is read at all.
 * The sandbox must apply the capnweb path's checks to a fast request (code key, request schema), close
 * only the offending session on a malformed frame, and keep serving a bystander tenant's worker
 * through the real ingress throughout. The other direction (a compromised sandbox answering ingress)
 * is services/ingress/fast-link.test.ts. A worker that patches built-ins cannot reach or steer how its
 * answer's body leaves the isolate (the bootstrap's ExternalCopy of it, abi.ts BodyCopy).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { createConnection } from 'node:net';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, sandboxNodes, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret, type MeshSession } from '../../lib/rpc/index.ts';
import type { BinaryChannel } from '../../lib/rpc/channel.ts';
import { encodeRequest, encodeRequestMessages, encodeResponse } from '../../lib/rpc/fast-frames.ts';
import { BODY_SIZED } from '../../lib/rpc/frames.ts';
import { Rng } from '../../lib/rpc/testing/fuzz.ts';
import { socketPath } from '../../lib/config.ts';
import { FastLink } from '../../services/ingress/fast-link.ts';
import type { SandboxApi } from '../../schemas/services.ts';
import type { WireRequest } from '../../schemas/http.ts';

const SEED = process.env.CORDON_FUZZ_SEED ? Number(process.env.CORDON_FUZZ_SEED) : randomInt(2 ** 31);
/** Sessions of fuzzed frames, each ended by the sandbox or left after its frames: bounded in count. */
const FUZZ_SESSIONS = 12;

/**
 * A worker streaming `chunks` chunks of 64 KiB (at most 255) that say whose they are in every 4 bytes:
 * the tag from the URL, the chunk's number and the word's place, so that a byte from another response shows.
 */
const TAGGED_STREAM = `export default { fetch(request) {
  const params = new URL(request.url).searchParams;
  const tag = Number(params.get('tag'));
  const chunks = Math.min(255, Number(params.get('chunks') ?? 16));
  let n = 0;
  return new Response(new ReadableStream({ pull(c) {
    if (n === chunks) return c.close();
    const chunk = new Uint8Array(64 * 1024);
    const view = new DataView(chunk.buffer);
    for (let at = 0; at < chunk.length; at += 4) view.setUint32(at, ((tag << 24) | (n << 16) | (at >> 2)) >>> 0);
    n++;
    c.enqueue(chunk);
  } }));
} };`;

/**
 * A worker that patches the built-ins around an answer's way out of the isolate before any request: an
 * ArrayBuffer byteLength that lies about large buffers, index setters on Array.prototype and a
 * Promise.prototype.then that look for an isolated-vm handle (an object whose prototype has copy and
 * release: the bootstrap's copy of an answer's body, abi.ts BodyCopy), JSON.parse/stringify replaced. It
 * echoes the body and says in headers what it saw, and which host globals it can name.
 */
const STEERING = `const seen = new Set();
const handle = (v) => { try { const p = v !== null && typeof v === 'object' ? Object.getPrototypeOf(v) : null; return p !== null && Object.hasOwn(p, 'release') && Object.hasOwn(p, 'copy'); } catch { return false; } };
const abLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get;
Object.defineProperty(ArrayBuffer.prototype, 'byteLength', { get() { const n = abLength.call(this); return n > 4096 ? 1 : n; }, configurable: true });
for (let i = 0; i < 64; i++)
  Object.defineProperty(Array.prototype, i, { set(v) { if (handle(v)) seen.add('index'); Object.defineProperty(this, i, { value: v, writable: true, enumerable: true, configurable: true }); }, configurable: true });
const then = Promise.prototype.then;
Promise.prototype.then = function (f, r) { return then.call(this, (v) => { if (handle(v) || (Array.isArray(v) && v.some(handle))) seen.add('then'); return typeof f === 'function' ? f(v) : v; }, r); };
const parse = JSON.parse;
JSON.parse = (t, r) => { if (typeof t === 'string' && t.includes('"streamed"')) seen.add('parse'); return parse(t, r); };
JSON.stringify = () => '{}';
// Every object a promise resolves with is asked for its then: a pull's copy, or an object holding one, would show here.
Object.defineProperty(Object.prototype, 'then', { get() { try { if (handle(this) || Object.values(this).some(handle)) seen.add('resolved'); } catch {} return undefined; }, configurable: true });
// Chunks whose species a subarray or slice of the runtime's would run (a chunk split between two pulls).
class Sneaky extends Uint8Array { static get [Symbol.species]() { seen.add('species'); return Uint8Array; } }
const STREAM_CHUNKS = [100_000, 300_000, 7, 65_536, 3, 262_144];
export default { async fetch(request) {
  if (request.url.endsWith('/stream')) {
    // Byte k of the whole body is (k * 7 + 3) & 255: a byte out of place, lost or from elsewhere shows.
    let i = 0;
    let at = 0;
    return new Response(new ReadableStream({ pull(c) {
      if (i === STREAM_CHUNKS.length) return c.close();
      const chunk = new Sneaky(STREAM_CHUNKS[i++]);
      for (let k = 0; k < chunk.length; k++) chunk[k] = ((at + k) * 7 + 3) & 255;
      at += chunk.length;
      c.enqueue(chunk);
    } }));
  }
  if (request.url.endsWith('/seen')) return new Response(null, { headers: { 'x-seen': [...seen].join(',') } });
  const body = await request.arrayBuffer();
  const names = Object.getOwnPropertyNames(globalThis).filter((n) => /cordon|ivm|copy/i.test(n));
  return new Response(body, { headers: { 'x-seen': [...seen].join(','), 'x-globals': names.join(',') } });
} };`;

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
      const dir = mkdtempSync(join(tmpdir(), 'cordon-tagged-'));
      try {
        writeFileSync(join(dir, 'tagged.js'), TAGGED_STREAM);
        const t = await mesh.cli([
          'deploy',
          join(dir, 'tagged.js'),
          '--name',
          'tagged',
          '--tenant',
          tenant,
          '--cordon',
          'standard',
          '--route',
          `*/${tenant}-tagged*`,
        ]);
        assert.equal(t.code, 0, t.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      await waitFor(`${tenant}'s stream`, async () => (await fetch(`${mesh.httpUrl}/${tenant}-tagged?tag=0`)).status === 200 || undefined);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cordon-steering-'));
    try {
      writeFileSync(join(dir, 'steering.js'), STEERING);
      const t = await mesh.cli([
        'deploy',
        join(dir, 'steering.js'),
        '--name',
        'steering',
        '--tenant',
        'tenant-a',
        '--cordon',
        'standard',
        '--route',
        '*/steering*',
      ]);
      assert.equal(t.code, 0, t.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await waitFor('the steering worker', async () => (await fetch(`${mesh.httpUrl}/steering`, { method: 'POST', body: 'x' })).status === 200 || undefined);
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
    const request = {
      id: 1,
      traceparent: '',
      target: forged,
      method: 'POST',
      url: 'http://x.test/',
      headers: [['a', 'b']] as [string, string][],
      cf: undefined,
    };
    // A request with its body in its frame, and the frame of one whose body follows (the next frame, fuzzed or not, is taken for it).
    const valid = [
      Buffer.concat(encodeRequest({ ...request, body: new Uint8Array(10) })),
      Buffer.concat(encodeRequestMessages({ ...request, body: new Uint8Array(BODY_SIZED) })[0]!),
    ];
    for (let s = 0; s < FUZZ_SESSIONS; s++) {
      const session = await open();
      const channel = session.channel as BinaryChannel;
      for (let f = 0; f < 20 && !session.isClosed; f++) {
        let frame = rng.chance(0.3) ? rng.bytes(rng.int(100)) : Buffer.from(rng.pick(valid));
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
    // of the decoders' reads (64 KiB) and lent buffer, and of BODY_SIZED (from which a request body
    // follows its frame as a message of its own, read into memory of its own and moved into the
    // isolate as it is), all in flight together on the one link.
    const bodyOf = (tenant: number, i: number) => {
      const size = [1, 3000, BODY_SIZED - 1, BODY_SIZED, 40_000, 65_536 - 7, 65_536][i % 7]!;
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

  test('streamed bodies of two tenants in flight at once, one stalled by its client, each come back byte for byte (ingress reuses the buffers of chunk frames once written)', async () => {
    // Two streams of 12 MiB whose clients stop reading for a while: the loopback socket's buffers fill,
    // and the chunks ingress has not yet handed to the socket stay lent out of its pool. Meanwhile 12
    // streams of 1 MiB and 64 KiB echo bodies of both tenants are written (their frames' buffers given
    // back and reused). Every response is checked word by word for bytes not its own.
    const read = (tenant: number, tag: number, chunks: number, stallMs: number) =>
      new Promise<void>((resolve, reject) => {
        httpRequest(`${mesh.httpUrl}/${tenant ? 'tenant-b' : 'tenant-a'}-tagged?tag=${tag}&chunks=${chunks}`, (res) => {
          const got: Buffer[] = [];
          let stalled = false;
          res.on('data', (d: Buffer) => {
            got.push(d);
            if (stallMs && !stalled) {
              stalled = true;
              res.pause();
              setTimeout(() => res.resume(), stallMs);
            }
          });
          res.on('error', reject);
          res.on('end', () => {
            try {
              assert.equal(res.statusCode, 200);
              const body = Buffer.concat(got);
              assert.equal(body.length, chunks * 64 * 1024, `stream ${tag}: its length`);
              for (let at = 0; at < body.length; at += 4) {
                const word = body.readUInt32BE(at);
                const want = ((tag << 24) | ((at >> 16) << 16) | ((at & 0xffff) >> 2)) >>> 0;
                if (word !== want)
                  assert.fail(`stream ${tag}: at byte ${at}, ${word.toString(16)} where ${want.toString(16)} belongs (stream ${word >>> 24}'s)`);
              }
              resolve();
            } catch (e) {
              reject(e);
            }
          });
        })
          .on('error', reject)
          .end();
      });
    const echo = async (tenant: number, i: number) => {
      const sent = Buffer.alloc(65_536);
      for (let at = 0; at < sent.length; at += 4) sent.writeUInt32BE((((0xf0 | tenant) << 24) | (i << 16) | (at >> 2)) >>> 0, at);
      const r = await fetch(`${mesh.httpUrl}/${tenant ? 'tenant-b' : 'tenant-a'}/echo`, { method: 'POST', body: sent });
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(sent), `tenant ${tenant} echo ${i}: not its own bytes`);
    };
    const stalled = [read(0, 1, 192, 1500), read(1, 2, 192, 1500)];
    await new Promise((r) => setTimeout(r, 300)); // the stalled streams have filled the sockets' buffers
    const others = [0, 1].flatMap((tenant) => [
      ...Array.from({ length: 6 }, (_, i) => read(tenant, 16 + tenant * 8 + i, 16, 0)),
      ...Array.from({ length: 10 }, (_, i) => echo(tenant, i)),
    ]);
    await Promise.all([...stalled, ...others]);
    await bystanderOk();
  });

  test("a worker that patches the built-ins around an answer's way out of the isolate neither sees the copy of its body nor changes what arrives; other tenants' bodies are unharmed", async () => {
    const bodyOf = (i: number, size: number) => {
      const b = Buffer.alloc(size);
      for (let at = 0; at + 4 <= size; at += 4) b.writeUInt32BE(((0xa0 << 24) | (i << 20) | at) >>> 0, at);
      return b;
    };
    // Both sides of what crosses inside the host's callback (a few KiB) and what crosses as a copy handed over.
    const sizes = [16, 4096, 4097, 40_000, 65_536];
    const calls = sizes.flatMap((size, i) => [
      (async () => {
        const sent = bodyOf(i, size);
        const r = await fetch(`${mesh.httpUrl}/steering`, { method: 'POST', body: sent });
        assert.equal(r.status, 200);
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(sent), `${size} bytes: not its own bytes back`);
        assert.equal(r.headers.get('x-seen'), '', `${size} bytes: the worker saw the runtime's copy or metadata`);
        assert.equal(r.headers.get('x-globals'), '', `${size} bytes: host globals left for the worker`);
      })(),
      (async () => {
        const sent = bodyOf(8 + i, size);
        const r = await fetch(`${mesh.httpUrl}/tenant-b/echo`, { method: 'POST', body: sent });
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(sent), `tenant-b, ${size} bytes: not its own bytes back`);
      })(),
    ]);
    await Promise.all(calls);
    await bystanderOk();
  });

  test("a streamed body leaves the isolate in buffers the host moved in, which the worker never sees: its bytes arrive in order, chunks split between pulls without its code run, other tenants' streams unharmed", async () => {
    const whole = async () => {
      const r = await fetch(`${mesh.httpUrl}/steering/stream`);
      assert.equal(r.status, 200);
      const got = Buffer.from(await r.arrayBuffer());
      assert.equal(got.length, 100_000 + 300_000 + 7 + 65_536 + 3 + 262_144);
      for (let k = 0; k < got.length; k++) if (got[k] !== ((k * 7 + 3) & 255)) assert.fail(`byte ${k} is ${got[k]}, not the worker's`);
    };
    const other = async (tag: number) => {
      const r = await fetch(`${mesh.httpUrl}/tenant-b-tagged?tag=${tag}&chunks=8`);
      const got = Buffer.from(await r.arrayBuffer());
      assert.equal(got.length, 8 * 64 * 1024);
      for (let at = 0; at < got.length; at += 4)
        assert.equal(got.readUInt32BE(at), ((tag << 24) | ((at >> 16) << 16) | ((at & 0xffff) >> 2)) >>> 0, `tenant-b's stream ${tag} at ${at}`);
    };
    await Promise.all([whole(), whole(), other(40), other(41), whole()]);
    const seen = await fetch(`${mesh.httpUrl}/steering/seen`);
    assert.equal(seen.headers.get('x-seen'), '', 'the worker saw a copy handle, or its chunks were split by its own species');
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
