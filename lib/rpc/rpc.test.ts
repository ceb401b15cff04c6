/**
 * The RPC acceptance suite, written once and run over every transport (Unix sockets, NATS):
 * capabilities, callbacks, pipelining, three-party hand-off, frame limits, quotas, forged and
 * replayed references, handshake failures and trace context.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { Keyring, Membrane, type MeshSession } from './index.ts';
import type { Role } from './keys.ts';
import { clientHandshake, HANDSHAKE_VERSION } from './handshake.ts';
import { check } from './validate.ts';
import { MAX_HANDSHAKE_MESSAGE, type Channel } from './channel.ts';
import { FrameTooLargeError } from './frames.ts';
import { listenUnix } from './unix.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { transports, type TestEndpoint } from './testing/transports.ts';

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const secret = randomBytes(32);
const ring = (self: Role, cordon?: string, s = secret) => Keyring.forRole(s, self, cordon);

async function eventually(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

class Counter extends RpcTarget {
  n = 0;
  disposed = false;
  increments = 0;
  increment(by = 1): number {
    this.increments++;
    return (this.n += by);
  }
  traceId(): string | undefined {
    return trace.getSpanContext(context.active())?.traceId;
  }
  [Symbol.dispose](): void {
    this.disposed = true;
  }
}

/** The server's main: records every call so tests can prove nothing ran. */
class Main extends RpcTarget {
  calls: string[] = [];
  counters: Counter[] = [];
  hello(name: string): string {
    this.calls.push('hello');
    return `hello ${name}`;
  }
  makeCounter(): Counter {
    this.calls.push('makeCounter');
    const c = new Counter();
    this.counters.push(c);
    return c;
  }
  counterRecord(): { counter: Counter; n: number } {
    return { counter: this.makeCounter(), n: 1 };
  }
  /** A capability behind a membrane, as the supervisor grants them: the stand-in is never wrapped again. */
  grantedCounter(): Counter {
    return new Membrane().wrap(this.makeCounter());
  }
  /** The trace a callback handed to us as an argument runs in when we call it back. */
  async callbackTrace(cb: RpcStub<{ traceId(): string | undefined }>): Promise<string | undefined> {
    return await cb.traceId();
  }
  async callBack(cb: RpcStub<(x: number) => number>): Promise<number> {
    this.calls.push('callBack');
    return (await cb(20)) + 1;
  }
  echo(value: string): number {
    this.calls.push('echo');
    return value.length;
  }
  strictName(value: unknown): string {
    return check(z.string().max(64), value, 'name');
  }
  /** A result far larger than the argument that asked for it. */
  expand(n: number): string {
    this.calls.push('expand');
    return 'r'.repeat(n);
  }
  hang(): Promise<never> {
    this.calls.push('hang');
    return new Promise(() => {});
  }
  traceId(): string | undefined {
    return trace.getSpanContext(context.active())?.traceId;
  }
}

const requireAll = process.env.CORDON_REQUIRE_ALL === '1';

for (const t of transports) {
  if (t.unavailable && requireAll) {
    test(`${t.name} transport is required (CORDON_REQUIRE_ALL=1)`, () => assert.fail(t.unavailable));
    continue;
  }
  describe(`RPC over ${t.name}`, { skip: t.unavailable }, () => {
    let ep: TestEndpoint;
    let main: Main;
    let mainFor: (role: Role) => Main;
    let listener: { close(): Promise<void> };
    const sessions: MeshSession<any>[] = [];
    const mainsCreated: Role[] = [];

    before(async () => {
      ep = await t.setup();
      mainFor = (role) => {
        mainsCreated.push(role);
        return (main = new Main());
      };
      listener = await ep.serve({
        keyring: ring('supervisor'),
        name: 'sup',
        accept: ['sandbox'],
        timeoutMs: 500,
        quotas: { maxMessage: 64 * 1024, maxCallsInFlight: 5, maxExports: 12 },
        mainFor: (peer) => mainFor(peer.role),
      });
    });
    after(async () => {
      for (const s of sessions) s.close();
      await listener?.close();
      await ep?.teardown();
    });

    const client = async () => {
      const s = await ep.connect<Main>({ keyring: ring('sandbox', 'sb'), name: 'sb', expect: 'supervisor', quotas: { maxMessage: 1 << 20 } });
      sessions.push(s);
      return s;
    };

    test('a capability returned from a call is then called', async () => {
      const s = await client();
      using counter = await s.remote.makeCounter();
      assert.equal(await counter.increment(), 1);
      assert.equal(await counter.increment(5), 6);
    });

    test('a callback passed in is called back', async () => {
      const s = await client();
      assert.equal(await s.remote.callBack((x: number) => x * 2), 41);
    });

    test('a call pipelined on an unresolved result works', async () => {
      const s = await client();
      const counter = s.remote.makeCounter(); // not awaited
      assert.equal(await counter.increment(3), 3);
      counter[Symbol.dispose]();
    });

    test('a capability from A handed by B to C works, and its release reaches A', async () => {
      // A is the suite's server. B: a client of A that serves C on a second endpoint.
      const ep2 = await t.setup();
      const sAB = await client();
      const fromA = await sAB.remote.makeCounter();
      const counterAtA = main.counters.at(-1)!;
      let held: RpcStub<Counter> | undefined = fromA;
      class B extends RpcTarget {
        give(): RpcStub<Counter> {
          const c = held!;
          held = undefined; // moved to C
          return c;
        }
      }
      const l2 = await ep2.serve({ keyring: ring('sandbox', 'b'), name: 'b', accept: ['ingress'], mainFor: () => new B() });
      try {
        const sCB = await ep2.connect<B>({ keyring: ring('ingress'), name: 'c', expect: 'sandbox', expectName: 'b' });
        const atC = await sCB.remote.give();
        assert.equal(await atC.increment(7), 7);
        assert.equal(counterAtA.n, 7, 'the call reached A');
        assert.equal(counterAtA.disposed, false);
        atC[Symbol.dispose]();
        await eventually('the release to reach A', () => counterAtA.disposed);
        sCB.close();
      } finally {
        await l2.close();
        await ep2.teardown();
      }
    });

    test('an oversized message is refused and only that session ends', async () => {
      const s = await client();
      const other = await client();
      await assert.rejects(async () => s.remote.echo('x'.repeat(200_000)));
      await eventually('the oversized session to close', () => s.isClosed);
      assert.equal(await other.remote.hello('still here'), 'hello still here');
    });

    test('a call too large to send fails alone: the session it shares carries on', async () => {
      // Same limit as the server's, as in the mesh: the sender refuses what the reader would not take.
      const s = await ep.connect<Main>({ keyring: ring('sandbox', 'sb'), name: 'sb', expect: 'supervisor', quotas: { maxMessage: 64 * 1024 } });
      sessions.push(s);
      const before = main.calls.length;
      const pending = s.remote.hang(); // a call in flight on the same session is not disturbed
      await assert.rejects(async () => s.remote.echo('x'.repeat(200_000)), /RPC message is 0\.2 MiB; the limit for one message is 0\.1 MiB: it was not sent/);
      assert.equal(s.isClosed, false);
      assert.equal(await s.remote.hello('after'), 'hello after');
      assert.deepEqual(main.calls.slice(before), ['hang', 'hello'], 'the oversized call never ran');
      (pending as unknown as Disposable)[Symbol.dispose]();
    });

    test('a result too large to send fails that call alone', async () => {
      const s = await client();
      await assert.rejects(async () => s.remote.expand(100_000), /the result is 0\.1 MiB as an RPC message; the limit for one message is 0\.1 MiB/);
      assert.equal(s.isClosed, false);
      assert.equal(await s.remote.hello('after'), 'hello after');
    });

    if (t.name === 'unix') {
      test('before the handshake a frame over the handshake size closes the connection, though under the session limit', async () => {
        const dir = mkdtempSync(join(tmpdir(), 'cordon-prehandshake-'));
        let closedWith: (e: Error) => void;
        const closed = new Promise<Error>((r) => (closedWith = r));
        const listener = await listenUnix(join(dir, 's.sock'), 64 * 1024, (channel) => channel.onClose(closedWith));
        try {
          const sock = createConnection(join(dir, 's.sock'));
          sock.on('error', () => {});
          await new Promise<void>((r) => sock.once('connect', () => r()));
          const header = Buffer.alloc(4);
          header.writeUInt32BE(16 * 1024); // well under the 64 KiB limit of a session, far over a handshake message
          sock.write(header);
          const reason = await Promise.race([closed, new Promise<Error>((r) => setTimeout(() => r(new Error('still open after 5 s')), 5000))]);
          assert.ok(reason instanceof FrameTooLargeError, reason.message);
          assert.equal(reason.max, MAX_HANDSHAKE_MESSAGE);
          sock.destroy();
        } finally {
          await listener.close();
          rmSync(dir, { recursive: true, force: true });
        }
      });

      test('a frame header declaring 1 GiB closes the connection before anything is buffered', async () => {
        const channel = await ep.rawChannel();
        const closed = new Promise<Error>((r) => channel.onClose(r));
        // Write the raw header ourselves: 4 bytes that declare a 1 GiB frame, then a trickle of body.
        const path = (channel.description as string).replace(/^unix:/, '');
        const sock = createConnection(path);
        const gone = new Promise<void>((r) => sock.once('close', () => r()));
        await new Promise<void>((r) => sock.once('connect', () => r()));
        const header = Buffer.alloc(4);
        header.writeUInt32BE(1 << 30);
        sock.write(header);
        sock.write(Buffer.alloc(1024, 0x41));
        await gone;
        channel.close();
        await closed;
      });
    }

    test('a peer over its calls-in-flight quota is cut off; other sessions carry on', async () => {
      const greedy = await client();
      const other = await client();
      const calls = Array.from({ length: 20 }, () => Promise.resolve(greedy.remote.hang()).catch((e: Error) => e));
      await eventually('the greedy session to be cut off', () => greedy.isClosed);
      const results = await Promise.all(calls);
      assert.ok(results.every((r) => r instanceof Error));
      assert.equal(await other.remote.hello('ok'), 'hello ok');
    });

    test('a peer over its exported-objects quota is cut off; other sessions carry on', async () => {
      const hoarder = await client();
      const other = await client();
      const held: RpcStub<Counter>[] = [];
      try {
        for (let i = 0; i < 30; i++) held.push(await hoarder.remote.makeCounter());
      } catch {
        // cut off part-way: expected
      }
      await eventually('the hoarding session to be cut off', () => hoarder.isClosed);
      assert.ok(held.length <= 13, `held ${held.length} capabilities`);
      assert.equal(await other.remote.hello('ok'), 'hello ok');
    });

    /** An authenticated session spoken by hand, to send what a well-behaved capnweb never would. */
    async function rawSession(): Promise<Channel> {
      const channel = await ep.rawChannel();
      const { sessionKey } = await clientHandshake(channel, { keyring: ring('sandbox', 'raw'), name: 'raw', expect: 'supervisor' });
      (channel as Partial<{ useSessionKey(k: Buffer): void }>).useSessionKey?.(sessionKey);
      return channel;
    }

    test('a guessed capability reference is refused and the session aborted', async () => {
      const channel = await rawSession();
      const closed = new Promise<Error>((r) => channel.onClose(r));
      channel.send('["push",["pipeline",999,["hello"],["x"]]]');
      await closed;
      assert.ok(!main.calls.includes('hello'), 'nothing ran');
    });

    test('a released (replayed) capability reference is refused', async () => {
      const channel = await rawSession();
      const closed = new Promise<Error>((r) => channel.onClose(r));
      channel.send('["push",["pipeline",0,["makeCounter"],[]]]');
      channel.send('["pull",1]');
      const resolved = JSON.parse(await channel.receive()) as [string, number, [string, number]];
      assert.equal(resolved[0], 'resolve');
      const id = resolved[2][1];
      const counter = main.counters.at(-1)!;
      channel.send(`["push",["pipeline",${id},["increment"],[]]]`);
      await eventually('the first call', () => counter.increments === 1);
      channel.send(`["release",${id},1]`);
      channel.send(`["push",["pipeline",${id},["increment"],[]]]`);
      await closed;
      assert.equal(counter.increments, 1, 'the replayed call did not run');
    });

    test('a stub where a string is declared is refused by validation', async () => {
      const s = await client();
      await assert.rejects(async () => s.remote.strictName((() => 'x') as unknown as string), /invalid name/);
      await assert.rejects(async () => s.remote.strictName('y'.repeat(65)), /invalid name/);
      assert.equal(await s.remote.strictName('ok'), 'ok');
    });

    describe('a peer that fails the handshake gets nothing', () => {
      const attempts: [string, () => Promise<unknown>][] = [
        ['wrong key', () => ep.connect({ keyring: ring('sandbox', 'x', randomBytes(32)), name: 'x', expect: 'supervisor' })],
        ['a role the server does not accept', () => ep.connect({ keyring: ring('ingress'), name: 'x', expect: 'supervisor' })],
        ['a role that holds no key for the server', () => ep.connect({ keyring: ring('cli'), name: 'x', expect: 'supervisor' })],
        [
          'garbage instead of a hello',
          async () => {
            const ch = await ep.rawChannel();
            ch.send('{not json');
            await ch.receive();
            return ch.receive();
          },
        ],
        [
          'an oversize hello',
          async () => {
            const ch = await ep.rawChannel();
            ch.send(JSON.stringify({ v: HANDSHAKE_VERSION, role: 'sandbox', name: 'x', to: 'supervisor', nonce: 'A'.repeat(2000) }).slice(0, 4000));
            await ch.receive();
            return ch.receive();
          },
        ],
        [
          'silence',
          async () => {
            const ch = await ep.rawChannel();
            return ch.receive();
          },
        ],
        [
          'a replayed recording of a valid handshake',
          async () => {
            const recorded: string[] = [];
            const live = await ep.rawChannel();
            const recorder: Channel = Object.create(live, {
              send: { value: (m: string) => (recorded.push(m), live.send(m)) },
              authenticated: { value: () => live.authenticated() },
            });
            await clientHandshake(recorder, { keyring: ring('sandbox', 'rec'), name: 'rec', expect: 'supervisor' });
            live.close();
            const replay = await ep.rawChannel();
            replay.send(recorded[0]!);
            await replay.receive();
            replay.send(recorded[1]!);
            return replay.receive();
          },
        ],
      ];
      for (const [name, attempt] of attempts) {
        test(name, async () => {
          const before = mainsCreated.length;
          await assert.rejects(attempt);
          assert.equal(mainsCreated.length, before, 'no main capability was created');
        });
      }
    });

    test('the caller’s trace context reaches the callee', async () => {
      const s = await client();
      const traceId = randomBytes(16).toString('hex');
      const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: 1 });
      assert.equal(await context.with(ctx, () => s.remote.traceId()), traceId);
    });

    test('the caller’s trace context reaches a capability the callee returned, in a record or behind a membrane', async () => {
      const s = await client();
      using counter = await s.remote.makeCounter();
      using record = await s.remote.counterRecord();
      using granted = await s.remote.grantedCounter();
      for (const target of [counter, record.counter, granted]) {
        const traceId = randomBytes(16).toString('hex');
        const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: 1 });
        assert.equal(await context.with(ctx, () => target.traceId()), traceId);
      }
    });

    test('a callback handed over as an argument runs in the trace of the call that invoked it', async () => {
      const s = await client();
      const traceId = randomBytes(16).toString('hex');
      const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: 1 });
      const cb = new Main();
      assert.equal(await context.with(ctx, () => s.remote.callbackTrace(cb)), traceId);
    });

    test('a call without trace context does not inherit the previous call’s', async () => {
      const s = await client();
      const traceId = randomBytes(16).toString('hex');
      const ctx = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: randomBytes(8).toString('hex'), traceFlags: 1 });
      assert.equal(await context.with(ctx, () => s.remote.traceId()), traceId);
      const untraced = await context.with(ROOT_CONTEXT, () => s.remote.traceId());
      assert.ok(untraced === undefined || /^0+$/.test(untraced), `no trace: ${untraced}`);
    });
  });
}
