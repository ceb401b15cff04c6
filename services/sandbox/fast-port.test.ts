/**
 * The sandbox's end of the fast path keeps the capnweb path's bounds: a fast request counts against
 * the session's quota of calls in flight (shared with capnweb's), and runs in the caller's trace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, ROOT_CONTEXT, trace, type SpanContext } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { connectUnix, listenUnix, type UnixListener } from '../../lib/rpc/unix.ts';
import { MeshSession } from '../../lib/rpc/index.ts';
import type { Channel } from '../../lib/rpc/channel.ts';
import { createLogger } from '../../lib/log.ts';
import { FastLink } from '../ingress/fast-link.ts';
import { serveFastPath } from './fast-port.ts';
import type { SandboxPort } from './port.ts';
import type { WireResponse } from '../../schemas/http.ts';

const target = { workerId: 't/w', version: 'a'.repeat(64), codeKey: 'k'.repeat(43) };
const wire = { method: 'GET', url: 'http://x.test/', headers: [] as [string, string][], body: null };
const ok: WireResponse = { status: 200, statusText: '', headers: [], body: new TextEncoder().encode('ok') };

/** Waits for `cond`, at most 5 s (in 5 ms steps). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

let dir: string;
let listener: UnixListener;
let link: FastLink;
let ingress: MeshSession<any>;
const held: (() => void)[] = [];
const seen: (SpanContext | undefined)[] = [];

before(async () => {
  // As the services do (lib/telemetry.ts): without a context manager no context crosses an await.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  dir = mkdtempSync(join(tmpdir(), 'cordon-fast-'));
  let accept!: (c: Channel) => void;
  const accepted = new Promise<Channel>((r) => (accept = r));
  listener = await listenUnix(join(dir, 's.sock'), 1 << 20, accept);
  const client = await connectUnix(join(dir, 's.sock'), 1 << 20);
  const server = await accepted;
  client.authenticated();
  server.authenticated();
  // A port whose answers the test releases: calls stay in flight until then.
  const port = {
    handle: () => {
      seen.push(trace.getSpanContext(context.active()));
      return new Promise<WireResponse>((resolve) => held.push(() => resolve(ok)));
    },
  } as unknown as SandboxPort;
  const sandbox = new MeshSession(server, { role: 'ingress', name: 'ingress' }, undefined, { maxCallsInFlight: 2 });
  serveFastPath(
    sandbox,
    port,
    createLogger('test', {}, () => {}),
  );
  ingress = new MeshSession(client, { role: 'sandbox', name: 'standard' }, undefined);
  link = FastLink.of(ingress)!;
});

after(async () => {
  ingress?.close();
  await listener?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('calls over the quota in flight are refused, and admitted again once others end', async () => {
  const first = link.call(target, wire);
  const second = link.call(target, wire);
  await until(() => held.length === 2, 'two calls to reach the port');
  const refused = await Promise.race([
    link.call(target, wire).then(
      () => 'answered',
      (e: Error) => e.message,
    ),
    new Promise((r) => setTimeout(() => r('no answer'), 5000)),
  ]);
  assert.match(String(refused), /exceeded 2 calls in flight/);
  assert.equal(held.length, 2);
  held.shift()!();
  assert.equal((await first).status, 200);
  const third = link.call(target, wire);
  await until(() => held.length === 2, 'the third call to reach the port');
  for (const release of held.splice(0)) release();
  assert.equal((await second).status, 200);
  assert.equal((await third).status, 200);
});

test("a fast request runs in its caller's trace", async () => {
  const caller = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
  seen.length = 0;
  const answer = context.with(trace.setSpanContext(ROOT_CONTEXT, caller), () => link.call(target, wire));
  await until(() => held.length > 0, 'the call to reach the port');
  held.shift()!();
  await answer;
  assert.equal(seen[0]?.traceId, caller.traceId);
  assert.equal(seen[0]?.spanId, caller.spanId);
});
