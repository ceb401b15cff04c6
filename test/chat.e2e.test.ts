/**
 * examples/chat through the real mesh, deployed unchanged with the CLI: two WebSocket clients in a room
 * hear each other; the room, idle, is evicted (no live instance) while both sockets stay open; the next
 * message wakes a new instance with the same history, tags and attachments; "ping" is answered while
 * the room sleeps, without waking it; a room is one Durable Object per name.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { WebSocket } from 'ws';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';

describe('examples/chat: WebSockets on Durable Objects with hibernation', () => {
  let mesh: TestMesh;
  let wsUrl: string;
  const clients: WsClient[] = [];
  const join = async (room: string, name: string) => {
    const c = new WsClient(`${wsUrl}/room/${room}?name=${name}`);
    clients.push(c);
    await c.opened;
    return c;
  };
  /** The room's row in `cordon objects list chat`: live or idle, and its open sockets. */
  const roomState = async (room: string) => {
    const r = await mesh.cli(['objects', 'list', 'chat']);
    assert.equal(r.code, 0, r.stderr);
    const line = r.stdout.split('\n').find((l) => l.split('\t')[2] === room);
    return { live: line?.split('\t')[3] === 'live', sockets: Number(/\tsockets (\d+)/.exec(line ?? '')?.[1] ?? 0) };
  };

  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_IDLE_SECONDS: '1', CORDON_OBJECT_LEASE_MS: '900' });
    wsUrl = mesh.httpUrl.replace('http:', 'ws:');
    const r = await mesh.cli(['deploy', '--config', 'examples/chat/wrangler.jsonc']);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the chat to serve', async () => (await fetch(`${mesh.httpUrl}/room/warm`)).status === 200 || undefined);
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await mesh?.stop();
  });

  test('the page, and broadcast between two clients of a room', async () => {
    const pageText = await (await fetch(`${mesh.httpUrl}/room/lobby`)).text();
    assert.match(pageText, /<h1>#lobby<\/h1>/);
    const ann = await join('lobby', 'ann');
    assert.deepEqual(await ann.nextOf('history'), { type: 'history', messages: [] });
    const bob = await join('lobby', 'bob');
    assert.deepEqual((await bob.nextOf<{ messages: unknown[] }>('history')).messages, []);
    assert.equal((await ann.nextOf<{ name: string }>('joined')).name, 'bob');
    ann.ws.send('hello bob');
    for (const c of [ann, bob]) assert.deepEqual(await c.nextOf('message').then(({ name, text }) => ({ name, text })), { name: 'ann', text: 'hello bob' });
  });

  test('an idle room holds no instance while its sockets stay open; the next message wakes it with its history and attachments', async () => {
    const ann = await join('hall', 'ann');
    await ann.nextOf('history');
    const bob = await join('hall', 'bob');
    await bob.nextOf('history');
    ann.ws.send('/who');
    const before = await ann.nextOf<{ online: string[]; instance: string }>('who');
    assert.deepEqual(before.online.sort(), ['ann', 'bob']);
    ann.ws.send('first');
    assert.equal((await bob.nextOf<{ text: string }>('message')).text, 'first');
    await ann.nextOf('message');

    const idle = await waitFor('the room to be evicted', async () => {
      const s = await roomState('hall');
      return (!s.live && s) || undefined;
    });
    assert.equal(idle.sockets, 2, 'both sockets are still held');
    assert.equal(ann.ws.readyState, WebSocket.OPEN);
    assert.equal(bob.ws.readyState, WebSocket.OPEN);

    // The auto-response is answered by the supervisor: the room stays asleep.
    ann.ws.send('ping');
    assert.equal(await ann.next(), 'pong');
    assert.equal((await roomState('hall')).live, false, 'ping did not wake the room');

    // A message wakes it: a new instance, the same sockets (tags, attachments), the same SQL.
    bob.ws.send('second');
    assert.equal((await ann.nextOf<{ name: string; text: string }>('message')).text, 'second');
    assert.equal((await bob.nextOf<{ name: string }>('message')).name, 'bob', 'the attachment survived: the sender is named');
    bob.ws.send('/who');
    const after = await bob.nextOf<{ online: string[]; instance: string }>('who');
    assert.notEqual(after.instance, before.instance, 'a new instance');
    assert.deepEqual(after.online.sort(), ['ann', 'bob']);
    const history = (await (await fetch(`${mesh.httpUrl}/room/hall/history`)).json()) as { name: string; text: string }[];
    assert.deepEqual(
      history.map((m) => `${m.name}: ${m.text}`),
      ['ann: first', 'bob: second'],
    );

    // A client leaves: the others hear it, the room's count drops.
    bob.ws.close(1000, 'bye');
    assert.deepEqual(await bob.closed, { code: 1000, reason: 'bye' });
    assert.equal((await ann.nextOf<{ name: string }>('left')).name, 'bob');
    await waitFor('one socket left', async () => (await roomState('hall')).sockets === 1 || undefined);
  });

  test('rooms are apart: a message in one room reaches no one in another', async () => {
    const a = await join('red', 'a');
    await a.nextOf('history');
    const b = await join('blue', 'b');
    await b.nextOf('history');
    a.ws.send('only red');
    assert.equal((await a.nextOf<{ text: string }>('message')).text, 'only red');
    b.ws.send('/who');
    assert.deepEqual((await b.nextOf<{ online: string[] }>('who')).online, ['b'], 'the blue room heard nothing and knows only b');
    const blue = (await (await fetch(`${mesh.httpUrl}/room/blue/history`)).json()) as unknown[];
    assert.deepEqual(blue, []);
  });

  test("a new version of the worker: the room's sockets stay open and its next event runs in the new version", async () => {
    const ann = await join('deploys', 'ann');
    await ann.nextOf('history');
    ann.ws.send('/who');
    const first = await ann.nextOf<{ instance: string }>('who');
    const dir = mkdtempSync(joinPath(tmpdir(), 'cordon-chat-v2-'));
    cpSync(joinPath(ROOT, 'examples/chat'), dir, { recursive: true });
    const source = joinPath(dir, 'index.ts');
    writeFileSync(source, readFileSync(source, 'utf8').replace('const HISTORY = 50;', 'const HISTORY = 51;'));
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], dir);
    assert.equal(r.code, 0, r.stderr);
    ann.ws.send('/who');
    const second = await ann.nextOf<{ instance: string; online: string[] }>('who');
    assert.notEqual(second.instance, first.instance, 'the object restarted in the new version');
    assert.deepEqual(second.online, ['ann']);
    assert.equal(ann.ws.readyState, WebSocket.OPEN);
  });

  test('a socket accepted plainly (server.accept()) keeps its object in memory while open, and gets its events as listeners', async () => {
    const dir = mkdtempSync(joinPath(tmpdir(), 'cordon-echo-do-'));
    writeFileSync(
      joinPath(dir, 'index.js'),
      `import { DurableObject } from 'cloudflare:workers';
      export class Echo extends DurableObject {
        instance = crypto.randomUUID();
        async fetch() {
          const [client, server] = Object.values(new WebSocketPair());
          server.accept();
          server.addEventListener('message', (e) => server.send(this.instance + ':' + e.data));
          return new Response(null, { status: 101, webSocket: client });
        }
      }
      export default { fetch: (request, env) => env.ECHO.getByName('e').fetch(request) };`,
    );
    writeFileSync(
      joinPath(dir, 'wrangler.jsonc'),
      JSON.stringify({
        name: 'echo-do',
        main: 'index.js',
        compatibility_date: '2026-11-01',
        routes: ['*/echo-do'],
        migrations: [{ tag: 'v1', new_sqlite_classes: ['Echo'] }],
        durable_objects: { bindings: [{ name: 'ECHO', class_name: 'Echo' }] },
      }),
    );
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], dir);
    assert.equal(r.code, 0, r.stderr);
    const c = await waitFor('the echo to serve', async () => {
      const client = new WsClient(`${wsUrl}/echo-do`);
      return client.opened.then(
        () => client,
        () => undefined,
      );
    });
    clients.push(c);
    c.ws.send('a');
    const [instance, echoed] = String(await c.next()).split(':');
    assert.equal(echoed, 'a');
    // Past its idle time (1 s) and a few lease checks: still the one live instance.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const listed = (await mesh.cli(['objects', 'list', 'echo-do'])).stdout;
    assert.match(listed, /\tlive\t/, listed);
    c.ws.send('b');
    assert.equal(await c.next(), `${instance}:b`);
    c.ws.close(1000);
    await c.closed;
    await waitFor('the object to be evicted once its socket closed', async () => {
      const out = (await mesh.cli(['objects', 'list', 'echo-do'])).stdout;
      return (out.includes('\tidle\t') && !out.includes('sockets')) || undefined;
    });
  });
});
