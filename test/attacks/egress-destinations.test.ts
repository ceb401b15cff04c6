/**
 * Attack (issue 12, item 14): a hostile tenant's worker aims fetch() at names that are not public
 * (`localhost`, `*.localhost`, `*.internal`, `*.local`) — which a local resolver happily answers — and
 * at IPv6 spellings of loopback that the old deny-list let through or judged wrongly (the SIIT
 * IPv4-translated form ::ffff:0:7f00:1, NAT64 64:ff9b::7f00:1). Through the real mesh, with egress
 * pointed at a test DNS server that answers those names with loopback: every one is refused with the
 * egress error, the names are refused before any DNS lookup (the resolver never hears of them), and a
 * loopback canary is never reached. Another tenant's worker still reaches the private origins the
 * operator declared for it, a special-use name among them. A `tcp://` origin (a grant for
 * cloudflare:sockets) grants no fetch(): HTTP to that address is refused.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startDnsServer } from '../../services/egress/testing/dns-server.ts';

function countingServer(): Promise<{ port: number; hits: string[]; close(): void }> {
  const hits: string[] = [];
  const s = createServer((req, res) => {
    hits.push(`${req.headers.host} ${req.url}`);
    const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
    if (to) res.writeHead(302, { location: to });
    res.end(`reached ${req.url}`);
  });
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as { port: number }).port, hits, close: () => (s.closeAllConnections(), s.close()) })),
  );
}

describe('attack: egress to special-use names and IPv4-embedding IPv6 spellings', () => {
  let mesh: TestMesh;
  let canary: Awaited<ReturnType<typeof countingServer>>;
  let origin: Awaited<ReturnType<typeof countingServer>>;
  let dns: Awaited<ReturnType<typeof startDnsServer>>;
  const fetchAs = async (route: string, url: string) =>
    (await (await fetch(`${mesh.httpUrl}/${route}?url=${encodeURIComponent(url)}`)).json()) as { status?: number; body?: string; error?: string };
  const deploy = async (name: string, tenant: string, extra: string[] = []) => {
    const r = await mesh.cli(['deploy', 'examples/fetcher/index.ts', '--name', name, '--tenant', tenant, '--route', `*/${name}*`, ...extra]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor(name, async () => (await fetch(`${mesh.httpUrl}/${name}`)).status === 200 || undefined);
  };

  before(async () => {
    canary = await countingServer();
    origin = await countingServer();
    // A resolver that answers what it should never be asked: every name points at loopback.
    dns = await startDnsServer({
      localhost: ['127.0.0.1', '::1'],
      'x.localhost': ['127.0.0.1'],
      'svc.internal': ['127.0.0.1'],
      'printer.local': ['127.0.0.1'],
      'db.internal': ['127.0.0.1'],
    });
    mesh = await startTestMesh({ CORDON_EGRESS_DNS: dns.server });
    // Mallory holds a socket grant on the canary (an operator's tcp:// origin): it grants connect() only, never fetch().
    await deploy('mallory', 'mallory', ['--origin', `tcp://127.0.0.1:${canary.port}`]);
    // The bystander: another tenant, with private origins the operator declared (one of them a special-use name).
    await deploy('bystander', 'bob', ['--origin', `http://127.0.0.1:${origin.port}`, '--origin', `http://db.internal:${origin.port}`]);
  });
  after(async () => {
    await mesh?.stop();
    await dns?.stop();
    canary?.close();
    origin?.close();
  });

  test('special-use names are refused by name, before any DNS lookup, and nothing is reached', async () => {
    const cases: [string, RegExp][] = [
      [`http://localhost.:${canary.port}/`, /^TypeError: egress denied: localhost is a special-use name \(\.localhost, RFC 6761\)/],
      [`http://x.localhost:${canary.port}/`, /^TypeError: egress denied: x\.localhost is a special-use name \(\.localhost, RFC 6761\)/],
      [`http://svc.internal:${canary.port}/`, /^TypeError: egress denied: svc\.internal is a special-use name \(\.internal, /],
      [`http://printer.local:${canary.port}/`, /^TypeError: egress denied: printer\.local is a special-use name \(\.local, RFC 6762\)/],
      [`http://SVC.Internal.:${canary.port}/`, /^TypeError: egress denied: svc\.internal is a special-use name/],
    ];
    for (const [url, expected] of cases) {
      const r = await fetchAs('mallory', url);
      assert.match(r.error ?? '', expected, `${url}: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(
      dns.queries.filter((q) => !q.startsWith('db.internal/')),
      [],
      'the resolver was never asked about a special-use name',
    );
    assert.deepEqual(canary.hits, []);
  });

  test('the SIIT and NAT64 spellings of 127.0.0.1 are refused as what they carry, and nothing is reached', async () => {
    const siit = await fetchAs('mallory', `http://[::ffff:0:7f00:1]:${canary.port}/`);
    assert.match(
      siit.error ?? '',
      /^TypeError: egress denied: ::ffff:0:7f00:1 is SIIT IPv4-translated \(::ffff:0:0:0\/96, RFC 2765\), outside Global Unicast \(2000::\/3/,
      JSON.stringify(siit),
    );
    const nat64 = await fetchAs('mallory', `http://[64:ff9b::7f00:1]:${canary.port}/`);
    assert.match(
      nat64.error ?? '',
      /^TypeError: egress denied: 64:ff9b::7f00:1 is IPv4-IPv6 Translat\. \(64:ff9b::\/96, RFC 6052\) for 127\.0\.0\.1, which is Loopback/,
      JSON.stringify(nat64),
    );
    assert.deepEqual(canary.hits, []);
    assert.match(
      (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout,
      /\tegress\tegress\.refused\tmallory\/mallory\tdenied\t\{"reason":"egress denied: ::ffff:0:7f00:1 is SIIT/,
    );
  });

  test('a tcp:// origin (a socket grant) is no fetch() grant: HTTP to it is refused, directly or by a redirect', async () => {
    const direct = await fetchAs('mallory', `http://127.0.0.1:${canary.port}/`);
    assert.match(direct.error ?? '', /^TypeError: egress denied: 127\.0\.0\.1 is Loopback/, JSON.stringify(direct));
    const redirected = await fetchAs('bystander', `http://127.0.0.1:${origin.port}/hop?to=${encodeURIComponent(`http://127.0.0.1:${canary.port}/`)}`);
    assert.match(redirected.error ?? '', /^TypeError: egress denied: 127\.0\.0\.1 is Loopback/, JSON.stringify(redirected));
    assert.deepEqual(canary.hits, []);
  });

  test('a declared origin that redirects to a special-use name is refused at that hop', async () => {
    const hop = `http://127.0.0.1:${origin.port}/hop?to=${encodeURIComponent(`http://x.localhost:${canary.port}/`)}`;
    const r = await fetchAs('bystander', hop);
    assert.match(r.error ?? '', /^TypeError: egress denied: x\.localhost is a special-use name/, JSON.stringify(r));
    assert.deepEqual(canary.hits, []);
  });

  test('the bystander still reaches the origins the operator declared for it, the special-use name included', async () => {
    const byAddress = await fetchAs('bystander', `http://127.0.0.1:${origin.port}/by-address`);
    assert.equal(byAddress.status, 200, JSON.stringify(byAddress));
    assert.equal(byAddress.body, 'reached /by-address');
    const byName = await fetchAs('bystander', `http://db.internal:${origin.port}/by-name`);
    assert.equal(byName.status, 200, JSON.stringify(byName));
    assert.deepEqual(
      origin.hits.filter((h) => h.includes(' /by-')),
      [`127.0.0.1:${origin.port} /by-address`, `db.internal:${origin.port} /by-name`],
    );
    // Declared means exactly that origin: the same name on the canary's port is refused.
    assert.match(
      (await fetchAs('bystander', `http://db.internal:${canary.port}/`)).error ?? '',
      /^TypeError: egress denied: db\.internal is a special-use name/,
    );
    assert.deepEqual(canary.hits, []);
  });
});
