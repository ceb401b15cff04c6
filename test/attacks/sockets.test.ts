/**
 * Attack (issue 13): a hostile tenant's worker aims cloudflare:sockets `connect()` where fetch() may
 * not go — the metadata address, private ranges, loopback under other spellings, names that resolve
 * inside (one answer inside refuses the name), a loopback address granted to it only as an *HTTP*
 * origin — and at what sockets add: port 25, this platform's own listeners (even when declared), and
 * more sockets at once than a worker may hold. Through the real mesh, with egress asking a test DNS
 * server: each is refused with "egress denied:", audited, and a loopback canary is never connected
 * to. Another tenant's worker, meanwhile, still reaches the socket origin the operator granted it
 * (by a special-use name) while the attacker sits at its limit. node:net (nodejs_compat) is the same
 * connect(): aimed at the same places it meets the same refusals, and the bystander is unharmed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startDnsServer } from '../../services/egress/testing/dns-server.ts';

/** A TCP server that echoes and counts the connections it has open and ever had. */
async function counting(): Promise<{ port: number; open: () => number; total: () => number; closeAll: () => void; server: Server }> {
  const live = new Set<Socket>();
  let total = 0;
  const server = createServer((c) => {
    total++;
    live.add(c);
    c.on('close', () => live.delete(c)).on('error', () => {});
    c.on('data', (d) => c.write(d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const closeAll = () => {
    for (const c of live) c.destroy();
  };
  return { port: (server.address() as { port: number }).port, open: () => live.size, total: () => total, closeAll, server };
}

describe('attack: connect() to places egress must not reach', () => {
  let mesh: TestMesh;
  let canary: Awaited<ReturnType<typeof counting>>;
  let granted: Awaited<ReturnType<typeof counting>>;
  let bobs: Awaited<ReturnType<typeof counting>>;
  let dns: Awaited<ReturnType<typeof startDnsServer>>;
  const call = async (route: string, op: string, query: Record<string, string>) =>
    (await (await fetch(`${mesh.httpUrl}/${route}/${op}?${new URLSearchParams(query)}`)).json()) as { result?: string[]; got?: string; error?: string };
  const deploy = async (name: string, tenant: string, origins: string[]) => {
    const r = await mesh.cli([
      'deploy',
      'test/fixtures/sockets/index.ts',
      '--name',
      name,
      '--tenant',
      tenant,
      '--route',
      `*/${name}/*`,
      ...origins.flatMap((o) => ['--origin', o]),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(name, async () => (await fetch(`${mesh.httpUrl}/${name}/none`)).status === 404 || undefined);
  };

  before(async () => {
    canary = await counting();
    granted = await counting();
    bobs = await counting();
    dns = await startDnsServer({
      'inside.example.com': ['127.0.0.1'],
      'both.example.com': ['93.184.215.14', '127.0.0.1'],
      'metadata.example.com': ['169.254.169.254'],
      'db.internal': ['127.0.0.1'],
    });
    mesh = await startTestMesh({ CORDON_EGRESS_DNS: dns.server, CORDON_EGRESS_SOCKETS_PER_WORKER: '3' });
    // Mallory's grants: an HTTP origin on the canary (fetch only), a socket origin, and one on the platform's own port.
    await deploy('mallory', 'mallory', [`http://127.0.0.1:${canary.port}`, `tcp://127.0.0.1:${granted.port}`, `tcp://127.0.0.1:${mesh.env.CORDON_HTTP_PORT}`]);
    await deploy('bystander', 'bob', [`tcp://db.internal:${bobs.port}`]);
    // The same grants to Mallory's nodejs_compat worker using node:net.
    const node = await mesh.cli(
      ['deploy', '--name', 'mallory-node', '--tenant', 'mallory', '--route', '*/mallory-node/*', '--origin', `http://127.0.0.1:${canary.port}`],
      join(ROOT, 'test/fixtures/sockets/node'),
    );
    assert.equal(node.code, 0, node.stderr);
    await waitFor('mallory-node', async () => (await fetch(`${mesh.httpUrl}/mallory-node/none`)).status === 404 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    await dns?.stop();
    for (const s of [canary, granted, bobs]) {
      s?.closeAll();
      s?.server.close();
    }
  });

  test('private, metadata and loopback destinations, however spelled or resolved, are refused; nothing is reached', async () => {
    const port = String(canary.port);
    const cases: [Record<string, string>, RegExp][] = [
      [{ host: '169.254.169.254', port: '80' }, /^Error: egress denied: 169\.254\.169\.254 is Link Local/],
      [{ host: 'metadata.example.com', port: '80' }, /^Error: egress denied: metadata\.example\.com resolves to 169\.254\.169\.254/],
      [{ host: '10.0.0.5', port: '5432' }, /^Error: egress denied: 10\.0\.0\.5 is Private-Use/],
      // A granted HTTP origin is no socket grant: a raw socket could forge the identity fetch() stamps.
      [{ host: '127.0.0.1', port }, /^Error: egress denied: 127\.0\.0\.1 is Loopback/],
      [{ host: '0x7f.1', port }, /^Error: egress denied: 127\.0\.0\.1 is Loopback/],
      [{ host: '::ffff:127.0.0.1', port }, /^Error: egress denied: .*Loopback/],
      [{ host: 'localhost', port }, /^Error: egress denied: localhost is a special-use name/],
      [{ host: 'inside.example.com', port }, /^Error: egress denied: inside\.example\.com resolves to 127\.0\.0\.1/],
      [{ host: 'both.example.com', port }, /^Error: egress denied: both\.example\.com resolves to 127\.0\.0\.1/],
      [{ host: 'evil.example.com@127.0.0.1', port }, /^Error: egress denied: not a valid host name/],
      [{ host: 'mail.example.com', port: '25' }, /^Error: egress denied: connect\(\) to port 25 is not allowed/],
      [{ host: '127.0.0.1', port: String(mesh.env.CORDON_HTTP_PORT) }, /^Error: egress denied: 127\.0\.0\.1:\d+ is this platform's own listener/],
    ];
    for (const [query, expected] of cases) {
      const r = await call('mallory', 'open', query);
      assert.match(r.result?.[0] ?? r.error ?? '', expected, `${JSON.stringify(query)}: ${JSON.stringify(r)}`);
    }
    assert.equal(canary.total(), 0, 'the canary was never connected to');
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
    assert.match(audit, /\tegress\tegress\.refused\tmallory\/mallory\tdenied/);
    // (A burst of refusals is summed up in one audit line when its window ends: the first ones are each there.)
    assert.match(audit, /"reason":"egress denied: 169\.254\.169\.254 is Link Local/);
  });

  test('node:net meets the same refusals as connect(): metadata, private, loopback and a name resolving inside; nothing is reached; another tenant still connects', async () => {
    const port = String(canary.port);
    const cases: Record<string, string>[] = [
      { host: '169.254.169.254', port: '80' },
      { host: 'metadata.example.com', port: '80' },
      { host: '10.0.0.5', port: '5432' },
      { host: '127.0.0.1', port },
      { host: '::ffff:127.0.0.1', port },
      { host: 'inside.example.com', port },
    ];
    for (const query of cases) {
      const viaConnect = (await call('mallory', 'open', query)).result?.[0] ?? '';
      const viaNet = ((await (await fetch(`${mesh.httpUrl}/mallory-node/open?${new URLSearchParams(query)}`)).json()) as { outcome: string }).outcome;
      assert.match(viaConnect, /^Error: egress denied: /, JSON.stringify(query));
      assert.equal(viaNet, `error: ${viaConnect.slice('Error: '.length)}`, JSON.stringify(query));
    }
    assert.equal(canary.total(), 0, 'the canary was never connected to');
    const bob = await call('bystander', 'echo', { host: 'db.internal', port: String(bobs.port) });
    assert.equal(bob.got, 'hello over tcp\n', JSON.stringify(bob));
  });

  test('a worker at its socket limit is refused more; another tenant connects meanwhile', async () => {
    // Five at once, held open: three open, two refused.
    const held = call('mallory', 'open', { port: String(granted.port), n: '5', hold: '1' });
    await waitFor('mallory at her limit', async () => granted.open() === 3 || undefined);
    const bob = await call('bystander', 'echo', { host: 'db.internal', port: String(bobs.port) });
    assert.equal(bob.got, 'hello over tcp\n', JSON.stringify(bob));
    // Mallory's sockets end when the origin closes them.
    granted.closeAll();
    const r = await held;
    assert.deepEqual(r.result?.filter((x) => x === 'opened').length, 3, JSON.stringify(r));
    assert.deepEqual(
      r.result?.filter((x) => x !== 'opened'),
      ['Error: egress denied: too many open sockets: a worker may have 3 at once', 'Error: egress denied: too many open sockets: a worker may have 3 at once'],
    );
    // Closed, they count no more: the next connection is opened.
    await waitFor('the sockets released', async () => (await call('mallory', 'open', { port: String(granted.port) })).result?.[0] === 'opened' || undefined);
  });
});
