/**
 * Issue 18: the dashboard's trust boundary over HTTP, through the real mesh: sign-in, the session
 * cookie, CSRF on every state change, the security headers, tenant binding and revocation carried
 * into sessions. (What a browser renders is test/dashboard.browser.e2e.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts';

interface SignedIn {
  cookie: string;
  csrf: string;
  setCookie: string;
}

describe('dashboard: sessions, CSRF, headers', () => {
  let mesh: TestMesh;
  let root: string;
  const bearer = (token: string, method: string, path: string, body?: unknown) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  /** A request as the browser holding `s` sends it; `csrf: false` leaves the header out, as a forged request would. */
  const browser = (
    s: Pick<SignedIn, 'cookie'> & { csrf?: string },
    method: string,
    path: string,
    init: { body?: string; type?: string; headers?: Record<string, string> } = {},
  ) =>
    fetch(`${mesh.adminUrl}${path}`, {
      method,
      redirect: 'manual',
      headers: { cookie: s.cookie, ...(s.csrf ? { 'x-csrf-token': s.csrf } : {}), ...(init.type ? { 'content-type': init.type } : {}), ...init.headers },
      body: init.body,
    });
  const signInRaw = (token: string, headers: Record<string, string> = {}) =>
    fetch(`${mesh.adminUrl}/dashboard/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: mesh.adminUrl, 'sec-fetch-site': 'same-origin', ...headers },
      body: new URLSearchParams({ token }).toString(),
    });
  const signIn = async (token: string): Promise<SignedIn> => {
    const r = await signInRaw(token);
    assert.equal(r.status, 303, await r.text());
    assert.equal(r.headers.get('location'), '/');
    const setCookie = r.headers.get('set-cookie')!;
    const cookie = setCookie.split(';')[0]!;
    const s = await browser({ cookie }, 'GET', '/dashboard/session');
    assert.equal(s.status, 200);
    return { cookie, setCookie, csrf: ((await s.json()) as { csrf: string }).csrf };
  };
  const createToken = async (scopes: string, tenant?: string) => {
    const r = await mesh.cli(['tokens', 'create', '--scope', scopes, ...(tenant ? ['--tenant', tenant] : [])]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };
  const deployBody = (tenant: string, name: string) => ({
    tenant,
    name,
    mainModule: 'w.js',
    modules: [{ name: 'w.js', type: 'esm', content: 'export default { fetch() { return new Response("x") } }' }],
  });
  const workerIds = async (s: SignedIn) =>
    ((await (await browser(s, 'GET', '/v1/workers')).json()) as { workers: { id: string }[] }).workers.map((w) => w.id).sort();
  const tenantQuarantined = async (tenant: string) =>
    ((await (await bearer(root, 'GET', '/v1/quarantine')).json()) as { tenants: { tenant: string }[] }).tenants.some((t) => t.tenant === tenant);

  before(async () => {
    mesh = await startTestMesh();
    root = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    for (const t of ['acme', 'globex']) assert.equal((await bearer(root, 'POST', '/v1/workers', deployBody(t, 'api'))).status, 201);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('without a session: the page redirects to sign-in, the session and the API answer 401; a bad token signs nobody in', async () => {
    const page = await fetch(`${mesh.adminUrl}/`, { redirect: 'manual' });
    assert.equal(page.status, 303);
    assert.equal(page.headers.get('location'), '/dashboard/sign-in');
    assert.equal((await fetch(`${mesh.adminUrl}/dashboard/session`)).status, 401);
    assert.equal((await browser({ cookie: 'cordon_session=forged' }, 'GET', '/v1/workers')).status, 401);
    assert.equal((await browser({ cookie: 'cordon_session=forged', csrf: 'forged' }, 'GET', '/v1/workers')).status, 401);
    const bad = await signInRaw('cordon_not-a-token');
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.get('set-cookie'), null);
    assert.match(await bad.text(), /not valid/);
    // Bystander: a real session is unaffected.
    assert.deepEqual(await workerIds(await signIn(root)), ['acme/api', 'globex/api']);
  });

  test('the session cookie is HttpOnly, SameSite=Strict, path-wide, and the token never comes back', async () => {
    const s = await signIn(root);
    const attrs = s.setCookie.split(';').map((a) => a.trim().toLowerCase());
    assert.ok(attrs.includes('httponly'), s.setCookie);
    assert.ok(attrs.includes('samesite=strict'), s.setCookie);
    assert.ok(attrs.includes('path=/'), s.setCookie);
    // The admin port here is plain HTTP on loopback: a Secure cookie would never be sent back.
    assert.ok(!attrs.includes('secure'), s.setCookie);
    assert.ok(!s.setCookie.includes(root));
    for (const path of ['/', '/dashboard/session', '/dashboard/app.js']) {
      const r = await browser(s, 'GET', path);
      assert.equal(r.status, 200, path);
      assert.ok(!(await r.text()).includes(root), `${path} must not carry the token`);
    }
  });

  test('a sign-in posted from another site is refused (login CSRF), and no session is made', async () => {
    const forged: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'null' },
    ];
    for (const headers of forged) {
      const r = await signInRaw(root, headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.equal(r.headers.get('set-cookie'), null);
    }
    // JSON or any other body type is not a sign-in form either.
    const json = await fetch(`${mesh.adminUrl}/dashboard/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: root }),
    });
    assert.equal(json.status, 415);
    assert.equal(json.headers.get('set-cookie'), null);
  });

  test('Content-Security-Policy and the other headers on every dashboard answer, errors included', async () => {
    const s = await signIn(root);
    const answers = [
      await browser(s, 'GET', '/'),
      await browser({ cookie: '' }, 'GET', '/'),
      await browser({ cookie: '' }, 'GET', '/dashboard/sign-in'),
      await browser(s, 'GET', '/dashboard/app.js'),
      await browser(s, 'GET', '/dashboard/app.css'),
      await browser(s, 'GET', '/dashboard/session'),
      await browser(s, 'GET', '/dashboard/<script>alert(1)</script>'),
      await signInRaw('nope'),
      await signInRaw(root, { origin: 'https://evil.example' }),
    ];
    for (const r of answers) {
      const csp = r.headers.get('content-security-policy') ?? '';
      const where = `${r.status} ${r.url}`;
      assert.match(csp, /(^|; )default-src 'self'(;|$)/, where);
      assert.match(csp, /(^|; )script-src 'self'(;|$)/, where);
      assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, where);
      assert.match(csp, /(^|; )object-src 'none'(;|$)/, where);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/, where);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', where);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', where);
    }
    // The page itself has no inline script for the policy to have to allow.
    const shell = await (await browser(s, 'GET', '/')).text();
    assert.doesNotMatch(shell, /<script(?![^>]*\bsrc=)[^>]*>/);
    assert.doesNotMatch(shell, /\son\w+=/);
    // An unknown path echoed back is plain text, never HTML.
    assert.match(answers[6]!.headers.get('content-type')!, /^text\/plain/);
  });

  test('a state change with the session cookie but without its CSRF token is refused, and nothing changes', async () => {
    const s = await signIn(root);
    const other = await signIn(root);
    assert.equal((await bearer(root, 'POST', '/v1/tenants/globex/quarantine', { reason: 'held by the test' })).status, 201);

    // A forged request carries the cookie (a same-site page, or a browser without SameSite) but cannot read the CSRF token.
    const forged = [
      await browser({ cookie: s.cookie }, 'DELETE', '/v1/tenants/globex/quarantine'),
      await browser({ cookie: s.cookie, csrf: other.csrf }, 'DELETE', '/v1/tenants/globex/quarantine'),
      await browser({ cookie: s.cookie, csrf: 'x' }, 'DELETE', '/v1/tenants/globex/quarantine'),
      await browser({ cookie: s.cookie }, 'POST', '/v1/workers', { type: 'text/plain', body: JSON.stringify(deployBody('acme', 'planted')) }),
      await browser({ cookie: s.cookie }, 'POST', '/v1/workers', { type: 'application/x-www-form-urlencoded', body: 'name=planted' }),
      await browser({ cookie: s.cookie }, 'POST', '/v1/tokens', { type: 'text/plain', body: JSON.stringify({ scopes: ['admin'] }) }),
      // Reads too: a session authenticates an API call only with its token.
      await browser({ cookie: s.cookie }, 'GET', '/v1/workers'),
    ];
    for (const r of forged) assert.equal(r.status, 403, `${r.url}: ${await r.text()}`);
    assert.ok(await tenantQuarantined('globex'), 'the quarantine still holds');
    assert.deepEqual(await workerIds(s), ['acme/api', 'globex/api'], 'nothing was deployed');
    const tokens = ((await (await bearer(root, 'GET', '/v1/tokens')).json()) as { tokens: unknown[] }).tokens;
    // Signing out also needs it: a forged sign-out leaves the session alive.
    assert.equal((await browser({ cookie: s.cookie }, 'POST', '/dashboard/sign-out')).status, 403);
    assert.equal((await browser(s, 'GET', '/v1/workers')).status, 200);

    // The same call with the session's own CSRF token goes through (so the refusals above were the CSRF check).
    assert.equal((await browser(s, 'DELETE', '/v1/tenants/globex/quarantine')).status, 200);
    assert.ok(!(await tenantQuarantined('globex')));
    assert.equal(((await (await bearer(root, 'GET', '/v1/tokens')).json()) as { tokens: unknown[] }).tokens.length, tokens.length, 'no token was minted');
    // Bystander: the other tenant's worker still serves.
    assert.equal((await bearer(root, 'GET', '/v1/workers/acme/api')).status, 200);
  });

  test('a rollback from a session without its CSRF token is refused and the version stays; versions show var names, never values, and only to the tenant', async () => {
    const secret = 'var-value-that-must-not-show';
    const v2 = { ...deployBody('initech', 'versioned'), vars: { SECRETISH: secret } };
    assert.equal((await bearer(root, 'POST', '/v1/workers', deployBody('initech', 'versioned'))).status, 201);
    const first = ((await (await bearer(root, 'GET', '/v1/workers/initech/versioned')).json()) as { version: string }).version;
    assert.equal((await bearer(root, 'POST', '/v1/workers', v2)).status, 201);
    const current = async () => ((await (await bearer(root, 'GET', '/v1/workers/initech/versioned')).json()) as { version: string }).version;
    const second = await current();
    assert.notEqual(first, second);

    const s = await signIn(root);
    const other = await signIn(root);
    const body = JSON.stringify({ version: first });
    const forged = [
      await browser({ cookie: s.cookie }, 'POST', '/v1/workers/initech/versioned/rollback', { type: 'application/json', body }),
      await browser({ cookie: s.cookie }, 'POST', '/v1/workers/initech/versioned/rollback', { type: 'text/plain', body }),
      await browser({ cookie: s.cookie, csrf: other.csrf }, 'POST', '/v1/workers/initech/versioned/rollback', { type: 'application/json', body }),
    ];
    for (const r of forged) assert.equal(r.status, 403, await r.text());
    assert.equal(await current(), second, 'the version did not change');

    // A tenant session rolls back nothing of another tenant, nor reads its versions' settings.
    const globex = await signIn(await createToken('read,deploy', 'globex'));
    assert.equal((await browser(globex, 'POST', '/v1/workers/initech/versioned/rollback', { type: 'application/json', body })).status, 403);
    assert.equal((await browser(globex, 'GET', '/v1/workers/initech/versioned/versions')).status, 403);
    // Nor finds another tenant's instance by id (the workflows page's search).
    assert.equal((await browser(globex, 'GET', '/v1/workflows/initech/flow/instances?id=anything')).status, 403);
    assert.equal(await current(), second);

    // What the versions page diffs: each version's settings, var names but not their values.
    const answer = await (await browser(s, 'GET', '/v1/workers/initech/versioned/versions')).text();
    assert.ok(!answer.includes(secret), 'no var value in the versions answer');
    const { versions } = JSON.parse(answer) as { versions: { version: string; current: boolean; settings: { vars: string[]; limits: object } }[] };
    assert.deepEqual(
      versions.map((v) => [v.version, v.current, v.settings.vars]),
      [
        [second, true, ['SECRETISH']],
        [first, false, []],
      ],
    );

    // With its CSRF token the same session rolls back (so the refusals above were the CSRF check).
    assert.equal((await browser(s, 'POST', '/v1/workers/initech/versioned/rollback', { type: 'application/json', body })).status, 200);
    assert.equal(await current(), first);
    // Bystander: the other tenant's worker still serves.
    assert.equal((await bearer(root, 'GET', '/v1/workers/globex/api')).status, 200);
  });

  test("a tenant-bound token's session sees and touches its tenant only, through the API's own checks", async () => {
    const s = await signIn(await createToken('read,workflows,deploy', 'acme'));
    const info = (await (await browser(s, 'GET', '/dashboard/session')).json()) as { tenant: string; scopes: string[] };
    assert.equal(info.tenant, 'acme');
    assert.deepEqual(await workerIds(s), ['acme/api']);
    assert.equal((await browser(s, 'GET', '/v1/workers/globex/api')).status, 403);
    assert.equal((await browser(s, 'GET', '/v1/workflows/globex')).status, 403);
    assert.equal((await browser(s, 'GET', '/v1/audit')).status, 403);
    assert.equal((await browser(s, 'GET', '/v1/quarantine')).status, 403);
    assert.equal((await browser(s, 'DELETE', '/v1/workers/globex/api')).status, 403);
    assert.equal((await browser(s, 'POST', '/v1/workers', { type: 'application/json', body: JSON.stringify(deployBody('globex', 'planted')) })).status, 403);
    // Bystander: globex is untouched.
    const all = ((await (await bearer(root, 'GET', '/v1/workers')).json()) as { workers: { id: string }[] }).workers
      .map((w) => w.id)
      .filter((id) => !id.startsWith('initech/'))
      .sort();
    assert.deepEqual(all, ['acme/api', 'globex/api']);
  });

  test("revoking a token ends its sessions; signing out ends the server's session, not just the cookie", async () => {
    const token = await createToken('read');
    const s = await signIn(token);
    const bystander = await signIn(root);
    assert.equal((await browser(s, 'GET', '/v1/workers')).status, 200);
    const id = ((await (await bearer(root, 'GET', '/v1/tokens')).json()) as { tokens: { tokenId: string }[] }).tokens.at(-1)!.tokenId;
    assert.equal((await bearer(root, 'DELETE', `/v1/tokens/${id}`)).status, 200);
    assert.equal((await browser(s, 'GET', '/v1/workers')).status, 401);
    assert.equal((await browser(s, 'GET', '/dashboard/session')).status, 401);
    assert.equal((await browser(s, 'GET', '/')).status, 303);
    assert.equal((await signInRaw(token)).status, 401, 'nor can it sign in again');

    const out = await browser(bystander, 'POST', '/dashboard/sign-out');
    assert.equal(out.status, 200);
    assert.match(out.headers.get('set-cookie')!, /Max-Age=0/);
    // The old cookie, replayed (a copy an attacker kept), no longer works.
    assert.equal((await browser(bystander, 'GET', '/v1/workers')).status, 401);
    assert.equal((await browser(bystander, 'GET', '/')).status, 303);
    // Bystander: the token itself still works for the API.
    assert.equal((await bearer(root, 'GET', '/v1/workers')).status, 200);
  });
});
