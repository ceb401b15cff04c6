/** Scopes and tenant binding on every admin route, with real tokens against the real supervisor. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestMesh, type TestMesh } from './helpers/mesh.ts';

describe('admin API tokens', () => {
  let mesh: TestMesh;
  const call = (token: string | undefined, method: string, path: string, body?: unknown) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  const create = async (scopes: string, tenant?: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scopes, ...(tenant ? ['--tenant', tenant] : [])]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const deployBody = (tenant: string | undefined, name: string) => ({
    tenant,
    name,
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm', content: 'export default { fetch() { return new Response("x") } }' }],
  });

  before(async () => {
    mesh = await startTestMesh();
    for (const t of ['acme', 'globex']) assert.equal((await call(await create('deploy'), 'POST', '/v1/workers', deployBody(t, 'api'))).status, 201);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('every route in the OpenAPI document refuses a missing or revoked token with 401', async () => {
    const doc = (await (await fetch(`${mesh.adminUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, { 'x-cordon-scope'?: string }>> };
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => [m.toUpperCase(), p.replace('{tenant}', 'acme').replace('{name}', 'api').replace('{id}', 't_x')] as const),
    );
    assert.ok(routes.length >= 9);
    const revoked = await create('admin');
    const id = (await (await call(revoked, 'GET', '/v1/tokens')).json()) as { tokens: { tokenId: string }[] };
    const last = id.tokens.at(-1)!.tokenId;
    await mesh.cliOk(['tokens', 'revoke', last]);
    for (const [method, path] of routes) {
      if (path === '/healthz') continue;
      for (const token of [undefined, 'cordon_not-a-token', revoked]) {
        const res = await call(token, method, path, method === 'POST' ? {} : undefined);
        assert.equal(res.status, 401, `${method} ${path} with ${token ? 'a bad' : 'no'} token`);
      }
    }
  });

  test('each route needs its scope: a token without it gets 403', async () => {
    const read = await create('read');
    const deploy = await create('deploy');
    assert.equal((await call(read, 'POST', '/v1/workers', deployBody('acme', 'x'))).status, 403);
    assert.equal((await call(read, 'GET', '/v1/workers')).status, 200);
    assert.equal((await call(deploy, 'GET', '/v1/workers')).status, 403);
    for (const path of ['/v1/tokens', '/v1/audit', '/v1/audit/verify']) {
      assert.equal((await call(read, 'GET', path)).status, 403, path);
      assert.equal((await call(deploy, 'GET', path)).status, 403, path);
    }
    assert.equal((await call(read, 'POST', '/v1/tokens', { scopes: ['admin'] })).status, 403, 'no privilege escalation');
    assert.equal((await call(read, 'DELETE', '/v1/tokens/root')).status, 403);
  });

  test('a tenant-bound token cannot see or touch another tenant', async () => {
    const acme = await create('read,deploy', 'acme');
    const list = (await (await call(acme, 'GET', '/v1/workers')).json()) as { workers: { id: string }[] };
    assert.deepEqual(
      list.workers.map((w) => w.id),
      ['acme/api'],
    );
    assert.equal((await call(acme, 'GET', '/v1/workers/globex/api')).status, 403);
    assert.equal((await call(acme, 'GET', '/v1/workers/globex/api/logs')).status, 403);
    assert.equal((await call(acme, 'POST', '/v1/workers', deployBody('globex', 'api'))).status, 403);
    const own = await call(acme, 'POST', '/v1/workers', deployBody(undefined, 'second'));
    assert.equal(own.status, 201);
    assert.equal(((await own.json()) as { worker: string }).worker, 'acme/second', 'a bound token deploys into its own tenant');
    const acmeAdmin = await create('admin', 'acme');
    assert.equal((await call(acmeAdmin, 'GET', '/v1/audit')).status, 403, 'the audit log spans tenants');
    assert.equal((await call(acmeAdmin, 'POST', '/v1/tokens', { scopes: ['admin'], tenant: 'globex' })).status, 403);
    const tokens = (await (await call(acmeAdmin, 'GET', '/v1/tokens')).json()) as { tokens: { tenant?: string }[] };
    assert.ok(tokens.tokens.every((t) => t.tenant === 'acme'));
  });

  test('code over 64 MiB is refused with a clear error and nothing is stored', async () => {
    const deploy = await create('deploy');
    const body = deployBody('acme', 'huge');
    body.modules.push({ name: 'big.txt', type: 'text', content: 'x'.repeat(64 * 1024 * 1024 + 1) });
    const res = await call(deploy, 'POST', '/v1/workers', body);
    assert.equal(res.status, 413);
    assert.match(((await res.json()) as { error: string }).error, /limit is 67108864 \(64 MiB\)/);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /huge/);
  });

  test('refusals are audited', async () => {
    const tail = await mesh.cli(['audit', 'tail', '--limit', '2000']);
    assert.match(tail.stdout, /\tanonymous\tadmin\.request\t.*\tdenied/);
    assert.match(tail.stdout, /\tadmin\.request\t.*\tdenied\t\{"reason":"this token lacks the deploy scope"\}/);
    assert.match(tail.stdout, /\tdenied\t\{"reason":"this token is bound to tenant acme"\}/);
  });
});
