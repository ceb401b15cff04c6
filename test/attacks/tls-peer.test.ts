/**
 * Attack (issue 13): what egress hands a worker of a TLS peer's certificate (node:tls getPeerCertificate)
 * and StartTLS over node:net. A hostile server presents a certificate stuffed with long and many subject
 * fields: the worker gets bounded strings only (no key, no raw bytes, no object of egress's), whether the
 * socket was TLS from the start or wrapped with tls.connect({ socket }). A worker wrapping its plain socket
 * cannot then use it beside the TLS one, nor wrap it twice. A bystander tenant connects meanwhile.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { PEER_FIELD_MAX } from '../../schemas/capabilities.ts';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const listen = (s: Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));
const echo = (c: Socket) => c.on('data', (d) => c.write(d)).on('error', () => {});

const WORKER = `
import net from 'node:net';
import tls from 'node:tls';
const attempt = (f) => { try { return f() } catch (e) { return e.message } };
export default {
  async fetch(request) {
    const p = new URL(request.url).searchParams;
    const port = Number(p.get('port'));
    if (p.get('op') === 'direct') {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost' });
      await new Promise((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
      const cert = s.getPeerCertificate();
      s.destroy();
      return Response.json({ cert });
    }
    const plain = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => plain.once('data', resolve));
    plain.write('STARTTLS\\n');
    await new Promise((resolve) => plain.once('data', resolve));
    const s = tls.connect({ socket: plain, servername: 'localhost' });
    const again = attempt(() => tls.connect({ socket: plain, servername: 'localhost' }));
    await new Promise((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    plain.on('error', () => {});
    const plainWrite = await new Promise((r) => plain.write('sneak\\n', (e) => r(e ? e.message : 'written')));
    s.write('through tls\\n');
    const got = await new Promise((resolve) => s.once('data', (d) => resolve(String(d))));
    const cert = s.getPeerCertificate();
    s.destroy();
    return Response.json({ cert, again, plainWrite, got });
  },
};`;

describe('attack: a hostile TLS peer, and StartTLS over node:net', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-tls-peer-'));
  const servers: Server[] = [];
  const ports: Record<string, number> = {};
  const seen: string[] = [];
  before(async () => {
    // A trust anchor egress is told to trust (as an operator would), whose subject is stuffed.
    const stuffed = [
      { name: 'commonName', value: 'localhost' },
      { name: 'organizationName', value: 'O'.repeat(5000) },
      ...Array.from({ length: 60 }, (_, i) => ({ name: 'OU', value: `unit-${i}-${'u'.repeat(200)}` })),
    ];
    const pems = await selfsigned.generate(stuffed, {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            ...Array.from({ length: 200 }, (_, i) => ({ type: 2 as const, value: `alt${i}.example` })),
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    });
    writeFileSync(join(dir, 'ca.crt'), pems.cert);
    const tls = { key: pems.private, cert: pems.cert };
    const track = (c: Socket) => c.on('data', (d) => seen.push(String(d)));
    for (const [name, server] of [
      ['tls', createTlsServer(tls, (c) => echo(track(c)))],
      [
        'starttls',
        createServer((c) => {
          c.on('error', () => {});
          c.write('220 ready\n');
          c.once('data', () => c.write('220 go ahead\n', () => echo(track(new TLSSocket(c, { isServer: true, ...tls })))));
        }),
      ],
      ['bystander', createServer(echo)],
    ] as const) {
      servers.push(server);
      ports[name] = await listen(server);
    }
    writeFileSync(join(dir, 'index.js'), WORKER);
    writeFileSync(
      join(dir, 'wrangler.json'),
      JSON.stringify({ name: 'peer', main: 'index.js', compatibility_date: '2025-06-01', compatibility_flags: ['nodejs_compat'], route: '*/peer*' }),
    );
    mesh = await startTestMesh({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt') });
    const origins = Object.values(ports).flatMap((p) => ['--origin', `tcp://127.0.0.1:${p}`]);
    const r = await mesh.cli(['deploy', '--tenant', 'evil', ...origins], dir);
    assert.equal(r.code, 0, r.stderr);
    const b = await mesh.cli([
      'deploy',
      'test/fixtures/sockets/index.ts',
      '--tenant',
      'acme',
      '--name',
      'sockets',
      '--route',
      '*/sockets/*',
      '--origin',
      `tcp://127.0.0.1:${ports.bystander}`,
    ]);
    assert.equal(b.code, 0, b.stderr);
    await waitFor(
      'both workers',
      async () => ((await fetch(`${mesh.httpUrl}/sockets/none`)).status === 404 && (await fetch(`${mesh.httpUrl}/peer?op=none`)).status !== 404) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
    for (const s of servers) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the stuffed certificate reaches the worker as bounded strings only; a wrapped plain socket is the TLS socket's alone; the bystander connects meanwhile", async () => {
    const bounded = (cert: Record<string, unknown>) => {
      assert.deepEqual(Object.keys(cert).sort(), ['fingerprint256', 'issuer', 'serialNumber', 'subject', 'subjectaltname', 'valid_from', 'valid_to']);
      for (const [k, v] of Object.entries(cert)) {
        if (k === 'subject' || k === 'issuer') {
          for (const x of Object.values(v as Record<string, unknown>))
            assert.ok(typeof x === 'string' && x.length <= PEER_FIELD_MAX, `${k}: ${String(x).length}`);
        } else assert.ok(typeof v === 'string' && v.length <= PEER_FIELD_MAX, `${k}: ${String(v).length}`);
      }
      const subject = cert.subject as Record<string, string>;
      assert.equal(subject.CN, 'localhost');
      assert.equal(subject.O, 'O'.repeat(PEER_FIELD_MAX), 'cut at the bound');
      assert.equal((cert.subjectaltname as string).length, PEER_FIELD_MAX);
    };
    const direct = (await (await fetch(`${mesh.httpUrl}/peer?op=direct&port=${ports.tls}`)).json()) as { cert: Record<string, unknown> };
    bounded(direct.cert);
    const res = await fetch(`${mesh.httpUrl}/peer?op=starttls&port=${ports.starttls}`);
    const wrapped = (await res.json()) as { cert: Record<string, unknown>; again: string; plainWrite: string; got: string };
    bounded(wrapped.cert);
    assert.equal(wrapped.again, 'This socket was wrapped in TLS already: use the TLSSocket');
    assert.equal(wrapped.plainWrite, 'This socket was wrapped in TLS: write to the TLSSocket');
    assert.equal(wrapped.got, 'through tls\n');
    assert.ok(!seen.some((s) => s.includes('sneak')), 'nothing written to the plain socket after the wrap reached the server');
    const bystander = (await (await fetch(`${mesh.httpUrl}/sockets/echo?port=${ports.bystander}`)).json()) as Record<string, unknown>;
    assert.equal(bystander.got, 'hello over tcp\n', JSON.stringify(bystander));
  });
});
