/** What only the NATS transport must get right: chunking, frame encryption and authentication, replay, dead peers, queue groups. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RpcTarget } from 'capnweb';
import { connect as natsConnect, type NatsConnection, type Msg } from '@nats-io/transport-node';
import { Keyring, type MeshSession } from './index.ts';
import { connectNats, connectNatsSession, listenNats, MAX_CLOSE_REASON, serveNats, type NatsChannel } from './nats.ts';
import { MAX_HANDSHAKE_MESSAGE } from './channel.ts';
import { natsServerMissing, startNatsServer } from './testing/nats-server.ts';

const missing = natsServerMissing();
if (missing && process.env.CORDON_REQUIRE_ALL === '1') test('nats-server is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(missing));

const secret = randomBytes(32);
const timing = { heartbeatMs: 100, sessionTimeoutMs: 500 };

class Main extends RpcTarget {
  calls = 0;
  readonly id: string;
  constructor(id: string) {
    super();
    this.id = id;
  }
  echo(s: string): string {
    this.calls++;
    return s;
  }
  who(): string {
    return this.id;
  }
  disposed = false;
  [Symbol.dispose](): void {
    this.disposed = true;
  }
}

async function eventually(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('NATS transport', { skip: missing }, () => {
  let server: { url: string; stop(): Promise<void> };
  const conns: NatsConnection[] = [];
  const conn = async () => {
    const nc = await natsConnect({ servers: server.url });
    conns.push(nc);
    return nc;
  };
  const mains: Main[] = [];
  let serverNc: NatsConnection;

  before(async () => {
    // A small max_payload so that ordinary messages must be chunked.
    server = await startNatsServer({ maxPayload: 4096 });
    serverNc = await conn();
    await serveNats(serverNc, 'svc', {
      keyring: Keyring.forRole(secret, 'supervisor'),
      name: 'sup',
      accept: ['sandbox'],
      quotas: { maxMessage: 512 * 1024 },
      mainFor: () => {
        const m = new Main('first');
        mains.push(m);
        return m;
      },
      ...timing,
    });
  });
  after(async () => {
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await server?.stop();
  });

  const session = async (nc?: NatsConnection): Promise<MeshSession<Main>> =>
    connectNatsSession<Main>(nc ?? (await conn()), 'svc', {
      keyring: Keyring.forRole(secret, 'sandbox', 'sb'),
      name: 'sb',
      expect: 'supervisor',
      quotas: { maxMessage: 1 << 21 },
      ...timing,
    });

  test('a message far larger than max_payload arrives intact, in order', async () => {
    const s = await session();
    const big = randomBytes(150_000).toString('base64'); // ~200 KB, ~50 chunks
    assert.equal(await s.remote.echo(big), big);
    const seq = await Promise.all(Array.from({ length: 20 }, (_, i) => s.remote.echo(`m${i}-${'y'.repeat(5000)}`)));
    seq.forEach((v, i) => assert.ok(v.startsWith(`m${i}-`)));
    s.close();
  });

  test('a declared length over the limit closes the session before the rest is buffered', async () => {
    const s = await session();
    await assert.rejects(async () => s.remote.echo('z'.repeat(600 * 1024)));
    await eventually('the session to close', () => s.isClosed);
  });

  /** Capture the subject and a valid frame of a live session, as a sniffing NATS client could. */
  async function sniff(): Promise<{ s: MeshSession<Main>; subject: string; frames: Uint8Array[]; main: Main }> {
    const spy = await conn();
    const frames: Uint8Array[] = [];
    let subject = '';
    spy.subscribe('cordon.s.*.c2s', {
      callback: (_e, m: Msg) => {
        subject = m.subject;
        frames.push(new Uint8Array(m.data));
      },
    });
    await spy.flush();
    const s = await session();
    await s.remote.echo('hi');
    await eventually('frames to be seen', () => frames.length >= 3);
    return { s, subject, frames, main: mains.at(-1)! };
  }

  test('a frame injected by a third NATS client closes the session and is never dispatched', async () => {
    const { s, subject, frames, main } = await sniff();
    const attacker = await conn();
    // A well-formed data frame with the right next sequence number: only the tag can stop it.
    const last = Buffer.from(frames.at(-1)!);
    const body = Buffer.from('["push",["pipeline",0,["echo"],["injected"]]]');
    const frame = Buffer.concat([Buffer.alloc(29), body]);
    frame[0] = 0x44;
    frame.writeUInt32BE(last.readUInt32BE(1) + 1, 1);
    frame.writeUInt16BE(0, 5);
    frame.writeUInt16BE(1, 7);
    frame.writeUInt32BE(body.length, 9);
    attacker.publish(subject, frame);
    await eventually('the session to close', () => s.isClosed, 3000);
    assert.equal(main.calls, 1, 'only the genuine call ran');
  });

  test('another NATS user sniffing the session subjects reads nothing of the calls and answers', async () => {
    const spy = await conn();
    const seen: Buffer[] = [];
    spy.subscribe('cordon.s.>', { callback: (_e, m: Msg) => void seen.push(Buffer.from(m.data)) });
    await spy.flush();
    const s = await session();
    const marker = `tenant-secret-${randomBytes(8).toString('hex')}`;
    assert.equal(await s.remote.echo(marker.repeat(300)), marker.repeat(300), 'the call works (and is chunked: max_payload is 4 KiB)');
    await eventually('both directions to be seen', () => seen.length >= 6);
    const all = Buffer.concat(seen);
    assert.ok(all.includes('echo') === false && all.includes(marker) === false, 'neither the method nor the argument crosses the bus in clear');
    s.close();
  });

  test('a replayed frame is refused', async () => {
    const { s, subject, frames, main } = await sniff();
    const attacker = await conn();
    attacker.publish(subject, frames.at(-1)!); // a valid sealed frame, stale sequence number
    await eventually('the session to close', () => s.isClosed, 3000);
    assert.equal(main.calls, 1);
  });

  test('a peer that vanishes without a word is noticed within the session time-out', async () => {
    const nc = await conn();
    const s = await session(nc);
    await s.remote.echo('x');
    const serverSide = mains.at(-1)!;
    assert.ok(serverSide);
    const closedAt = Date.now();
    // Drop the client's NATS connection abruptly: no close frame is ever sent.
    (nc as unknown as { protocol: { transport: { close(): void } } }).protocol.transport.close();
    await eventually('the server to release the dead peer’s session', () => serverSide.disposed, 3000);
    assert.ok(Date.now() - closedAt < 3000);
    await eventually('the client side to give up too', () => s.isClosed, 3000);
  });

  test('two servers in one queue group share sessions; each session stays on its instance', async () => {
    const second = await conn();
    const l = await serveNats(second, 'svc', {
      keyring: Keyring.forRole(secret, 'supervisor'),
      name: 'sup2',
      accept: ['sandbox'],
      mainFor: () => new Main('second'),
      ...timing,
    });
    const ids = new Set<string>();
    const sessions: MeshSession<Main>[] = [];
    for (let i = 0; i < 20; i++) {
      const s = await session();
      sessions.push(s);
      const id = await s.remote.who();
      ids.add(id);
      assert.equal(await s.remote.who(), id, 'a session stays where it landed');
    }
    assert.deepEqual([...ids].sort(), ['first', 'second']);
    for (const s of sessions) s.close();
    await l.close();
  });

  test('before the handshake a message over the handshake size closes the channel, even in small parts', async () => {
    let closedWith: (e: Error) => void;
    const closed = new Promise<Error>((r) => (closedWith = r));
    const l = await listenNats(serverNc, 'raw', 512 * 1024, (channel) => channel.onClose(closedWith));
    try {
      const attacker = await conn();
      const sid = randomBytes(16).toString('base64url');
      await attacker.request('cordon.connect.raw', JSON.stringify({ sid }), { timeout: 2000 });
      // Two parts of 900 bytes: each under any per-frame limit, a 1,800-byte message in all.
      const total = 1800;
      for (let part = 0; part < 2; part++) {
        const frame = Buffer.alloc(45 + 900, 0x41);
        frame[0] = 0x44;
        frame.writeUInt32BE(part, 1);
        frame.writeUInt16BE(part, 5);
        frame.writeUInt16BE(2, 7);
        frame.writeUInt32BE(total, 9);
        attacker.publish(`cordon.s.${sid}.c2s`, frame);
      }
      const reason = await Promise.race([closed, new Promise<Error>((r) => setTimeout(() => r(new Error('still open after 5 s')), 5000))]);
      assert.match(reason.message, /before the handshake completed/);
      assert.ok(total > MAX_HANDSHAKE_MESSAGE);
    } finally {
      await l.close();
    }
  });

  test("a close frame carries the closer's reason, one line of at most MAX_CLOSE_REASON bytes, to the peer", async () => {
    const key = randomBytes(32);
    const keyed = (c: NatsChannel) => (c.useSessionKey(key), c.authenticated(), c);
    const accepted: NatsChannel[] = [];
    const l = await listenNats(serverNc, 'closer', 4096, (c) => void accepted.push(keyed(c as NatsChannel)), timing);
    try {
      const open = async () => {
        const client = keyed(await connectNats(await conn(), 'closer', 4096, timing));
        await eventually('the server side', () => accepted.length > 0);
        return { client, server: accepted.pop()! };
      };
      const short = await open();
      short.server.close(new Error('token t1 was revoked'));
      await assert.rejects(short.client.receive(), /^ChannelClosedError: peer closed session \S+: token t1 was revoked$/);
      // A long reason with line breaks, ending in multi-byte characters: cut on a character boundary.
      const long = await open();
      long.server.close(new Error(`line one\nline two ${'é'.repeat(400)}`));
      const reason = await long.client.receive().then(
        () => assert.fail('still open'),
        (e: Error) => e.message.replace(/^peer closed session \S+: /, ''),
      );
      assert.match(reason, /^line one line two é+$/);
      assert.ok(Buffer.byteLength(reason) <= MAX_CLOSE_REASON, `${Buffer.byteLength(reason)} bytes`);
    } finally {
      await l.close();
    }
  });

  test('connecting to a service nobody serves fails clearly', async () => {
    const nc = await conn();
    await assert.rejects(
      connectNatsSession(nc, 'nobody', { keyring: Keyring.forRole(secret, 'sandbox', 'x'), name: 'x', expect: 'supervisor', connectTimeoutMs: 500 }),
      /no nobody is listening on NATS|did not answer/,
    );
  });
});
