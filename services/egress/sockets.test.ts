import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { openSocket, SocketCounts, type SocketDeps } from './sockets.ts';
import { EMPTY_POLICY, systemResolver } from './policy.ts';

async function echoServer(): Promise<{ port: number; close(): void }> {
  const s = createServer((c) => c.on('data', (d) => c.write(d)).on('error', () => {}));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { port: (s.address() as { port: number }).port, close: () => s.close() };
}

const OFF = { secureTransport: 'off' as const, allowHalfOpen: false };

test('a socket to a tcp:// origin: bytes both ways, counted, and its slot given back when it closes', async () => {
  const echo = await echoServer();
  const closed: [string, number, number][] = [];
  const deps: SocketDeps = {
    resolver: systemResolver(),
    timeoutMs: 5000,
    maxSockets: 1,
    ownPorts: [],
    closed: (_w, destination, bytesIn, bytesOut) => closed.push([destination, bytesIn, bytesOut]),
  };
  const counts = new SocketCounts();
  const policy = { ...EMPTY_POLICY, origins: [`tcp://127.0.0.1:${echo.port}`] };
  try {
    const s = await openSocket({ hostname: '127.0.0.1', port: echo.port }, OFF, policy, 't/w', counts, deps);
    assert.equal(s.remoteAddress, `127.0.0.1:${echo.port}`);
    await assert.rejects(
      openSocket({ hostname: '127.0.0.1', port: echo.port }, OFF, policy, 't/w', counts, deps),
      /too many open sockets: a worker may have 1 at once/,
    );
    await s.socket.write(new TextEncoder().encode('ping'));
    const { value } = await s.stream.getReader().read();
    assert.equal(new TextDecoder().decode(value), 'ping');
    await assert.rejects(s.socket.startTls(null), /must be set to 'starttls'/);
    await s.socket.close();
    for (let i = 0; i < 100 && !closed.length; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(closed, [[`127.0.0.1:${echo.port}`, 4, 4]]);
    const again = await openSocket({ hostname: '127.0.0.1', port: echo.port }, OFF, policy, 't/w', counts, deps);
    await again.socket.close();
  } finally {
    echo.close();
  }
});

test('port 25, the platform’s own ports on any loopback address, and an http:// origin are refused before any connection', async () => {
  const echo = await echoServer();
  const deps: SocketDeps = { resolver: systemResolver(), timeoutMs: 5000, maxSockets: 8, ownPorts: [echo.port], closed: () => {} };
  const counts = new SocketCounts();
  try {
    const own = { ...EMPTY_POLICY, origins: [`tcp://127.0.0.2:${echo.port}`] };
    await assert.rejects(
      openSocket({ hostname: '127.0.0.2', port: echo.port }, OFF, own, 't/w', counts, deps),
      /127\.0\.0\.2:\d+ is this platform's own listener/,
    );
    await assert.rejects(openSocket({ hostname: '192.0.2.1', port: 25 }, OFF, EMPTY_POLICY, 't/w', counts, deps), /port 25 is not allowed/);
    const http = { ...EMPTY_POLICY, origins: [`http://127.0.0.1:${echo.port}`] };
    await assert.rejects(openSocket({ hostname: '127.0.0.1', port: echo.port }, OFF, http, 't/w', counts, deps), /127\.0\.0\.1 is Loopback/);
    assert.ok(counts.take('t/w', 1), 'no refusal took a slot');
  } finally {
    echo.close();
  }
});
