/**
 * WebSockets on Durable Objects across rooms and tenants, through the real mesh. Two tenants deploy
 * examples/chat (same worker, same room names). A socket hears its own room only; an oversize message
 * closes that one socket and nothing else; a compromised sandbox process (its stolen keyring) that
 * holds the lease of some of its own tenant's rooms can reach no socket of another room, no socket of
 * another tenant, and none at all once its lease has lapsed — and from then on the room's events go to
 * its new holder only. The bystander's room talks on throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RpcTarget, type RpcStub } from 'capnweb';
import Database from 'better-sqlite3';
import { WebSocket } from 'ws';
import { ROOT, fetchHost, sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { WsClient } from '../helpers/ws-client.ts';
import { connectUnixSession, Keyring } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { encodeValue } from '../../services/sandbox/runtime/bootstrap/tagged-values.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';
import type { ObjectAddress, ObjectSocketsApi, ObjectStorageApi } from '../../schemas/durable-objects.ts';

/** examples/chat as tenant `tenant` deploys it: on host `<tenant>.test`. */
function chatProject(tenant: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-chat-'));
  cpSync(join(ROOT, 'examples/chat'), dir, { recursive: true });
  const file = join(dir, 'wrangler.jsonc');
  writeFileSync(file, readFileSync(file, 'utf8').replace('"*/room/*"', `"${tenant}.test/room/*"`));
  return dir;
}

function keyringOf(pid: number): Keyring {
  return Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))![1]!);
}

describe('attacks: WebSockets on Durable Objects', () => {
  let mesh: TestMesh;
  let wsUrl: string;
  const clients: WsClient[] = [];
  const join_ = async (tenant: string, room: string, name: string) => {
    const c = new WsClient(`${wsUrl}/room/${room}?name=${name}`, { headers: { host: `${tenant}.test` } });
    clients.push(c);
    await c.opened;
    await c.nextOf('history');
    return c;
  };
  const history = async (tenant: string, room: string) =>
    (await (await fetchHost(mesh, `${tenant}.test`, `/room/${room}/history`)).json()) as { text: string }[];
  /** The bystander: acme's lobby, two clients that hear each other. */
  let a1: WsClient;
  let a2: WsClient;
  const bystanderTalks = async (text: string) => {
    a1.ws.send(text);
    assert.equal((await a2.nextOf<{ text: string }>('message')).text, text);
    assert.equal((await a1.nextOf<{ text: string }>('message')).text, text);
  };

  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_LEASE_MS: '1000' });
    wsUrl = mesh.httpUrl.replace('http:', 'ws:');
    for (const [tenant, cordon] of [
      ['acme', 'standard'],
      ['evil', 'untrusted'],
    ] as const) {
      const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc', '--tenant', tenant, '--cordon', cordon], chatProject(tenant));
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('both tenants to serve', async () => {
      const a = await fetchHost(mesh, 'acme.test', '/room/warm');
      const e = await fetchHost(mesh, 'evil.test', '/room/warm');
      return (a.status === 200 && e.status === 200) || undefined;
    });
    a1 = await join_('acme', 'lobby', 'a1');
    a2 = await join_('acme', 'lobby', 'a2');
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await mesh?.stop();
  });

  test("a socket hears its own room only: not another room's, not another tenant's room of the same name", async () => {
    const e1 = await join_('evil', 'lobby', 'e1');
    const other = await join_('acme', 'kitchen', 'k1');
    await bystanderTalks('acme secret');
    e1.ws.send('/who');
    assert.deepEqual((await e1.nextOf<{ online: string[] }>('who')).online, ['e1'], "evil's lobby knows only its own socket");
    other.ws.send('/who');
    assert.deepEqual((await other.nextOf<{ online: string[] }>('who')).online, ['k1']);
    assert.deepEqual(await history('evil', 'lobby'), []);
    assert.deepEqual(await history('acme', 'kitchen'), []);
    assert.ok((await history('acme', 'lobby')).some((m) => m.text === 'acme secret'));
  });

  test('an oversize message closes that socket only (1009); its room and the bystander talk on', async () => {
    const big = await join_('evil', 'flood', 'big');
    const small = await join_('evil', 'flood', 'small');
    big.ws.send('x'.repeat(1024 * 1024 + 1));
    assert.equal((await big.closed).code, 1009);
    assert.equal((await small.nextOf<{ name: string }>('left')).name, 'big', 'the room heard the oversize socket leave');
    small.ws.send('still here');
    assert.equal((await small.nextOf<{ text: string }>('message')).text, 'still here');
    assert.ok(!(await history('evil', 'flood')).some((m) => m.text.length > 1000), 'nothing of the oversize message was stored');
    await bystanderTalks('acme unharmed');
  });

  test("a compromised sandbox reaches no other room's socket, no other tenant's, and none once its lease lapsed", async () => {
    const codeKey = (() => {
      const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
      try {
        return (db.prepare('SELECT code_key AS codeKey FROM workers WHERE id = ?').get('evil/chat') as { codeKey: string }).codeKey;
      } finally {
        db.close();
      }
    })();
    const stolen = keyringOf(await waitFor('the untrusted sandbox', () => sandboxNodes(mesh).get('untrusted')));
    const session = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolen,
      name: 'untrusted',
      expect: 'supervisor',
    });
    // A host that keeps the sockets capability of every object it is handed, and can stop answering its lease check.
    const held: { address: ObjectAddress; sockets: RpcStub<ObjectSocketsApi> }[] = [];
    let silent = false;
    class GreedyHost extends RpcTarget {
      async call(address: ObjectAddress, storage: RpcStub<ObjectStorageApi>) {
        held.push({ address, sockets: storage.dup().sockets() as unknown as RpcStub<ObjectSocketsApi> });
        return `!${encodeValue(new Error('not served'))}`;
      }
      /** It says it still runs what it was handed, so it keeps those leases until it falls silent. */
      async ping() {
        if (silent) await new Promise(() => {});
        return held.map((h) => `evil/chat:${h.address.className}:${h.address.id}`);
      }
      async drop() {}
    }
    try {
      await session.remote.registerObjectHost(new GreedyHost() as never);
      // New rooms of evil's go to the least loaded host of its cordon: this one gets some.
      for (let i = 0; i < 20 && new Set(held.map((h) => h.address.id)).size < 2; i++) await fetchHost(mesh, 'evil.test', `/room/grab-${i}/history`);
      const [x, y] = [...new Map(held.map((h) => [h.address.id, h])).values()];
      assert.ok(x && y, 'the compromised host was handed two of its own rooms');
      // Its own room's socket: it may make one. Another room's capability cannot touch it.
      const sid = await x.sockets.accept([], true);
      await x.sockets.send([[sid, 'own room: fine']]);
      const notHere = /no such WebSocket on this Durable Object/;
      await assert.rejects(async () => await y.sockets.send([[sid, 'cross-room']]), notHere);
      await assert.rejects(async () => await y.sockets.close(sid, 1000, ''), notHere);
      await assert.rejects(async () => await y.sockets.setAttachment(sid, null), notHere);
      // Made-up ids (the only way to name acme's sockets, which never leave acme's processes) fare no better.
      await assert.rejects(
        async () =>
          await x.sockets.send([
            [sid, 'own'],
            ['0'.repeat(32), 'guess'],
          ]),
        notHere,
      );
      // A batch of sends is bounded, and checked item by item as one send each is.
      await assert.rejects(async () => await x.sockets.send(Array.from({ length: 1025 }, () => [sid, 'x'] as [string, string])), /invalid messages/);
      await assert.rejects(async () => await x.sockets.send([[sid, 'x'.repeat(1024 * 1024 + 1)]]), /at most 1048576 bytes/);
      // Its worker's namespace will not join a made-up socket (or any of another worker's) to a browser.
      const caps = (await session.remote.capabilities(codeKey)) as Record<string, { attachSocket(sid: string, b: unknown): Promise<unknown> }>;
      class FakeBrowser extends RpcTarget {
        async send() {}
        async close() {}
      }
      await assert.rejects(async () => await caps.ROOMS!.attachSocket('f'.repeat(32), new FakeBrowser()), /no such WebSocket to attach/);
      // Its lease lapses (it stops answering the check): its capabilities are refused from then on.
      silent = true;
      await waitFor(
        'the lease to lapse',
        async () => {
          try {
            await x.sockets.list(null);
            return undefined;
          } catch (e) {
            return /lease has moved on/.test((e as Error).message) || undefined;
          }
        },
        10_000,
        200,
      );
      await assert.rejects(async () => await x.sockets.send([[sid, 'after the lease']]), /lease has moved on/);
      await assert.rejects(async () => await x.sockets.accept([], true), /lease has moved on/);
      // The room moves on to a live holder: a client joins and talks, and none of it reaches the lapsed one.
      const handed = held.length;
      const late = await join_('evil', x.address.name!, 'late');
      late.ws.send('after the move');
      assert.equal((await late.nextOf<{ text: string }>('message')).text, 'after the move');
      assert.equal(held.length, handed, 'nothing more was delivered to the host whose lease lapsed');
    } finally {
      session.close();
    }
    // The bystander talks on, both sockets open; the refusals are audited.
    await bystanderTalks('acme still unharmed');
    assert.equal(a1.ws.readyState, WebSocket.OPEN);
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
    assert.match(audit, /capability\.objects\.attachSocket\tevil\/chat\tdenied/);
    assert.match(audit, /\tobject\tcapability\.objects\.sockets\.send\tevil\/chat\tdenied\t.*no such WebSocket on this Durable Object/);
    assert.match(audit, /\tobject\tcapability\.objects\.sockets\.send\tevil\/chat\tdenied\t.*lease has moved on/);
  });
});
