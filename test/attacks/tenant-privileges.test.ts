/**
 * Issue 12, items 9 and 10: trust a tenant's own token must not be able to give itself, through the
 * real mesh.
 * - A private origin (one egress would refuse) is reachable only when the operator grants it: an
 *   admin token not bound to a tenant, or CORDON_TENANT_ORIGINS. A tenant-bound admin token that
 *   declares the admin API's own address gets 403, and its worker cannot read the admin API.
 * - Which cordons a tenant may use is the operator's list (default: the least trusted); quarantine
 *   follows a tenant's code under a new name, and can hold a whole tenant.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchHost, freePort, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const ECHO = 'export default { fetch() { return new Response("safe") } }';

describe('tenant privileges: private origins, cordons, quarantine', () => {
  let mesh: TestMesh;
  let origin: Server;
  let originPort: number;
  let deployToken: string; // deploy + read, bound to evil
  let tenantAdmin: string; // admin, bound to evil

  const call = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const root = () => readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const token = async (scopes: string, tenant: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scopes, '--tenant', tenant]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  /** The cordon CLI as the holder of `tok`. */
  const runAs = async (tok: string, args: string[]) => {
    const saved = mesh.env.CORDON_TOKEN;
    mesh.env.CORDON_TOKEN = tok;
    try {
      return await mesh.cli(args);
    } finally {
      if (saved === undefined) delete mesh.env.CORDON_TOKEN;
      else mesh.env.CORDON_TOKEN = saved;
    }
  };
  /** `runAs`, which must succeed: otherwise the command's stderr says why. */
  const runAsOk = async (tok: string, args: string[]) => {
    const r = await runAs(tok, args);
    assert.equal(r.code, 0, `cordon ${args.join(' ')}: ${r.stderr}`);
  };
  const cordonOf = async (id: string) => new RegExp(`^${id}\\t[0-9a-f]{12}\\t(\\S+)`, 'm').exec((await mesh.cli(['workers'])).stdout)?.[1];
  // Tenant-bound tokens route only on hosts the operator assigned their tenant (evil.example, granted.example).
  const hostOf = (route: string) => (route.startsWith('evil/') ? 'evil.example' : route.startsWith('granted/') ? 'granted.example' : '127.0.0.1');
  const get = (route: string, init?: { method?: string; body?: string }) => fetchHost(mesh, hostOf(route), `/${route}`, init);
  const fetchVia = async (route: string, url: string) =>
    (await (await get(`${route}?url=${encodeURIComponent(url)}`)).json()) as { status?: number; body?: string; error?: string };

  before(async () => {
    origin = createServer((_req, res) => res.end('internal secret'));
    originPort = await freePort();
    await new Promise<void>((r) => origin.listen(originPort, '127.0.0.1', () => r()));
    mesh = await startTestMesh({ CORDON_TENANT_ORIGINS: `granted=http://127.0.0.1:${originPort}` });
    deployToken = await token('deploy,read', 'evil');
    tenantAdmin = await token('admin', 'evil');
    for (const [host, tenant] of [
      ['evil.example', 'evil'],
      ['granted.example', 'granted'],
    ]) {
      const h = await mesh.cli(['hosts', 'assign', host!, '--tenant', tenant!]);
      assert.equal(h.code, 0, h.stderr);
    }
    // The bystander: tenant good, placed in standard by the operator.
    const r = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--tenant', 'good', '--cordon', 'standard', '--route', '*/good/hello*']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
  });

  test('item 9: a tenant-bound admin token declaring the admin API (a private origin) gets 403; its worker cannot read it; the operator can grant it', async () => {
    const adminOrigin = mesh.adminUrl; // http://127.0.0.1:<admin port>
    const port = new URL(adminOrigin).port;
    for (const o of [
      adminOrigin,
      `http://[::ffff:127.0.0.1]:${port}`,
      `http://2130706433:${port}`,
      `http://localhost:${port}`,
      `http://admin.internal:${port}`,
      `http://127.0.0.1:${originPort}`,
    ]) {
      const res = await call(tenantAdmin, 'POST', '/v1/workers', {
        name: 'spy',
        mainModule: 'w.js',
        modules: [{ name: 'w.js', type: 'esm', content: ECHO }],
        origins: [o],
      });
      assert.equal(res.status, 403, o);
      assert.match(((await res.json()) as { error: string }).error, /not public .*only an admin-scoped token not bound to a tenant may declare it/, o);
    }
    // A public name is accepted but trusts nothing: the worker still cannot reach anything private.
    const d = await runAs(tenantAdmin, [
      'deploy',
      'examples/fetcher/index.ts',
      '--name',
      'spy',
      '--route',
      'evil.example/evil/spy*',
      '--origin',
      `http://example.com:${port}`,
    ]);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the spy', async () => (await get('evil/spy')).status === 200 || undefined);
    for (const url of [`${adminOrigin}/v1/drift`, `http://localhost:${port}/v1/workers`, `http://127.0.0.1:${originPort}/`]) {
      const r = await fetchVia('evil/spy', url);
      assert.match(r.error ?? '', /egress denied/, url);
      assert.equal(r.body, undefined, url);
    }
    // The operator grants a private origin to one tenant: by an unbound admin token, or by the allow-list.
    const op = await mesh.cli([
      'deploy',
      'examples/fetcher/index.ts',
      '--name',
      'ops',
      '--tenant',
      'evil',
      '--route',
      'evil.example/evil/ops*',
      '--origin',
      `http://127.0.0.1:${originPort}`,
    ]);
    assert.equal(op.code, 0, op.stderr);
    const grantedAdmin = await token('admin', 'granted');
    const g = await runAs(grantedAdmin, [
      'deploy',
      'examples/fetcher/index.ts',
      '--name',
      'ops',
      '--route',
      'granted.example/granted/ops*',
      '--origin',
      `http://127.0.0.1:${originPort}`,
    ]);
    assert.equal(g.code, 0, g.stderr);
    const other = await runAs(grantedAdmin, ['deploy', 'examples/fetcher/index.ts', '--name', 'ops2', '--origin', adminOrigin]);
    assert.equal(other.code, 1, 'the allow-list grants its origins only');
    await waitFor('the granted workers', async () => ((await get('evil/ops')).status === 200 && (await get('granted/ops')).status === 200) || undefined);
    assert.equal((await fetchVia('evil/ops', `http://127.0.0.1:${originPort}/`)).body, 'internal secret');
    assert.equal((await fetchVia('granted/ops', `http://127.0.0.1:${originPort}/`)).body, 'internal secret');
    assert.match((await (await fetch(`${mesh.httpUrl}/good/hello`)).text()).toLowerCase(), /hello/, 'the bystander is unharmed');
  });

  test('item 10: a tenant deploys only to the cordons the operator granted it (default: the least trusted)', async () => {
    const shown = await runAs(tenantAdmin, ['cordons', 'evil']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^evil\tuntrusted\t\(default/);
    const refused = await runAs(deployToken, ['deploy', 'examples/hello/index.ts', '--name', 'climber', '--cordon', 'standard']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /403 tenant evil may not use cordon standard \(it may use: untrusted\)/);
    assert.equal(await cordonOf('evil/climber'), undefined, 'nothing was stored');
    // Without --cordon, the tenant's own: the least trusted.
    await runAsOk(deployToken, ['deploy', 'examples/hello/index.ts', '--name', 'climber']);
    assert.equal(await cordonOf('evil/climber'), 'untrusted');
    // A tenant-bound admin cannot grant itself more.
    const self = await call(tenantAdmin, 'PUT', '/v1/tenants/evil/cordons', { cordons: ['standard', 'untrusted'] });
    assert.equal(self.status, 403);
    assert.equal((await runAs(tenantAdmin, ['cordons', 'evil', '--allow', 'standard'])).code, 1);
    // The operator grants it; then it may.
    const grant = await mesh.cli(['cordons', 'evil', '--allow', 'standard', '--allow', 'untrusted']);
    assert.equal(grant.code, 0, grant.stderr);
    assert.equal(grant.stdout, 'evil\tstandard,untrusted\n');
    await runAsOk(deployToken, ['deploy', 'examples/hello/index.ts', '--name', 'climber', '--cordon', 'standard']);
    assert.equal(await cordonOf('evil/climber'), 'standard');
    assert.equal((await call(root(), 'PUT', '/v1/tenants/evil/cordons', { cordons: ['q-000000000000'] })).status, 400, 'only configured cordons');
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout, /tenant\.cordons\tevil\tok\t\{"cordons":\["standard","untrusted"\]\}/);
    assert.equal(await cordonOf('good/hello'), 'standard', 'the bystander stays where the operator put it');
    // Back to the default for the tests below.
    await mesh.cliOk(['cordons', 'evil', '--allow', 'untrusted']);
  });

  test('item 10: a quarantined worker redeployed under a new name (other vars) lands in quarantine; a whole tenant can be held', async () => {
    assert.equal(
      (await runAs(deployToken, ['deploy', 'examples/notes/index.ts', '--name', 'snoop', '--route', 'evil.example/evil/snoop*', '--storage', 'DB'])).code,
      0,
    );
    await waitFor('snoop', async () => (await get('evil/snoop?op=list')).status === 200 || undefined);
    // 20 refused capability calls move it.
    for (let i = 0; i < 20; i++) assert.equal((await get('evil/snoop?op=sql', { method: 'POST', body: 'PRAGMA database_list' })).status, 409);
    const q = await waitFor('snoop quarantined', async () => /^evil\/snoop\t(q-[0-9a-f]{12})/m.exec((await mesh.cli(['quarantine', 'list'])).stdout)?.[1]);
    // The same code under a new name, with other vars and routes: held in the same quarantine.
    const again = await runAs(deployToken, [
      'deploy',
      'examples/notes/index.ts',
      '--name',
      'snoop-two',
      '--route',
      'evil.example/evil/two*',
      '--storage',
      'DB',
      '--var',
      'X=1',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await cordonOf('evil/snoop-two'), q);
    assert.match(
      (await mesh.cli(['quarantine', 'list'])).stdout,
      new RegExp(`^evil/snoop-two\\t${q}\\t\\(was untrusted\\)\\t.*the same code as quarantined evil/snoop`, 'm'),
    );
    await waitFor(
      'snoop-two served from the quarantine process',
      async () => ((await get('evil/two?op=list')).status === 200 && mesh.servicePids().has(`sandbox:${q}`)) || undefined,
    );
    // Other code of the tenant is not held by this.
    await runAsOk(deployToken, ['deploy', 'examples/hello/index.ts', '--name', 'other']);
    assert.equal(await cordonOf('evil/other'), 'untrusted');

    // The whole tenant: only the operator may hold it or let it go.
    assert.equal((await call(tenantAdmin, 'DELETE', '/v1/tenants/evil/quarantine')).status, 403);
    assert.equal((await call(tenantAdmin, 'POST', '/v1/tenants/evil/quarantine', {})).status, 403);
    const held = await mesh.cli(['quarantine', 'tenant', 'evil', '--reason', 'abuse report']);
    assert.equal(held.code, 0, held.stderr);
    const tq = /in (q-[0-9a-f]{12})/.exec(held.stdout)![1]!;
    assert.equal(await cordonOf('evil/other'), tq);
    assert.equal(await cordonOf('evil/snoop'), q, 'a worker already held stays where it is');
    await runAsOk(deployToken, ['deploy', 'examples/echo/index.ts', '--name', 'fresh']);
    assert.equal(await cordonOf('evil/fresh'), tq, 'new code of a held tenant is held too');
    assert.match((await mesh.cli(['quarantine', 'list'])).stdout, new RegExp(`^tenant evil\\t${tq}\\t.*abuse report`, 'm'));
    assert.equal(await cordonOf('good/hello'), 'standard', 'the bystander is not touched');
    assert.match((await (await fetch(`${mesh.httpUrl}/good/hello`)).text()).toLowerCase(), /hello/);

    const released = await mesh.cli(['quarantine', 'release-tenant', 'evil']);
    assert.equal(released.code, 0, released.stderr);
    assert.equal(await cordonOf('evil/other'), 'untrusted');
    assert.equal(await cordonOf('evil/fresh'), 'untrusted');
    assert.equal(await cordonOf('evil/snoop'), q, 'released with the tenant only what the tenant held');
  });
});
