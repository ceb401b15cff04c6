/**
 * Issue 12, items 3, 4 and 11, through a real mesh: a tenant taking another's host by route spelling,
 * a Host header that rewrites the worker's URL, and a status text that made ingress run a request twice
 * and leave its client hanging. Each attack is refused and a bystander keeps being served.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

/** Says who answered and what it saw; a login POST's body included. */
const SITE = `export default { async fetch(request, env) {
  return Response.json({ who: env.WHO, method: request.method, url: request.url, body: await request.text() });
} }`;

/** Counts every run in its storage, then answers with the status text or header the query asks for. */
const COUNTER = `export default { async fetch(request, env) {
  const url = new URL(request.url);
  const key = url.searchParams.get('k') ?? 'none';
  if (url.pathname === '/count/n') return Response.json({ n: (await env.DB.get(key)) ?? 0 });
  await env.DB.put(key, ((await env.DB.get(key)) ?? 0) + 1);
  const mode = url.searchParams.get('mode');
  if (mode === 'catch') {
    try { return new Response('x', { statusText: '\\u20ac-uro' }); } catch (e) { return new Response('caught ' + e.constructor.name); }
  }
  if (mode === 'header') {
    try { new Headers().set('x-a', 'caf\\u00e9 \\u20ac'); } catch (e) { return new Response('caught ' + e.constructor.name); }
    return new Response('not caught');
  }
  if (mode === 'throw') return new Response('x', { statusText: '\\u20ac-uro' });
  if (mode === 'after') { const r = new Response('x'); r.statusText = '\\u20ac'; return r; }
  return new Response('ok');
} }`;

/** One HTTP/1.1 exchange on a raw socket, so the Host header is exactly what a hostile client sends. */
function raw(port: number, opts: { method?: string; host: string; path: string; body?: string }): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setTimeout(15_000, () => socket.destroy(new Error('no answer within 15 s')));
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('end', () => {
      const split = data.indexOf('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1]), head: data.slice(0, split).toLowerCase(), body: data.slice(split + 4) });
    });
    const body = opts.body ?? '';
    socket.write(
      `${opts.method ?? 'GET'} ${opts.path} HTTP/1.1\r\nHost: ${opts.host}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  });
}

describe('attacks on routing: host takeovers, Host header, unsendable responses', () => {
  let mesh: TestMesh;
  let port: number;
  const tokens: Record<string, string> = {};
  const api = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const deploy = (token: string, name: string, routes: string[], content: string, extra: Record<string, unknown> = {}) =>
    api(token, 'POST', '/v1/workers', { name, routes, mainModule: 'w.js', modules: [{ name: 'w.js', type: 'esm', content }], ...extra });
  const json = (r: { body: string }) => JSON.parse(r.body) as { who: string; method: string; url: string; body: string };

  before(async () => {
    mesh = await startTestMesh();
    port = Number(new URL(mesh.httpUrl).port);
    for (const [name, scope, tenant] of [
      ['a', 'read,deploy', 'a'],
      ['aAdmin', 'admin', 'a'],
      ['b', 'deploy', 'b'],
    ] as const) {
      const r = await mesh.cli(['tokens', 'create', '--scope', scope, '--tenant', tenant]);
      assert.equal(r.code, 0, r.stderr);
      tokens[name] = r.stdout.trim();
    }
    // The operator gives each tenant its hosts.
    for (const [host, tenant] of [
      ['admin.b.example', 'b'],
      ['a.example', 'a'],
    ]) {
      const r = await mesh.cli(['hosts', 'assign', host, '--tenant', tenant]);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await deploy(tokens.b!, 'site', ['admin.b.example/*'], SITE, { vars: { WHO: 'b' } })).status, 201);
    assert.equal((await deploy(tokens.a!, 'site', ['a.example/*'], SITE, { vars: { WHO: 'a' } })).status, 201);
    // A bystander on the catch-all host, placed by the operator (the quick start's way), and the counter.
    const by = await mesh.cli(['deploy', 'examples/echo/index.ts', '--name', 'echo', '--route', '*/ta/echo*']);
    assert.equal(by.code, 0, by.stderr);
    assert.equal((await deploy(tokens.aAdmin!, 'counter', ['a.example/count*'], COUNTER, { bindings: [{ type: 'storage', name: 'DB' }] })).status, 201);
    await waitFor('every worker to be routed', async () => {
      const ready = await Promise.all([
        raw(port, { host: 'admin.b.example', path: '/' }),
        raw(port, { host: 'a.example', path: '/count?k=ready' }),
        raw(port, { host: `127.0.0.1:${port}`, path: '/ta/echo' }),
      ]);
      return ready.every((r) => r.status === 200) || undefined;
    });
  });
  after(async () => {
    await mesh?.stop();
  });

  test("item 3: no spelling of another tenant's host can be routed by a tenant-bound token; the owner keeps its traffic", async () => {
    const takeovers = [
      '*admin.b.example/*',
      'admin.b.example/login*',
      'ADMIN.B.EXAMPLE/*',
      'admin.b.example./*',
      'ａｄｍｉｎ.b.example/*',
      'admin。b.example/login*',
      '*.b.example/*',
      '*/*',
    ];
    for (const pattern of takeovers) {
      const r = await deploy(tokens.a!, 'thief', [pattern], SITE, { vars: { WHO: 'a' } });
      const { error } = (await r.json()) as { error: string };
      assert.equal(r.status, 409, `${pattern}: ${error}`);
      assert.match(error, /assigned to another tenant/, pattern);
      assert.doesNotMatch(error, /tenant b\b/, 'the owner is not named to another tenant');
    }
    const unowned = await deploy(tokens.a!, 'thief', ['nobody.example/*'], SITE);
    assert.equal(unowned.status, 403, 'a host no one assigned is the operator’s to give');
    assert.equal((await api(tokens.a!, 'GET', '/v1/workers/a/thief')).status, 404, 'nothing of the thief was stored');

    // Only the operator assigns hosts: a tenant-bound admin cannot take or transfer one.
    assert.equal((await api(tokens.aAdmin!, 'PUT', '/v1/hosts/admin.b.example', { tenant: 'a' })).status, 403);
    assert.equal((await api(tokens.aAdmin!, 'PUT', '/v1/hosts/*.a.example', { tenant: 'a' })).status, 403);
    assert.equal((await api(tokens.aAdmin!, 'DELETE', '/v1/hosts/admin.b.example')).status, 403);
    const listed = (await (await api(tokens.aAdmin!, 'GET', '/v1/hosts')).json()) as { hosts: { host: string; tenant: string }[] };
    assert.deepEqual(listed.hosts, [{ host: 'a.example', tenant: 'a' }], 'a tenant sees its own hosts only');

    // Tenant b still gets all of its traffic, in every spelling of its host, the login POST included.
    for (const host of ['admin.b.example', 'ADMIN.B.EXAMPLE', 'admin.b.example.', `admin.b.example:${port}`]) {
      const page = await raw(port, { host, path: '/' });
      assert.equal(page.status, 200, host);
      assert.equal(json(page).who, 'b', host);
    }
    const login = await raw(port, { method: 'POST', host: 'admin.b.example', path: '/login', body: 'user=b&password=secret' });
    assert.equal(login.status, 200);
    assert.deepEqual([json(login).who, json(login).method, json(login).body], ['b', 'POST', 'user=b&password=secret']);
    assert.equal(json(await raw(port, { host: 'a.example', path: '/' })).who, 'a', "the attacker's own site is unharmed");
    const audit = await mesh.cli(['audit', 'tail', '--limit', '500']);
    assert.match(audit.stdout, /\thost\.assign\tadmin\.b\.example\tok\t\{"tenant":"b"/, 'assignments are audited');
  });

  test('default routes: every worker answers at <worker>.<tenant>.workers.localhost, which no one else can route or be assigned', async () => {
    // Deployed with no route at all, as a new user's first worker is.
    assert.equal((await deploy(tokens.b!, 'plain', [], SITE, { vars: { WHO: 'b-plain' } })).status, 201);
    const served = await waitFor('the default route', async () => {
      const r = await raw(port, { host: `plain.b.workers.localhost:${port}`, path: '/x' });
      return r.status === 200 ? r : undefined;
    });
    assert.equal(json(served).who, 'b-plain');
    // Another tenant cannot route inside tenant b's default hosts, nor anyone inside the domain, nor may the operator assign them.
    for (const [token, pattern] of [
      [tokens.a!, 'plain.b.workers.localhost/*'],
      [tokens.a!, '*.b.workers.localhost/*'],
      [tokens.aAdmin!, 'x.a.workers.localhost/*'],
    ] as const) {
      const r = await deploy(token, 'squatter', [pattern], SITE, { vars: { WHO: 'a' } });
      assert.equal(r.status, 409, pattern);
    }
    assert.equal(
      (await mesh.cli(['deploy', 'examples/echo/index.ts', '--name', 'squatter', '--tenant', 'a', '--route', 'plain.b.workers.localhost/*'])).code,
      1,
      'not even the operator routes there',
    );
    const assign = await mesh.cli(['hosts', 'assign', '*.b.workers.localhost', '--tenant', 'a']);
    assert.equal(assign.code, 1, assign.stdout);
    assert.match(assign.stderr, /lies inside workers\.localhost/);
    // The catch-all bystander never serves tenant b's default host, and still serves its own path elsewhere.
    assert.equal((await raw(port, { host: `plain.b.workers.localhost:${port}`, path: '/ta/echo' })).status, 200);
    assert.equal(json(await raw(port, { host: `plain.b.workers.localhost:${port}`, path: '/ta/echo' })).who, 'b-plain');
    assert.equal((await raw(port, { host: `127.0.0.1:${port}`, path: '/ta/echo' })).status, 200);
    // An unknown worker name under a tenant's default hosts finds nothing.
    assert.equal((await raw(port, { host: `nobody.b.workers.localhost:${port}`, path: '/' })).status, 404);
  });

  test('item 4: a Host header with a path, query or userinfo is refused with 400; a bystander on the same route works', async () => {
    for (const host of ['127.0.0.1/secret-admin?', 'x@evil.example', `127.0.0.1:${port}/secret-admin#`, 'evil.example?x=', 'a b']) {
      const r = await raw(port, { host, path: '/ta/echo' });
      assert.equal(r.status, 400, `Host: ${host}`);
      assert.match(r.body, /Host header/);
    }
    const ok = await raw(port, { host: `127.0.0.1:${port}`, path: '/ta/echo/x?y=1' });
    assert.equal(ok.status, 200);
    assert.match(ok.head, /\r\nx-echo-path: \/ta\/echo\/x\r\n/, 'the worker sees the path the client asked for');
    const site = json(await raw(port, { host: 'A.Example.:' + port, path: '/p?q=1' }));
    assert.equal(site.url, `http://a.example.:${port}/p?q=1`, 'the URL holds the Host given, and nothing else from it');
  });

  test('item 11: an unsendable status text is a TypeError in the worker, the request runs once, the client is answered', async () => {
    // raw() gives up after 15 s without an answer: the old ingress left this client hanging for good.
    const get = async (mode: string, k: string) => {
      const r = await raw(port, { host: 'a.example', path: `/count?mode=${mode}&k=${k}` });
      return { status: r.status, text: r.body };
    };
    const count = async (k: string) => (JSON.parse((await raw(port, { host: 'a.example', path: `/count/n?k=${k}` })).body) as { n: number }).n;
    assert.deepEqual(
      await get('catch', 'caught'),
      { status: 200, text: 'caught TypeError' },
      'new Response with a non-Latin-1 statusText throws a TypeError it can catch',
    );
    assert.deepEqual(await get('header', 'header'), { status: 200, text: 'caught TypeError' }, 'so does headers.set with a non-Latin-1 value');
    for (const mode of ['throw', 'after']) {
      const r = await get(mode, mode);
      assert.equal(r.status, 500, `${mode}: ${r.text}`);
      assert.equal(await count(mode), 1, `${mode}: the GET ran exactly once`);
    }
    assert.equal(await count('caught'), 1);
    const bystander = await raw(port, { host: 'admin.b.example', path: '/after' });
    assert.equal(json(bystander).who, 'b', 'a bystander worker is unharmed');
  });
});
