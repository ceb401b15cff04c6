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
import { RpcSession, RpcTarget, type RpcStub } from 'capnweb';
import Database from 'better-sqlite3';
import { findBwrap } from '../../lib/process-sandbox.ts';
import { ROOT, sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { objectsProject } from '../helpers/objects.ts';
import { connectUnixSession, Keyring } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { encodeValue } from '../../services/sandbox/runtime/bootstrap/tagged-values.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';
import type { ObjectAddress } from '../../schemas/durable-objects.ts';
import type { RpcPipe } from '../../schemas/service-bindings.ts';

/**
 * Our end of a Workers RPC session to an object, as a compromised sandbox holds one: every message the
 * object's side sends us is kept (`inbox`), and `session` speaks capnweb over it as an isolate would.
 */
class SessionEnd extends RpcTarget implements RpcPipe {
  readonly inbox: string[] = [];
  closed: string | undefined;
  #waiting: ((m: string) => void) | undefined;
  async send(message: string): Promise<void> {
    const w = this.#waiting;
    this.#waiting = undefined;
    if (w) w(message);
    else this.inbox.push(message);
  }
  async close(reason: string): Promise<void> {
    this.closed = reason;
  }
  /** capnweb over this end and `theirs` (the object's end): the object's main stub. */
  session(theirs: RpcStub<RpcPipe>): RpcStub<Record<string, (...a: unknown[]) => Promise<unknown>>> {
    const transport = {
      send: (m: string) => void theirs.send(m),
      receive: () => (this.inbox.length ? Promise.resolve(this.inbox.shift()!) : new Promise<string>((r) => (this.#waiting = r))),
    };
    return new RpcSession<Record<string, (...a: unknown[]) => Promise<unknown>>>(transport).getRemoteMain();
  }
}

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
    // A request kept in flight throughout, so that the isolate's request scope, and its stubs' sessions, go on.
    const holding = new AbortController();
    void fetch(`${mesh.httpUrl}/objects/hold/fenced?ms=60000`, { signal: holding.signal }).catch(() => undefined);
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
    const answer = (await slow) as { refused?: string; retryable?: boolean };
    // Its caller hears the fence's refusal (thrown in the object's code), or (the supervisor ended the session to
    // the moved instance while the call was in flight) that the call may or may not have run, an error marked
    // retryable as Cloudflare marks it; either way the value is not stored (below).
    if (/lease has moved on/.test(answer.refused ?? '')) assert.equal(answer.retryable, false);
    else
      assert.deepEqual(answer, {
        refused:
          "the Durable Object's instance ended (it moved to another sandbox process: its holder stopped answering): a call in flight on this stub may or may not have run; the stub's next call reaches the object's new instance",
        retryable: true,
      });
    // The worker's stub to the object is the isolate's one (getByName hands out one stub per object), and its
    // session was the moved instance's: the supervisor ended it when the lease moved, so the stub's next call
    // reaches the new instance at once (docs/durable-objects.md, "Calls").
    assert.equal(await get('/objects/read/fenced?key=late'), null, 'nothing of the stale write is stored');
    assert.ok((await get('/objects/alarm-state/fenced')).ran, 'the alarm ran on the new holder');
    assert.equal(await get('/objects/next/fenced'), 2, 'the object goes on with its state');
    holding.abort();
  });
});

/** The keyring a process was handed, read from its environment as a process that took it over would. */
function keyringOf(pid: number): Keyring {
  const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  return Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(environ)![1]!);
}

/**
 * A compromised sandbox process of cordon untrusted (tenant evil's) speaks to the supervisor with its
 * stolen keyring: it asks for tenant acme's objects (acme runs in cordon standard) through every door
 * it has — acme's code key, its own namespace capability with acme's id, another class of its own, the
 * alarm kind that is the supervisor's — and offers itself as an object host hoping to be handed acme's
 * objects. Each is refused; acme's objects keep their state and their instance. And one object filling
 * its database past its quota is refused at the quota, while other objects, its own tenant's and
 * acme's, write on.
 */
describe('attacks: a compromised sandbox and the per-object quota', () => {
  let mesh: TestMesh;
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    const text = await r.text();
    assert.equal(r.status, 200, `${path}: ${text}`);
    return JSON.parse(text);
  };
  const codeKeyOf = (workerId: string) => {
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
    try {
      return (db.prepare('SELECT code_key AS codeKey FROM workers WHERE id = ?').get(workerId) as { codeKey: string }).codeKey;
    } finally {
      db.close();
    }
  };

  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_QUOTA_MB: '1' });
    for (const [tenant, cordon] of [
      ['acme', 'standard'],
      ['evil', 'untrusted'],
    ] as const) {
      const dir = objectsProject();
      const file = join(dir, 'wrangler.jsonc');
      writeFileSync(file, readFileSync(file, 'utf8').replace('"*/objects/*"', `"*/${tenant}/objects/*"`));
      const r = await mesh.cli(['deploy', '--tenant', tenant, '--cordon', cordon], dir);
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

  test("an object's database is refused past its quota; other objects of its worker and of another tenant write on", async () => {
    const hog = (await get('/evil/objects/fill/hog?kb=256&max=16')) as { written: number; refused: string | null };
    assert.match(hog.refused ?? '', /database quota of 1048576 bytes exceeded; nothing of this statement was written/, JSON.stringify(hog));
    assert.ok(hog.written >= 1 && hog.written < 4, `at most 1 MiB was written: ${hog.written} values of 256 KiB`);
    // What was written before stays; the refused value is not there.
    assert.equal(((await get('/evil/objects/read/hog?key=fill-0')) as string).length, 256 * 1024);
    assert.equal(await get(`/evil/objects/read/hog?key=fill-${hog.written}`), null);
    // Each object has its own quota: another of evil's, and acme's, write as before.
    const neighbour = (await get('/evil/objects/fill/neighbour?kb=256&max=2')) as { written: number; refused: string | null };
    assert.deepEqual(neighbour, { written: 2, refused: null });
    assert.equal(await get('/acme/objects/next/quota-bystander'), 1);
    assert.equal(await get('/acme/objects/next/quota-bystander'), 2);
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
    assert.match(audit, /\tobject\tcapability\.kv\.put\tevil\/objects\tdenied\t.*database quota of 1048576 bytes exceeded/);
  });

  test("a stolen sandbox keyring reaches no other cordon's or tenant's object; the bystander is unharmed", async () => {
    assert.equal(await get('/acme/objects/next/vault'), 1);
    const victim = await get('/acme/objects/whoami/vault');
    const stolen = keyringOf(await waitFor('the untrusted sandbox', () => sandboxNodes(mesh).get('untrusted')));
    assert.equal(stolen.cordon, 'untrusted');
    const session = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolen,
      name: 'untrusted',
      expect: 'supervisor',
    });
    // The host it offers records every object it is handed.
    const handed: ObjectAddress[] = [];
    class GreedyHost extends RpcTarget {
      async call(address: ObjectAddress) {
        handed.push(address);
        return `!${encodeValue(new Error('not served'))}`;
      }
      async serve(address: ObjectAddress) {
        handed.push(address);
        throw new Error('not served');
      }
      async ping() {
        return [];
      }
      async drop() {}
    }
    try {
      // acme's code key (say it leaked) opens nothing in another cordon's session.
      await assert.rejects(async () => await session.remote.capabilities(codeKeyOf('acme/objects')), /code key refused/);
      // Its own worker's namespace works, for its own objects.
      const caps = (await session.remote.capabilities(codeKeyOf('evil/objects'))) as Record<string, any>;
      const own = await caps.COUNTER.mint('name', 'vault');
      const end = new SessionEnd();
      const object = end.session(await caps.COUNTER.connect(own.id, 'vault', end));
      const mine = (await object.whoami!()) as { id: string };
      assert.equal(mine.id, own.id);
      assert.notEqual(own.id, victim.id);
      // acme's id through evil's namespace, with or without its name, or made into evil's: refused.
      const invalid = /Invalid Durable Object ID: it was not made by this namespace/;
      await assert.rejects(async () => await caps.COUNTER.connect(victim.id, null, new SessionEnd()), invalid);
      await assert.rejects(async () => await caps.COUNTER.connect(victim.id, 'vault', new SessionEnd()), invalid);
      await assert.rejects(async () => await caps.COUNTER.mint('string', victim.id), invalid);
      // Its own id through another class of its own worker: another namespace, refused too.
      await assert.rejects(async () => await caps.OTHER.connect(own.id, null, new SessionEnd()), invalid);
      // alarm() is the supervisor's to run, never a tenant's: not callable over a session.
      await assert.rejects(async () => await object.alarm!({ retryCount: 0, isRetry: false }), /'alarm' is a reserved method/);
      await assert.rejects(async () => await caps.COUNTER.call(own.id, 'vault', 'alarm', 'alarm', '{"retryCount":0,"isRetry":false}'), /kind/);
      // A forged pipe: the caller's end must be a capability it holds, never a name or a number.
      for (const forged of ['pipe-1', -1, 7, { send: 'x' }])
        await assert.rejects(async () => await caps.COUNTER.connect(own.id, 'vault', forged as never), /caller must be a capability/);
      // A stub is a number inside one session only. evil's own Tally, held in its session to 'vault',
      // named by every small id in a session to another object: nothing is reached, the Tally is untouched.
      const tally = (await object.tally!(10)) as unknown as { add(n: number): Promise<number> };
      assert.equal(await tally.add(1), 11);
      const other = await caps.COUNTER.mint('name', 'forger');
      for (let id = -4; id <= 4; id++) {
        if (id === 0) continue; // the object itself, which it was given
        const forgerEnd = new SessionEnd();
        const forger = (await caps.COUNTER.connect(other.id, 'forger', forgerEnd)) as RpcStub<RpcPipe>;
        await forger.send(JSON.stringify(['push', ['pipeline', id, ['add'], [[5]]]]));
        await forger.send(JSON.stringify(['pull', 1])).catch(() => {}); // the session may be gone already
        await waitFor(`the forged id ${id} to be refused`, async () => forgerEnd.inbox.find((m) => m.startsWith('["abort"')), 10_000, 50);
        assert.match(forgerEnd.inbox.join(' | '), /no such entry on exports table/);
        assert.ok(!forgerEnd.inbox.some((m) => m.startsWith('["resolve"')), `nothing answered the forged id ${id}: ${forgerEnd.inbox.join(' | ')}`);
      }
      assert.equal(await tally.add(1), 12, "the Tally's state: only its holder's two calls");
      // Offered as a host, it is one of its own cordon's: acme's new and old objects never reach it.
      await session.remote.registerObjectHost(new GreedyHost() as never);
      // Once per session: offering more hosts to draw more of its cordon's objects is refused.
      await assert.rejects(async () => await session.remote.registerObjectHost(new GreedyHost() as never), /offered its object host already/);
      for (const name of ['fresh-1', 'fresh-2', 'fresh-3']) assert.equal(await get(`/acme/objects/next/${name}`), 1);
      assert.equal(await get('/acme/objects/next/vault'), 2);
      assert.deepEqual(
        handed.filter((a) => a.codeKey === codeKeyOf('acme/objects') || a.id === victim.id),
        [],
        'no object of acme was handed to the compromised process',
      );
    } finally {
      session.close();
    }
    // The bystander: the same instance, its count where acme left it; the refusals are audited.
    assert.equal((await get('/acme/objects/whoami/vault')).instance, victim.instance);
    assert.equal(await get('/acme/objects/next/vault'), 3);
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
    assert.match(audit, /sandbox:untrusted\tcodekey\.refused\tacme\/objects\tdenied/);
    assert.match(audit, /capability\.objects\.connect\tevil\/objects\tdenied/);
  });
});
