/**
 * cloudflare:sockets `connect()` from a worker, through the real mesh and egress (issue 13): a line
 * echo over TCP and over TLS, a Redis-protocol round trip against a tiny fake server, StartTLS, and
 * connect()'s argument errors as workerd words them. The servers are on loopback, granted to the
 * worker as `tcp://` origins (an operator's grant, as for fetch()'s private origins). node:net and
 * node:tls (nodejs_compat, over the same connect()) against the same servers answer what the same
 * worker answers on the real workerd, allowed to reach loopback and trusting the test's certificate.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { freePort, ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const NODE_FIXTURE = 'test/fixtures/sockets/node';

const listen = (s: Server): Promise<number> => new Promise((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));

/** Echoes every line back. */
const echo = (c: Socket) => c.on('data', (d) => c.write(d)).on('error', () => {});

/** A fake Redis: answers PING, SET and GET in RESP, from a map. */
function fakeRedis(c: Socket): void {
  const store = new Map<string, string>();
  let buffer = '';
  c.on('error', () => {});
  c.on('data', (d) => {
    buffer += d.toString();
    for (;;) {
      const m = /^\*(\d+)\r\n((?:\$\d+\r\n[^\r]*\r\n)*)/.exec(buffer);
      if (!m) return;
      const parts = [...m[2]!.matchAll(/\$\d+\r\n([^\r]*)\r\n/g)].map((x) => x[1]!);
      if (parts.length < Number(m[1])) return;
      buffer = buffer.slice(m[0].length);
      const [cmd, ...args] = parts;
      if (cmd === 'PING') c.write('+PONG\r\n');
      else if (cmd === 'SET') c.write((store.set(args[0]!, args[1]!), '+OK\r\n'));
      else if (cmd === 'GET') c.write(store.has(args[0]!) ? `$${store.get(args[0]!)!.length}\r\n${store.get(args[0]!)}\r\n` : '$-1\r\n');
      else c.write(`-ERR unknown command '${cmd}'\r\n`);
    }
  });
}

describe('cloudflare:sockets connect() through egress', () => {
  let mesh: TestMesh;
  let dir: string;
  const servers: Server[] = [];
  const ports: Record<string, number> = {};
  const call = async (op: string, query: Record<string, string>) =>
    (await (await fetch(`${mesh.httpUrl}/sockets/${op}?${new URLSearchParams(query)}`)).json()) as Record<string, unknown>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cordon-sockets-'));
    // Its own trust anchor (CA:TRUE), as workerd (the node:net comparison below) accepts no other self-signed certificate.
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
      extensions: [
        { name: 'basicConstraints', cA: true, critical: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    });
    writeFileSync(join(dir, 'ca.crt'), pems.cert);
    const tls = { key: pems.private, cert: pems.cert };
    const make = async (name: string, s: Server) => {
      servers.push(s);
      ports[name] = await listen(s);
    };
    await make('echo', createServer(echo));
    await make('redis', createServer(fakeRedis));
    await make('tls', createTlsServer(tls, echo));
    // StartTLS as SMTP and IMAP do it: a plain banner, a command, then TLS on the same connection.
    await make(
      'starttls',
      createServer((c) => {
        c.on('error', () => {});
        c.write('220 ready\n');
        c.once('data', (d) => {
          if (d.toString() !== 'STARTTLS\n') return void c.end('500 expected STARTTLS\n');
          c.write('220 go ahead\n', () => echo(new TLSSocket(c, { isServer: true, ...tls })));
        });
      }),
    );
    // Egress trusts the test's certificate (and only egress does TLS).
    ports.closed = await freePort(); // declared, but nothing listens there
    mesh = await startTestMesh({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt') });
    const origins = Object.values(ports).flatMap((p) => ['--origin', `tcp://127.0.0.1:${p}`]);
    const r = await mesh.cli(['deploy', 'test/fixtures/sockets/index.ts', '--name', 'sockets', '--route', '*/sockets/*', ...origins]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker', async () => (await fetch(`${mesh.httpUrl}/sockets/none`)).status === 404 || undefined);
    const node = await mesh.cli(['deploy', '--route', '*/node-sockets/*', ...origins], join(ROOT, NODE_FIXTURE));
    assert.equal(node.code, 0, node.stderr);
    await waitFor('the node:net worker', async () => (await fetch(`${mesh.httpUrl}/node-sockets/none`)).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    for (const s of servers) s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('node:net and node:tls (nodejs_compat) beside workerd', { skip: workerdMissing() }, () => {
    /** The same requests to the fixture on Cordon and on workerd. */
    const both = async (paths: string[]): Promise<{ cordon: unknown[]; workerd: unknown[] }> => {
      const ask = async (base: string) =>
        Promise.all(
          paths.map(async (path) => {
            const t = await (await fetch(`${base}/node-sockets/${path}`)).text();
            try {
              return JSON.parse(t);
            } catch {
              throw new Error(`${base}/node-sockets/${path} answered ${t.slice(0, 300)}`);
            }
          }),
        );
      const workerd = await startWorkerd({
        files: { 'index.js': readFileSync(join(ROOT, NODE_FIXTURE, 'index.js')), 'ca.crt': readFileSync(join(dir, 'ca.crt')) },
        // Loopback allowed and the test's certificate trusted, as the mesh's egress is told.
        config: (p) => `const config :Workerd.Config = (
  services = [
    (name = "main", worker = (modules = [(name = "index.js", esModule = embed "index.js")], compatibilityDate = "2025-06-01", compatibilityFlags = ["nodejs_compat"], globalOutbound = "net")),
    (name = "net", network = (allow = ["public", "private", "local"], tlsOptions = (trustedCertificates = [embed "ca.crt"]))),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${p[0]}", http = (), service = "main") ],
);`,
      });
      try {
        await waitFor('workerd', async () => (await fetch(`${workerd.url()}/node-sockets/none`).catch(() => undefined))?.status === 404 || undefined);
        return { cordon: await ask(mesh.httpUrl), workerd: await ask(workerd.url()) };
      } finally {
        workerd.stop();
      }
    };

    test('a line protocol over node:net (net.connect, createConnection, new Socket().connect) and over tls.connect, and an idle timeout: the same events and bytes as workerd', async () => {
      const paths = [
        `net?port=${ports.echo}`,
        `net?port=${ports.echo}&how=options`,
        `net?port=${ports.echo}&how=socket`,
        `tls?port=${ports.tls}`,
        'info',
        `idle?port=${ports.echo}`,
      ];
      const { cordon, workerd } = await both(paths);
      assert.deepEqual(cordon, workerd);
      // What that is, so that agreeing on nothing cannot pass.
      assert.deepEqual(cordon[0], {
        pending: { remoteAddress: '127.0.0.1', connecting: true, readyState: 'opening' },
        got: 'one\ntwo\n',
        events: [`connected to 127.0.0.1:${ports.echo} (IPv4)`, 'connect', 'ready', 'finish', 'end', 'close false'],
        readyState: 'closed',
      });
      assert.deepEqual((cordon[3] as { events: string[] }).events.slice(0, 4), [
        `connected to 127.0.0.1:${ports.tls} (IPv4) authorized true`,
        'secureConnect',
        'connect',
        'ready',
      ]);
      assert.equal((cordon[3] as { got: string }).got, 'secret\n');
      assert.equal((cordon[4] as { netCreateServer: string }).netCreateServer, 'Error: createServer() is not implemented');
      assert.deepEqual(cordon[5], { timeout: 50, seen: ['callback', 'timeout, open'] });
    });

    test("StartTLS over node:net (tls.connect({ socket }), new TLSSocket(socket)) and getPeerCertificate: egress's TLS and what it saw of the certificate", async () => {
      // Cordon only: on workerd, tls.connect({ socket }) throws on a socket that has been read from and new
      // TLSSocket(socket) never carries a byte (docs/compatibility.md).
      const starttls = await Promise.all(
        ['', '&how=wrap'].map(async (how) => (await fetch(`${mesh.httpUrl}/node-sockets/starttls?port=${ports.starttls}${how}`)).json()),
      );
      for (const r of starttls as {
        lines: string[];
        encrypted: boolean;
        got: string;
        events: string[];
        peer: Record<string, unknown>;
        plainWrite: string;
      }[]) {
        assert.deepEqual(r.lines, ['220 ready\n', '220 go ahead\n']);
        assert.equal(r.encrypted, true);
        assert.equal(r.got, 'secret over starttls\n');
        // 'connect' and 'ready' were the plain socket's: the TLS one says only that the handshake is done.
        assert.deepEqual(r.events.slice(0, 2), [`connected to 127.0.0.1:${ports.starttls} (IPv4) authorized true`, 'secureConnect']);
        assert.equal(r.peer.fingerprint256, new X509Certificate(readFileSync(join(dir, 'ca.crt'))).fingerprint256);
        assert.equal(r.plainWrite, 'This socket was wrapped in TLS: write to the TLSSocket');
      }
      const { cordon, workerd } = await both([`peer?port=${ports.tls}`]);
      // Node's own reading of the same certificate: what getPeerCertificate gives in Node.
      const x509 = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
      assert.deepEqual(cordon[0], {
        before: {},
        cert: {
          subject: { CN: 'localhost' },
          issuer: { CN: 'localhost' },
          subjectaltname: x509.subjectAltName,
          valid_from: x509.validFrom,
          valid_to: x509.validTo,
          fingerprint256: x509.fingerprint256,
          serialNumber: x509.serialNumber,
        },
      });
      // workerd's throws.
      assert.deepEqual(workerd, [{ before: 'Error: getPeerCertificate is not implemented', cert: 'Error: getPeerCertificate is not implemented' }]);
    });

    test("a refused connection is the socket's 'error' with connect()'s message", async () => {
      const { cordon, workerd } = await both([`open?port=${ports.closed}`]);
      const message = 'error: proxy request failed, cannot connect to the specified address';
      assert.deepEqual(workerd, [{ outcome: message }]);
      // Cordon's says why after it (the errno).
      assert.ok((cordon[0] as { outcome: string }).outcome.startsWith(message), JSON.stringify(cordon));
    });
  });

  test('a line round trip over TCP; opened says where it went', async () => {
    const r = await call('echo', { port: String(ports.echo) });
    assert.deepEqual(r, { got: 'hello over tcp\n', remote: `127.0.0.1:${ports.echo}`, secureTransport: 'off' });
  });

  test('a Redis client round trip (RESP: PING, SET, GET) against a fake server', async () => {
    const r = await call('redis', { port: String(ports.redis) });
    assert.deepEqual(r, { pong: '+PONG\r\n', replies: '+OK\r\n$5\r\nvalue\r\n' });
  });

  test("secureTransport: 'on' is TLS from the start, its certificate checked against the address asked for", async () => {
    // The certificate names localhost and 127.0.0.1; the worker asks for the address (its declared origin).
    const r = await call('echo', { port: String(ports.tls), tls: 'on' });
    assert.equal(r.got, 'hello over tcp\n', JSON.stringify(r));
    assert.equal(r.secureTransport, 'on');
  });

  test('StartTLS: plain first, then TLS over the same connection', async () => {
    const r = await call('starttls', { port: String(ports.starttls), name: 'localhost' });
    assert.deepEqual(r, { banner: '220 ready\n', ready: '220 go ahead\n', got: 'hello over tls\n', upgraded: true, secureTransport: 'on' });
  });

  test("connect()'s argument errors are workerd's, thrown before anything is opened", async () => {
    const r = await call('sync', {});
    assert.deepEqual(r.out, [
      'TypeError: Specified address is missing port.',
      'TypeError: Value out of range. Must be less than or equal to 65535.',
      'TypeError: Unsupported value in secureTransport socket option: maybe',
      "TypeError: The `secureTransport` socket option must be set to 'starttls' for startTls to be used.",
    ]);
  });

  test("a destination that refuses the connection: workerd's message on opened", async () => {
    const r = await call('open', { port: String(ports.closed) });
    assert.match((r.result as string[])[0]!, /^Error: proxy request failed, cannot connect to the specified address \(connect ECONNREFUSED/);
  });
});
