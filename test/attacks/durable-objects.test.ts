/**
 * Durable Objects across tenants, through the real mesh: two tenants deploy the same worker (same
 * name, same class, same object names). An id is bound to its namespace by construction, so a tenant
 * holding another's id — copied from a response, a log, anywhere — cannot reach that object: the id is
 * refused before anything is looked up, and the refusal is audited. The bystander's objects keep their
 * state and their one instance.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBwrap } from '../../lib/process-sandbox.ts';
import { ROOT, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
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

/**
 * The lease fence with two real sandbox processes of one cordon: the object's holder is paused
 * (SIGSTOP) in the middle of a call, past its lease; the object's alarm moves it to the other process;
 * the old holder resumes (SIGCONT) and its write is refused. The value it tried to write is not there.
 * Two layers refuse it, whichever comes first on resume: the supervisor's drop() takes the instance's
 * storage away in the old process, and the storage capability refuses the old fence (a compromised
 * process would ignore the first; services/supervisor/objects/placement.test.ts proves the second alone).
 */
/** `pid` and its descendants, from /proc (bounded: a sandbox has a few processes). */
function withDescendants(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length && i < 64; i++) {
    try {
      const children = readFileSync(`/proc/${out[i]}/task/${out[i]}/children`, 'utf8').trim();
      if (children) out.push(...children.split(/\s+/).map(Number));
    } catch {
      // gone
    }
  }
  return out;
}

describe('attacks: a paused Durable Object holder cannot write after its lease moved', () => {
  let mesh: TestMesh;
  let second: ChildProcess | undefined;
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text);
  };

  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_LEASE_MS: '1500' });
    const r = await mesh.cli(['deploy'], objectsProject());
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the worker to serve', async () => (await fetch(`${mesh.httpUrl}/objects/whoami/warm`)).status === 200 || undefined);
  });
  after(async () => {
    if (second?.exitCode === null) {
      const exited = new Promise((r) => second!.once('exit', r));
      second.kill('SIGKILL');
      await exited;
    }
    await mesh?.stop();
  });

  test('SIGSTOP the holder past its lease, the object moves, SIGCONT: the stale write is refused', async () => {
    const workers = await mesh.cli(['workers']);
    const cordon = /^default\/objects\t\S+\t(\S+)/m.exec(workers.stdout)?.[1];
    assert.ok(cordon, workers.stdout);
    const holder = mesh.servicePids().get(`sandbox:${cordon}`)!;
    assert.equal(await get('/objects/next/fenced'), 1, 'the object lives in the first process');
    // A second process of the same cordon: it offers itself as an object host too.
    const flags = findBwrap() ? [] : ['--insecure-no-process-sandbox'];
    second = spawn(process.execPath, [join(ROOT, 'cli/main.ts'), 'run', 'sandbox', '--cordon', cordon, ...flags], {
      cwd: ROOT,
      env: mesh.env,
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 3000)); // its session to the supervisor (no wait shorter proves it: it serves nothing yet)
    assert.equal(second.exitCode, null, 'the second sandbox process runs');
    // The alarm fires after the lease has run out; the slow call's write comes after the holder wakes.
    await get('/objects/alarm/fenced?ms=2500');
    const slow = fetch(`${mesh.httpUrl}/objects/slow-write/fenced?ms=1000`).then((r) => r.json());
    await new Promise((r) => setTimeout(r, 300));
    // The process and everything under it (the launcher's pid may be bubblewrap's, the sandbox its child).
    const paused = withDescendants(holder);
    for (const pid of paused) process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(
        'the alarm to run in the other process',
        async () => {
          const list = await mesh.cli(['objects', 'list', 'objects']);
          return list.stdout.split('\n').some((l) => l.includes('\tfenced\t') && !l.includes('alarm ')) || undefined;
        },
        30_000,
        300,
      );
    } finally {
      for (const pid of paused) process.kill(pid, 'SIGCONT');
    }
    const answer = (await slow) as { refused?: string };
    assert.match(answer.refused ?? '', /lease has moved on/, `the old holder's write was refused: ${JSON.stringify(answer)}`);
    assert.equal(await get('/objects/read/fenced?key=late'), null, 'nothing of the stale write is stored');
    assert.ok((await get('/objects/alarm-state/fenced')).ran, 'the alarm ran on the new holder');
    assert.equal(await get('/objects/next/fenced'), 2, 'the object goes on with its state');
  });
});
