/** WebSocket upgrades through the real mesh: a `ws` client ↔ ingress ↔ sandbox ↔ a WebSocketPair in the isolate. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

/** A socket whose messages are read one at a time, in order. */
class Client {
  readonly ws: WebSocket;
  readonly #inbox: (string | Buffer)[] = [];
  #wake: (() => void) | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  constructor(url: string, protocols: string[] = [], options: ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, options);
    this.ws.on('message', (data: RawData, isBinary) => {
      this.#inbox.push(isBinary ? (data as Buffer) : String(data));
      this.#wake?.();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, res })));
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }
  async next(): Promise<string | Buffer> {
    while (!this.#inbox.length) await new Promise<void>((r) => (this.#wake = r));
    return this.#inbox.shift()!;
  }
}

/** What an upgrade the worker refuses gets back: the status and the body. */
async function refused(url: string): Promise<{ status: number; body: string }> {
  const c = new Client(url);
  const e = (await c.opened.then(
    () => assert.fail('the upgrade should be refused'),
    (err: unknown) => err,
  )) as { status: number; res: NodeJS.ReadableStream };
  let body = '';
  for await (const chunk of e.res) body += chunk;
  return { status: e.status, body };
}

describe('WebSockets', () => {
  let mesh: TestMesh;
  let wsUrl: string;
  let dir: string;
  before(async () => {
    mesh = await startTestMesh({ CORDON_MAX_WEBSOCKETS: '50' });
    wsUrl = mesh.httpUrl.replace('http:', 'ws:');
    dir = mkdtempSync(join(tmpdir(), 'cordon-ws-'));
    // Workers that get the 101 wrong, in the ways a tenant can.
    writeFileSync(
      join(dir, 'bad.js'),
      `export default { fetch(request) {
      const path = new URL(request.url).pathname;
      if (path.endsWith('/no-socket')) return new Response(null, { status: 101 });
      if (path.endsWith('/hoard')) {
        // Pairs never returned, accepted and stuffed: the host must not keep what they send.
        const big = 'x'.repeat(300 * 1024);
        for (let i = 0; i < 100; i++) { const [, server] = Object.values(new WebSocketPair()); server.accept(); for (let k = 0; k < 2; k++) server.send(big); }
        return new Response('hoarded');
      }
      const [client] = Object.values(new WebSocketPair());
      if (path.endsWith('/server-end')) { const [, server] = Object.values(new WebSocketPair()); return new Response(null, { status: 101, webSocket: server }); }
      return new Response(null, { status: 101, webSocket: client });
    } };`,
    );
    for (const args of [
      ['examples/websocket/index.ts', '--name', 'ws', '--route', '*/ws*'],
      [join(dir, 'bad.js'), '--name', 'bad', '--route', '*/bad/*'],
      ['examples/hello/index.ts', '--name', 'hello', '--route', '*/hello'],
    ]) {
      const r = await mesh.cli(['deploy', ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('the ws worker', async () => (await fetch(`${mesh.httpUrl}/ws`)).status === 426 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('messages both ways: a greeting sent before the 101, text and bytes echoed, a timer, the subprotocol', async () => {
    const c = new Client(`${wsUrl}/ws`, ['other', 'chat']);
    await c.opened;
    assert.equal(c.ws.protocol, 'chat', 'the subprotocol the worker chose');
    assert.equal(await c.next(), 'hello');
    c.ws.send('hi there');
    assert.equal(await c.next(), 'echo: hi there');
    c.ws.send(Buffer.from([1, 2, 3, 250]));
    assert.deepEqual([...((await c.next()) as Buffer)], [1, 2, 3, 250]);
    c.ws.send('bytes:100000');
    const bytes = (await c.next()) as Buffer;
    assert.equal(bytes.length, 100000);
    assert.ok(bytes.every((b) => b === 7));
    c.ws.send('later');
    assert.equal(await c.next(), 'from a timer', 'timers run while the socket is open');
    c.ws.close(1000);
    await c.closed;
  });

  test('over TLS too (wss)', async () => {
    const c = new Client(`wss://127.0.0.1:${mesh.env.CORDON_HTTPS_PORT}/ws`, [], { rejectUnauthorized: false, headers: { host: 'localhost' } });
    await c.opened;
    assert.equal(await c.next(), 'hello');
    c.ws.send('secure');
    assert.equal(await c.next(), 'echo: secure');
    c.ws.close();
    await c.closed;
  });

  test('the worker closes with its code and reason; a client close reaches the worker as a close event', async () => {
    const a = new Client(`${wsUrl}/ws`);
    await a.opened;
    a.ws.send('close');
    assert.deepEqual(await a.closed, { code: 4000, reason: 'bye' });
    const b = new Client(`${wsUrl}/ws`);
    await b.opened;
    b.ws.close(4001, 'client leaves');
    await b.closed;
    await waitFor('the close event in the worker log', async () =>
      /socket closed: 4001 client leaves/.test((await mesh.cli(['logs', 'ws'])).stdout) ? true : undefined,
    );
  });

  test('2,000 messages sent at once all come back, in order', async () => {
    const c = new Client(`${wsUrl}/ws`);
    await c.opened;
    await c.next();
    for (let i = 0; i < 2000; i++) c.ws.send(`m${i}`);
    for (let i = 0; i < 2000; i++) assert.equal(await c.next(), `echo: m${i}`);
    c.ws.close();
  });

  test('answers that are not an upgrade go back as plain HTTP; a 101 the worker got wrong is a 500', async () => {
    assert.deepEqual(await refused(`${wsUrl}/ws/plain`), { status: 403, body: 'no sockets here' });
    assert.equal((await refused(`${wsUrl}/hello`)).status, 200, 'a worker that ignores the upgrade answers as always');
    const unknown = await refused(`${wsUrl}/nowhere`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.body, /No worker is routed/);
    const noSocket = await refused(`${wsUrl}/bad/no-socket`);
    assert.equal(noSocket.status, 500);
    assert.match(noSocket.body, /worker threw an exception/);
    assert.equal((await refused(`${wsUrl}/bad/server-end`)).status, 500, 'the server end is not what a 101 carries');
    const plainGet = await fetch(`${mesh.httpUrl}/bad/client`);
    assert.equal(plainGet.status, 500, 'a 101 to a request that was not an upgrade');
    assert.match(await plainGet.text(), /invalid response/);
    await waitFor('the reasons in the worker log', async () => {
      const { stdout } = await mesh.cli(['logs', 'bad']);
      return /101 only with a webSocket/.test(stdout) && /not a WebSocket upgrade/.test(stdout) && /needs webSocket: the client end/.test(stdout)
        ? true
        : undefined;
    });
  });

  test('a worker hoarding pairs it never returns does not hurt the sandbox or its neighbours (the bounds: runtime/websocket.test.ts)', async () => {
    for (let i = 0; i < 5; i++) assert.equal(await (await fetch(`${mesh.httpUrl}/bad/hoard`)).text(), 'hoarded');
    const c = new Client(`${wsUrl}/ws`);
    await c.opened;
    assert.equal(await c.next(), 'hello', 'and sockets still work');
    c.ws.close();
  });

  test('a malformed handshake is refused before any worker runs', async () => {
    const port = Number(new URL(mesh.httpUrl).port);
    for (const [headers, expect] of [
      ['Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n', /Sec-WebSocket-Key/],
      ['Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n', /Version must be 13/],
      ['Upgrade: h2c\r\nConnection: Upgrade\r\n', /only WebSocket upgrades/],
    ] as const) {
      const raw = await new Promise<string>((resolve, reject) => {
        let out = '';
        const s = connect(port, '127.0.0.1', () => s.write(`GET /ws HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`));
        s.on('data', (d) => (out += d))
          .on('end', () => resolve(out))
          .on('error', reject);
      });
      assert.match(raw, /^HTTP\/1\.1 400 /);
      assert.match(raw, expect);
    }
  });

  test('limits: an oversized message closes with 1009; the worker cannot send one either', async () => {
    const c = new Client(`${wsUrl}/ws`);
    await c.opened;
    await c.next();
    c.ws.send('huge');
    assert.match(String(await c.next()), /refused: a WebSocket message is at most 1048576 bytes/);
    c.ws.send(Buffer.alloc(1024 * 1024 + 1));
    assert.equal((await c.closed).code, 1009);
  });

  test('a client that stops reading is closed once 16 MiB wait for it; others are served meanwhile', async () => {
    const c = new Client(`${wsUrl}/ws`);
    await c.opened;
    await c.next();
    c.ws.pause();
    c.ws.send('flood:96');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200);
    c.ws.resume();
    let received = 0;
    c.ws.on('message', (d: Buffer) => (received += d.length));
    const { code, reason } = await c.closed;
    assert.equal(code, 1011);
    assert.equal(reason, 'the client does not read fast enough');
    assert.ok(received < 64 * 1024 * 1024, `only what was in flight arrived (${received} bytes)`);
  });

  test('at most CORDON_MAX_WEBSOCKETS open at once: beyond, 503; closing one frees its place', async () => {
    const open: Client[] = [];
    for (let i = 0; i < 50; i++) open.push(new Client(`${wsUrl}/ws`));
    await Promise.all(open.map((c) => c.opened));
    const over = await refused(`${wsUrl}/ws`);
    assert.equal(over.status, 503);
    assert.match(over.body, /limit of 50 WebSockets/);
    open.pop()!.ws.close();
    await waitFor('a freed place', async () => {
      const c = new Client(`${wsUrl}/ws`);
      const ok = await c.opened.then(
        () => true,
        () => undefined,
      );
      if (ok) open.push(c);
      return ok;
    });
    for (const c of open) c.ws.close();
    await Promise.all(open.map((c) => c.closed));
  });

  test('a sandbox that dies closes its sockets with 1011, and a new socket works once it is back', async () => {
    const c = new Client(`${wsUrl}/ws`);
    await c.opened;
    await c.next();
    process.kill(mesh.servicePids().get('sandbox:standard')!, 'SIGKILL');
    assert.equal((await c.closed).code, 1011);
    const again = await waitFor('a socket on the restarted sandbox', async () => {
      const n = new Client(`${wsUrl}/ws`);
      return (
        (await n.opened.then(
          () => n,
          () => undefined,
        )) ?? undefined
      );
    });
    assert.equal(await again.next(), 'hello');
    again.ws.close();
  });
});
