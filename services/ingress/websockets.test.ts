/**
 * The browser's end ingress hands a worker with an upgrade, on its own (a local server, a `ws` client): what
 * a Durable Object's socket is sent in one call (`sendMany`) reaches the client in order; a call past the
 * bounds — more than 1,024 messages, more than 4 MiB, a message over 1 MiB or of another kind — is refused
 * whole before anything goes out, and the socket stays usable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RpcStub, RpcTarget } from 'capnweb';
import { webSocketUpgrades } from './websockets.ts';
import { createLogger } from '../../lib/log.ts';
import { WsClient } from '../../test/helpers/ws-client.ts';
import type { BrowserSocket, WireRequest, WireResponse } from '../../schemas/http.ts';

class WorkerEnd extends RpcTarget {
  async message() {}
  async close() {}
}

test('sendMany: in order in one call; refused whole past its bounds, and the socket goes on', async () => {
  let browser: BrowserSocket | undefined;
  const upgrade = webSocketUpgrades({
    route: () => ({
      wire: { method: 'GET', url: 'http://example.test/ws', headers: [], body: null } as WireRequest,
      handle: async (wire) => {
        browser = wire.socket;
        return { status: 101, statusText: '', headers: [], body: null, webSocket: new RpcStub(new WorkerEnd()) } as unknown as WireResponse;
      },
    }),
    log: createLogger('test', {}, () => {}),
    maxSockets: 10,
  });
  const server = createServer();
  server.on('upgrade', upgrade);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new WsClient(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`);
  try {
    await client.opened;
    await browser!.sendMany(['a', new Uint8Array([1, 2]), 'c']);
    assert.equal(await client.next(), 'a');
    assert.deepEqual([...(await client.next())], [1, 2]);
    assert.equal(await client.next(), 'c');
    const mib = 'x'.repeat(1024 * 1024);
    const refusals: [unknown, RegExp][] = [
      [[], /a list of 1 to 1024/],
      [Array.from({ length: 1025 }, () => 'm'), /a list of 1 to 1024/],
      ['not a list', /a list of 1 to 1024/],
      [['ok', `${mib}x`], /at most 1048576 bytes/],
      [['ok', 42], /text or bytes/],
      [[mib, mib, mib, mib, 'x'], /at most 4194304 bytes/],
    ];
    for (const [messages, reason] of refusals) assert.throws(() => browser!.sendMany(messages as never), reason);
    await browser!.sendMany(['after']);
    assert.equal(await client.next(), 'after', 'nothing of a refused call went out, and the socket goes on');
  } finally {
    client.ws.terminate();
    server.close();
  }
});
