/** Ingress over TLS (development certificate, SNI) and against slow clients, with real TLS and TCP clients. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import selfsigned from 'selfsigned';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

function httpsGet(port: number, path: string, opts: { ca?: string; servername?: string }): Promise<{ status: number; body: string; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: opts.ca,
        servername: opts.servername,
        rejectUnauthorized: Boolean(opts.ca),
        headers: { host: opts.servername ?? 'localhost' },
      },
      (res) => {
        let body = '';
        const cert = (res.socket as unknown as { getPeerCertificate(): PeerCertificate }).getPeerCertificate();
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body, cert }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function peerCert(port: number, servername: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      resolve(s.getPeerCertificate());
      s.end();
    });
    s.on('error', reject);
  });
}

describe('ingress', () => {
  let mesh: TestMesh;
  let httpsPort: number;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-tls-'));
    for (const host of ['a.test', '_.wild.test']) {
      const pems = await selfsigned.generate([{ name: 'commonName', value: host.replace(/^_/, '*') }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
      writeFileSync(join(dir, `${host}.crt`), pems.cert);
      writeFileSync(join(dir, `${host}.key`), pems.private);
    }
    mesh = await startTestMesh({ CORDON_TLS_DIR: dir, CORDON_HEADERS_TIMEOUT_MS: '1500', CORDON_COLO: 'TST' });
    httpsPort = Number(mesh.env.CORDON_HTTPS_PORT);
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--route', '*/hello*']);
    await waitFor('hello', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('HTTPS with the development certificate generated on first start (key 0600)', async () => {
    const ca = readFileSync(join(mesh.dataDir, 'tls', 'dev.crt'), 'utf8');
    assert.equal(statSync(join(mesh.dataDir, 'tls', 'dev.key')).mode & 0o777, 0o600);
    const r = await httpsGet(httpsPort, '/hello', { ca, servername: 'localhost' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'Hello, world! (from a Cordon isolate)\n');
    await assert.rejects(httpsGet(httpsPort, '/hello', { ca: readFileSync(join(mesh.dataDir, 'tls', 'dev.crt'), 'utf8').replace(/A/g, 'B') }));
  });

  test('SNI picks each hostname’s certificate; unknown names get the default', async () => {
    assert.equal((await peerCert(httpsPort, 'a.test')).subject.CN, 'a.test');
    assert.equal((await peerCert(httpsPort, 'x.wild.test')).subject.CN, '*.wild.test');
    assert.equal((await peerCert(httpsPort, 'other.test')).subject.CN, 'localhost');
  });

  test('sandboxes hold no TLS key or certificate settings', () => {
    for (const [name, pid] of mesh.servicePids()) {
      if (!name.startsWith('sandbox:')) continue;
      assert.doesNotMatch(readFileSync(`/proc/${pid}/environ`, 'utf8'), /CORDON_TLS_/);
    }
  });

  test('a sandbox that dies before answering: an idempotent request is retried once, a POST gets 502', async () => {
    await mesh.cliOk(['deploy', 'examples/slow/index.ts', '--name', 'slow', '--route', '*/slow*']);
    await waitFor('slow', async () => (await fetch(`${mesh.httpUrl}/slow?ms=1`)).status === 200 || undefined);
    const pid = mesh.servicePids().get('sandbox:standard')!;
    const get = fetch(`${mesh.httpUrl}/slow?ms=1500`);
    const post = fetch(`${mesh.httpUrl}/slow?ms=1500`, { method: 'POST', body: 'x' });
    await new Promise((r) => setTimeout(r, 400));
    process.kill(pid, 'SIGKILL');
    const [g, p] = await Promise.all([get, post]);
    assert.equal(g.status, 200, 'the GET was retried on the restarted sandbox');
    assert.equal(await g.text(), 'slept 1500 ms after a GET');
    assert.equal(p.status, 502);
    assert.match(await p.text(), /sandbox failed before it answered/);
  });

  test('the worker learns the client address and scheme from ingress, never from the client; its own x-request-id is the only one', async () => {
    await mesh.cliOk(['deploy', 'examples/echo/index.ts', '--name', 'echo', '--route', '*/echo*']);
    await waitFor('echo', async () => (await fetch(`${mesh.httpUrl}/echo`)).status === 200 || undefined);
    const spoofed = { 'cf-connecting-ip': '6.6.6.6', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' };
    const plain = await fetch(`${mesh.httpUrl}/echo`, { headers: spoofed });
    assert.equal(plain.headers.get('x-echo-cf-connecting-ip'), '127.0.0.1');
    assert.equal(plain.headers.get('x-echo-x-forwarded-for'), '203.0.113.7, 127.0.0.1', 'the client’s list, then the address it came from');
    assert.equal(plain.headers.get('x-echo-x-forwarded-proto'), 'http');
    const secure = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: httpsPort, path: '/echo', rejectUnauthorized: false, headers: { host: 'localhost', 'x-forwarded-proto': 'http' } },
        (res) => {
          res.resume();
          resolve(res.headers);
        },
      );
      req.on('error', reject).end();
    });
    assert.equal(secure['x-echo-x-forwarded-proto'], 'https');
    // A worker answering with its own request id: one header, the worker's.
    const raw = await new Promise<string[]>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: Number(mesh.env.CORDON_HTTP_PORT), path: '/echo', headers: { 'x-answer-request-id': 'from-the-worker-1' } },
        (res) => {
          res.resume();
          resolve(res.rawHeaders);
        },
      );
      req.on('error', reject).end();
    });
    const ids = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'x-request-id');
    assert.deepEqual(ids, ['from-the-worker-1']);
    assert.match((await fetch(`${mesh.httpUrl}/echo`)).headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'otherwise ingress names the request');
  });

  test('request.cf: the colo setting, the protocol, TLS and the client Accept-Encoding; no geolocation; frozen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-cf-'));
    writeFileSync(
      join(dir, 'cf.js'),
      `export default { fetch(request) { let changed = true; try { request.cf.colo = 'X' } catch { changed = false }
        return Response.json({ cf: request.cf, frozen: Object.isFrozen(request.cf), changed, country: request.cf.country ?? null, asn: request.cf.asn ?? null }) } }`,
    );
    await mesh.cliOk(['deploy', join(dir, 'cf.js'), '--name', 'cf', '--route', '*/cf*']);
    const plain = await waitFor('cf', async () => {
      const r = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port: Number(mesh.env.CORDON_HTTP_PORT), path: '/cf', headers: { 'accept-encoding': 'gzip, br' } },
          (res) => {
            let body = '';
            res.on('data', (d) => (body += d)).on('end', () => resolve(res.statusCode === 200 ? body : ''));
          },
        );
        req.on('error', reject).end();
      });
      return r ? (JSON.parse(r) as Record<string, unknown>) : undefined;
    });
    assert.deepEqual(plain, {
      cf: { colo: 'TST', httpProtocol: 'HTTP/1.1', clientAcceptEncoding: 'gzip, br' },
      frozen: true,
      changed: false,
      country: null,
      asn: null,
    });
    const secure = JSON.parse((await httpsGet(httpsPort, '/cf', {})).body) as { cf: Record<string, string> };
    assert.equal(secure.cf.tlsVersion, 'TLSv1.3');
    assert.match(secure.cf.tlsCipher ?? '', /^TLS_(AES|CHACHA20)_/);
    assert.equal(secure.cf.colo, 'TST');
  });

  test('HTTP/1.1 keep-alive: requests share a connection; headers over 32 KiB get 431', async () => {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const get = (headers: Record<string, string> = {}) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: Number(mesh.env.CORDON_HTTP_PORT), path: '/hello', agent, headers }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, reused: req.reusedSocket }));
        });
        req.on('error', reject).end();
      });
    try {
      assert.deepEqual(await get(), { status: 200, reused: false });
      assert.deepEqual(await get(), { status: 200, reused: true }, 'the second request went over the first one’s connection');
    } finally {
      agent.destroy();
    }
    const big = await new Promise<string>((resolve) => {
      let out = '';
      const s = netConnect(Number(mesh.env.CORDON_HTTP_PORT), '127.0.0.1', () =>
        s.write(`GET /hello HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`),
      );
      s.on('data', (d) => (out += d))
        .on('close', () => resolve(out))
        .on('error', () => resolve(out));
    });
    assert.match(big, /^HTTP\/1\.1 431 /);
  });

  test('slow clients (slowloris) are cut off and do not tie up the process', async () => {
    const sockets: Socket[] = [];
    const closed: number[] = [];
    const started = Date.now();
    for (let i = 0; i < 60; i++) {
      const s = netConnect(Number(mesh.env.CORDON_HTTP_PORT), '127.0.0.1');
      s.on('error', () => {});
      s.on('close', () => closed.push(Date.now() - started));
      s.write('GET /hello HTTP/1.1\r\nHost: localhost\r\n');
      sockets.push(s);
    }
    const drip = setInterval(() => sockets.forEach((s) => s.writable && s.write('X-Slow: y\r\n')), 300);
    try {
      for (let i = 0; i < 5; i++) assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200, 'normal clients are served meanwhile');
      await waitFor('every slow client to be cut off', () => (closed.length === sockets.length ? true : undefined), 10_000);
      assert.ok(Math.max(...closed) < 6000, `cut off after ${Math.max(...closed)} ms`);
    } finally {
      clearInterval(drip);
      sockets.forEach((s) => s.destroy());
    }
  });
});
