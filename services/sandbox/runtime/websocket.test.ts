/** WebSocketPairs on the isolate host, with a stand-in for the browser's end: early messages, bounds, misuse. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString, getHeapStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WorkerRuntime, type SocketPeer } from './index.ts';
import { GET, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime({ spares: 0 });
after(() => rt.dispose());
const log = { log: () => {} };

function peer(): SocketPeer & { got: (string | ArrayBuffer)[]; closed: [number, string][] } {
  const got: (string | ArrayBuffer)[] = [];
  const closed: [number, string][] = [];
  return { got, closed, send: (d) => void got.push(d), close: (code, reason) => void closed.push([code, reason]) };
}

const source = `
  let kept;
  export default { fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === '/hoard') {
      const big = 'x'.repeat(512 * 1024);
      for (let i = 0; i < 100; i++) { const [, server] = Object.values(new WebSocketPair()); server.accept(); server.send(big); server.send(big); }
      return new Response('hoarded');
    }
    if (path === '/twice') {
      kept ??= Object.values(new WebSocketPair());
      return new Response(null, { status: 101, webSocket: kept[0] });
    }
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.addEventListener('message', (e) => server.send('echo: ' + e.data));
    server.send('early 1'); server.send('early 2');
    return new Response(null, { status: 101, webSocket: client });
  } }`;
const echo = worker(source, { limits: { cpuMs: 5000 } });
const at = (path: string) => ({ ...GET, url: `http://example.test${path}` });

test('what the worker sends before its 101 arrives first, in order; messages then go both ways', async () => {
  const p = peer();
  const res = await rt.handle(echo, at('/ws'), log, undefined, p);
  assert.equal(res.status, 101);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(p.got, ['early 1', 'early 2']);
  await res.webSocket!.message('hi');
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(p.got.slice(2), ['echo: hi']);
  await res.webSocket!.close(1000, 'bye');
});

test('pairs never returned cannot park memory in the host: early messages are bounded per socket and per isolate', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  const before = getHeapStatistics().used_heap_size;
  for (let i = 0; i < 3; i++) assert.equal((await rt.handle(echo, at('/hoard'), log)).status, 200);
  await new Promise((r) => setTimeout(r, 50));
  gc();
  const kept = (getHeapStatistics().used_heap_size - before) / 1024 / 1024;
  assert.ok(kept < 24, `the host kept ${kept.toFixed(0)} MiB of 300 MiB sent on pairs never returned`);
});

test('the same client end in two 101s is refused; a 101 to a plain request is refused', async () => {
  const echo = worker(source); // an isolate of its own
  const first = await rt.handle(echo, at('/twice'), log, undefined, peer());
  assert.equal(first.status, 101);
  await assert.rejects(rt.handle(echo, at('/twice'), log, undefined, peer()), /invalid response/);
  await assert.rejects(rt.handle(echo, at('/ws'), log), /invalid response/);
});
