/**
 * Durable Objects across tenants, through the real mesh: two tenants deploy the same worker (same
 * name, same class, same object names). An id is bound to its namespace by construction, so a tenant
 * holding another's id — copied from a response, a log, anywhere — cannot reach that object: the id is
 * refused before anything is looked up, and the refusal is audited. The bystander's objects keep their
 * state and their one instance. (The stale-fence refusal is proven in services/supervisor/objects/placement.test.ts.)
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { objectsProject } from '../helpers/objects.ts';

describe('attacks: Durable Objects across tenants', () => {
  let mesh: TestMesh;
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text);
  };

  before(async () => {
    mesh = await startTestMesh();
    for (const tenant of ['acme', 'evil']) {
      const dir = objectsProject();
      const file = join(dir, 'wrangler.jsonc');
      writeFileSync(file, readFileSync(file, 'utf8').replace('"*/objects/*"', `"*/${tenant}/objects/*"`));
      const r = await mesh.cli(['deploy', '--tenant', tenant], dir);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor('both tenants to serve', async () => {
      const a = await fetch(`${mesh.httpUrl}/acme/objects/whoami/warm`);
      const e = await fetch(`${mesh.httpUrl}/evil/objects/whoami/warm`);
      return (a.status === 200 && e.status === 200) || undefined;
    });
  });
  after(async () => {
    await mesh?.stop();
  });

  test("another tenant's id is refused by construction; the same name is another object; the bystander is unharmed", async () => {
    assert.equal(await get('/acme/objects/next/vault'), 1);
    assert.equal(await get('/acme/objects/next/vault'), 2);
    const victim = await get('/acme/objects/whoami/vault');
    // Evil holds acme's id (say it leaked) and asks its own namespace for it.
    const stolen = await get(`/evil/objects/by-id/x?id=${victim.id}`);
    assert.match(stolen.refused ?? '', /Invalid Durable Object ID: it was not made by this namespace/);
    // A made-up id, and one altered by a digit, fare no better.
    assert.match((await get(`/evil/objects/by-id/x?id=${'a'.repeat(64)}`)).refused, /Invalid Durable Object ID/);
    const altered = (victim.id[0] === '0' ? '1' : '0') + victim.id.slice(1);
    assert.match((await get(`/evil/objects/by-id/x?id=${altered}`)).refused, /Invalid Durable Object ID/);
    // The same name in evil's namespace is evil's own object, with its own id and storage.
    const own = await get('/evil/objects/whoami/vault');
    assert.notEqual(own.id, victim.id);
    assert.equal(await get('/evil/objects/next/vault'), 1, "evil's counter starts at 1: acme's storage is not reachable");
    // The bystander: the same instance, its count untouched.
    assert.equal((await get('/acme/objects/whoami/vault')).instance, victim.instance);
    assert.equal(await get('/acme/objects/next/vault'), 3);
    // The refusal is in the audit log, against the worker that tried.
    const audit = await mesh.cli(['audit', 'tail', '--limit', '200']);
    assert.match(audit.stdout, /capability\.objects\.mint.*evil\/objects|evil\/objects.*capability\.objects\.mint/);
  });

  test("the operator lists each tenant's objects apart", async () => {
    const acme = await mesh.cli(['objects', 'list', 'acme/objects']);
    const evil = await mesh.cli(['objects', 'list', 'evil/objects']);
    assert.equal(acme.code, 0, acme.stderr);
    const victim = await get('/acme/objects/whoami/vault');
    assert.ok(acme.stdout.includes(victim.id));
    assert.ok(!evil.stdout.includes(victim.id));
  });
});
