/** fetch() from a worker, through the real mesh and egress: identity stamping, policy, redirects, origins. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { freePort, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

function server(handler: (path: string, headers: Record<string, unknown>) => Reply): Promise<{ port: number; hits: string[]; close(): void }> {
  const hits: string[] = [];
  const s: Server = createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === '/hang') return; // never answers
    if (req.url === '/huge') return void res.end(Buffer.alloc(9 * 1024 * 1024, 97)); // over the 8 MiB this mesh lets a response have
    const r = handler(req.url ?? '', req.headers);
    res.writeHead(r.status, r.headers);
    res.end(r.body ?? '');
  });
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as { port: number }).port, hits, close: () => (s.closeAllConnections(), s.close()) })),
  );
}

describe('fetch through egress', () => {
  let mesh: TestMesh;
  let origin: Awaited<ReturnType<typeof server>>;
  let canary: Awaited<ReturnType<typeof server>>;
  let closedPort: number;
  const call = async (query: string) =>
    (await (await fetch(`${mesh.httpUrl}/fetch?${query}`)).json()) as { status?: number; body?: string; location?: string; error?: string };

  before(async () => {
    canary = await server(() => ({ status: 200, body: 'canary reached' }));
    origin = await server((path, headers): Reply => {
      if (path === '/to-canary') return { status: 302, headers: { location: `http://127.0.0.1:${canary.port}/leak` } };
      if (path === '/to-metadata') return { status: 307, headers: { location: 'http://169.254.169.254/latest/meta-data/' } };
      if (path === '/hop') return { status: 301, headers: { location: '/final' } };
      if (path.startsWith('/cached')) return { status: 200, headers: { 'cache-control': 'public, max-age=60' }, body: `fresh ${origin.hits.length}` };
      if (path.startsWith('/etag')) {
        if (headers['if-none-match'] === '"v1"') return { status: 304, headers: { etag: '"v1"', 'cache-control': 'no-cache' } };
        return { status: 200, headers: { etag: '"v1"', 'cache-control': 'no-cache' }, body: 'validated body' };
      }
      return { status: 200, body: JSON.stringify(headers) };
    });
    closedPort = await freePort();
    mesh = await startTestMesh({ CORDON_EGRESS_TIMEOUT_MS: '1500', CORDON_EGRESS_MAX_RESPONSE_MB: '8' });
    const r = await mesh.cli([
      'deploy',
      'examples/fetcher/index.ts',
      '--name',
      'fetcher',
      '--route',
      '*/fetch*',
      '--origin',
      `http://127.0.0.1:${origin.port}`,
      '--origin',
      `http://127.0.0.1:${closedPort}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the fetcher worker', async () => (await fetch(`${mesh.httpUrl}/fetch`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
    canary?.close();
  });

  test('the declared origin is reached, with the worker identity stamped and forged headers dropped', async () => {
    const r = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/hello`)}`);
    assert.equal(r.status, 200, JSON.stringify(r));
    const seen = JSON.parse(r.body!) as Record<string, string>;
    assert.equal(seen['cordon-worker'], 'default/fetcher');
    assert.equal(seen['x-forwarded-for'], undefined);
    assert.equal(seen['x-custom'], 'kept');
    assert.equal(seen.host, `127.0.0.1:${origin.port}`);
  });

  test('redirects are followed inside egress and each hop is checked again', async () => {
    const ok = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/hop`)}`);
    assert.equal(ok.status, 200);
    const toCanary = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/to-canary`)}`);
    assert.match(toCanary.error ?? '', /^TypeError: egress denied: 127\.0\.0\.1 is Loopback \(127\.0\.0\.0\/8/);
    const toMeta = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/to-metadata`)}`);
    assert.match(toMeta.error ?? '', /^TypeError: egress denied: 169\.254\.169\.254 is Link Local \(169\.254\.0\.0\/16/);
    assert.deepEqual(canary.hits, [], 'nothing reached the canary');
    const manual = await call(`redirect=manual&url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/to-canary`)}`);
    assert.equal(manual.status, 302);
    assert.equal(manual.location, `http://127.0.0.1:${canary.port}/leak`);
  });

  test('private, metadata and odd-scheme destinations are refused with "egress denied:"; nothing else is reached', async () => {
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      `http://127.0.0.1:${canary.port}/`,
      `http://0x7f.1:${canary.port}/`,
      `http://[::ffff:127.0.0.1]:${canary.port}/`,
      'http://10.0.0.1/',
      'file:///etc/passwd',
      `https://127.0.0.1:${origin.port}/`,
    ]) {
      const r = await call(`url=${encodeURIComponent(url)}`);
      assert.match(r.error ?? '', /^TypeError: egress denied: /, `${url}: ${JSON.stringify(r)}`);
    }
    assert.deepEqual(canary.hits, []);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout, /\tegress\tegress\.refused\tdefault\/fetcher\tdenied/);
  });

  test('a network failure is a TypeError of another kind, not a policy refusal', async () => {
    const down = await call(`url=${encodeURIComponent(`http://127.0.0.1:${closedPort}/`)}`);
    assert.match(down.error ?? '', /^TypeError: network error reaching 127\.0\.0\.1:\d+/);
    assert.doesNotMatch(down.error ?? '', /egress denied/);
  });

  test("limits: an origin that never answers times out; a response over the operator's limit (8 MiB here) is cut off as the worker reads it", async () => {
    const slow = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/hang`)}`);
    assert.match(slow.error ?? '', /^TypeError: the request to 127\.0\.0\.1:\d+ timed out after 1500 ms/);
    const huge = await call(`url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/huge`)}`);
    assert.match(huge.error ?? '', /^TypeError: the response from 127\.0\.0\.1:\d+ is larger than 8388608 bytes/);
  });

  test('at most 50 subrequests per incoming request', async () => {
    const r = await call(`times=51&url=${encodeURIComponent(`http://127.0.0.1:${origin.port}/n`)}`);
    assert.match(r.error ?? '', /Too many subrequests/);
  });

  test('only an admin-scoped token may declare a non-public origin', async () => {
    const deployer = (await mesh.cli(['tokens', 'create', '--scope', 'deploy'])).stdout.trim();
    const res = await fetch(`${mesh.adminUrl}/v1/workers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${deployer}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'sneaky',
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: 'export default {}' }],
        origins: ['http://10.0.0.5:80'],
      }),
    });
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { error: string }).error, /only an admin-scoped token/);
  });

  test('per-worker allow and deny lists of hosts and CIDRs', async () => {
    const deploy = async (name: string, extra: string[]) => {
      const r = await mesh.cli([
        'deploy',
        'examples/fetcher/index.ts',
        '--name',
        name,
        '--route',
        `*/${name}*`,
        '--origin',
        `http://127.0.0.1:${origin.port}`,
        ...extra,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await waitFor(name, async () => (await fetch(`${mesh.httpUrl}/${name}`)).status === 200 || undefined);
    };
    const callAs = async (name: string, url: string) =>
      (await (await fetch(`${mesh.httpUrl}/${name}?url=${encodeURIComponent(url)}`)).json()) as { status?: number; error?: string };
    await deploy('onlyexample', ['--allow-host', 'example.com']);
    assert.match((await callAs('onlyexample', 'http://8.8.8.8/')).error ?? '', /egress denied: 8\.8\.8\.8 is not on this worker's allow list/);
    assert.equal((await callAs('onlyexample', `http://127.0.0.1:${origin.port}/`)).status, 200, 'its declared origin stays reachable');
    await deploy('nohost', ['--deny-host', '127.0.0.1']);
    assert.match((await callAs('nohost', `http://127.0.0.1:${origin.port}/`)).error ?? '', /deny list/);
    await deploy('nocidr', ['--deny-cidr', '127.0.0.0/8']);
    assert.match((await callAs('nocidr', `http://127.0.0.1:${origin.port}/`)).error ?? '', /deny list/);
    const bad = await mesh.cli(['deploy', 'examples/fetcher/index.ts', '--name', 'badcidr', '--deny-cidr', 'ten/8']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /CIDR/);
  });

  test('the HTTP cache: a hit, revalidation with 304, and no hit across tenants', async () => {
    const url = `http://127.0.0.1:${origin.port}/cached-1`;
    const count = () => origin.hits.filter((h) => h === '/cached-1').length;
    const first = await call(`url=${encodeURIComponent(url)}`);
    const second = await call(`url=${encodeURIComponent(url)}`);
    assert.equal(first.body, second.body, 'served from the cache');
    assert.equal(count(), 1, 'one trip to the origin');
    // Another tenant, same URL: its own miss.
    const r = await mesh.cli([
      'deploy',
      'examples/fetcher/index.ts',
      '--name',
      'fetcher',
      '--tenant',
      'other',
      '--route',
      '*/other-fetch*',
      '--origin',
      `http://127.0.0.1:${origin.port}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the other tenant', async () => (await fetch(`${mesh.httpUrl}/other-fetch`)).status === 200 || undefined);
    await fetch(`${mesh.httpUrl}/other-fetch?url=${encodeURIComponent(url)}`);
    assert.equal(count(), 2, 'no cross-tenant hit');
    const etag = `http://127.0.0.1:${origin.port}/etag-1`;
    const a = await call(`url=${encodeURIComponent(etag)}`);
    const b = await call(`url=${encodeURIComponent(etag)}`);
    assert.equal(a.body, 'validated body');
    assert.equal(b.status, 200);
    assert.equal(b.body, 'validated body', 'a 304 revalidation serves the stored body');
    assert.equal(origin.hits.filter((h) => h === '/etag-1').length, 2, 'revalidated, not refetched blind');
  });
});
