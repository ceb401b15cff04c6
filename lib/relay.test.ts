import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_RELAYED, natsServers, openRelays, otlpDestination, relayInside, relayOutside, RELAY_ENV } from './relay.ts';

test('NATS URLs and OTLP endpoints are read as a relay needs them', () => {
  assert.deepEqual(natsServers('nats://a.example:4223,b.example, [::1]:5000'), [
    { host: 'a.example', port: 4223 },
    { host: 'b.example', port: 4222 },
    { host: '::1', port: 5000 },
  ]);
  assert.throws(() => natsServers('nats://user:pass@a.example:4222'), /must not carry credentials.*CORDON_NATS_USER/);
  assert.throws(() => natsServers('http://a.example'), /not a nats:\/\/ or tls:\/\/ address/);
  assert.deepEqual(otlpDestination({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), { host: 'collector', port: 4318 });
  assert.deepEqual(otlpDestination({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c/v1/traces' }), { host: 'c', port: 80 });
  assert.equal(otlpDestination({ OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4318' }), undefined, 'TLS would check the name against 127.0.0.1');
  assert.equal(otlpDestination({}), undefined);
});

test('bytes go both ways through both ends; an unreachable destination closes the connection; the sandbox env is rewritten', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-relay-'));
  const upstream = createServer((s) => s.on('data', (d) => s.write(`echo:${d}`)));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as { port: number }).port;
  const outside = await relayOutside(join(dir, 'ok.sock'), [
    { host: '127.0.0.1', port: 1 },
    { host: '127.0.0.1', port },
  ]);
  const dead = await relayOutside(join(dir, 'dead.sock'), [{ host: '127.0.0.1', port: 1 }]);
  try {
    const inside = await relayInside(join(dir, 'ok.sock'));
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(inside, '127.0.0.1', () => s.write('ping'));
      s.on('data', (d) => (resolve(String(d)), s.destroy())).on('error', reject);
    });
    assert.equal(reply, 'echo:ping', 'the first destination refused; the second answered');
    const deadInside = await relayInside(join(dir, 'dead.sock'));
    const ended = await new Promise<string>((resolve) => {
      const s = connect(deadInside, '127.0.0.1');
      s.on('close', () => resolve('closed')).on('error', () => {});
    });
    assert.equal(ended, 'closed');
    const env: NodeJS.ProcessEnv = {
      [RELAY_ENV.nats]: join(dir, 'ok.sock'),
      [RELAY_ENV.otlp]: join(dir, 'ok.sock'),
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
    };
    const opened = await openRelays(env);
    assert.match(opened.natsUrl!, /^nats:\/\/127\.0\.0\.1:\d+$/);
    assert.match(env.OTEL_EXPORTER_OTLP_ENDPOINT!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(opened.tcp, true);
    assert.deepEqual(await openRelays({}), { natsUrl: undefined, tcp: false });
  } finally {
    outside.close();
    dead.close();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a relay carries at most MAX_RELAYED connections at once; beyond, new ones are closed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-relay-'));
  const upstream = createServer(() => {});
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const relay = await relayOutside(join(dir, 'r.sock'), [{ host: '127.0.0.1', port: (upstream.address() as { port: number }).port }]);
  const sockets = Array.from({ length: MAX_RELAYED + 8 }, () => connect(join(dir, 'r.sock')).on('error', () => {}));
  try {
    const closed = await new Promise<number>((resolve) => {
      let n = 0;
      for (const s of sockets) s.on('close', () => ++n);
      setTimeout(() => resolve(n), 500);
    });
    assert.equal(closed, 8);
  } finally {
    for (const s of sockets) s.destroy();
    relay.close();
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
