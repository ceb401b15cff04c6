/**
 * A lying facet start-up route, through the real mesh. The holder of an object tells the supervisor how it
 * started each facet (class, Worker Loader binding and Worker, `ctx.id`) when it opens the facet's storage;
 * the supervisor keeps that as the route a hibernated facet's WebSocket events are started from. A
 * compromised sandbox process (its keyring taken; it offers its own object host and is handed one of its
 * tenant's objects) may lie there: another worker's loader binding, a binding of its own that is not a loader,
 * a Worker without a binding, another tenant's object id or a made-up one as the facet's `ctx.id`, an
 * oversize or malformed route, a name that is not a facet name. Each is refused (and audited); an honest
 * route is taken. The other tenant's object and the bystander are unharmed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RpcTarget, type RpcStub } from 'capnweb';
import { sandboxNodes, waitFor } from '../helpers/mesh.ts';
import { startAttackMesh, type AttackMesh } from '../helpers/attack-mesh.ts';
import { connectUnixSession, Keyring } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { encodeValue } from '../../services/sandbox/runtime/bootstrap/tagged-values.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';
import type { ObjectAddress, ObjectStorageApi } from '../../schemas/durable-objects.ts';

/** evil's worker: objects with a Worker Loader; and acme's: an object that keeps a secret, with a loader of its own. */
const EVIL = `
import { DurableObject } from 'cloudflare:workers';
export class Vault extends DurableObject {
  fetch() { return new Response(String(this.ctx.id)); }
}
export default { fetch: (req, env) => env.VAULT.getByName(new URL(req.url).searchParams.get('n') ?? 'probe').fetch(req) };
`;
const ACME = `
import { DurableObject } from 'cloudflare:workers';
export class Safe extends DurableObject {
  async fetch(req) {
    const put = new URL(req.url).searchParams.get('put');
    if (put) this.ctx.storage.kv.put('secret', put);
    return Response.json({ id: String(this.ctx.id), secret: this.ctx.storage.kv.get('secret') ?? null });
  }
}
export default { fetch: (req, env) => env.SAFE.getByName('safe').fetch(req) };
`;

function keyringOf(pid: number): Keyring {
  return Keyring.decode(/(?:^|\0)CORDON_MESH_KEYRING=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, 'utf8'))![1]!);
}

describe('attacks: a lying facet start-up route', () => {
  let attack: AttackMesh;
  before(async () => {
    attack = await startAttackMesh(
      [
        {
          tenant: 'evil',
          worker: EVIL,
          config: {
            name: 'vault',
            compatibility_date: '2026-01-01',
            routes: ['*/vault*'],
            migrations: [{ tag: 'v1', new_sqlite_classes: ['Vault'] }],
            durable_objects: { bindings: [{ name: 'VAULT', class_name: 'Vault' }] },
            worker_loaders: [{ binding: 'LOADER' }],
          },
          probe: '/vault',
        },
        {
          tenant: 'acme',
          worker: ACME,
          config: {
            name: 'safe',
            compatibility_date: '2026-01-01',
            routes: ['*/safe*'],
            migrations: [{ tag: 'v1', new_sqlite_classes: ['Safe'] }],
            durable_objects: { bindings: [{ name: 'SAFE', class_name: 'Safe' }] },
            worker_loaders: [{ binding: 'ACME_LOADER' }],
          },
          probe: '/safe?put=acme-secret',
        },
      ],
      { CORDON_OBJECT_LEASE_MS: '1000' },
    );
  });
  after(async () => {
    await attack?.stop();
  });

  test("a compromised holder's lies about how it started a facet are refused; an honest route is taken; acme is unharmed", async () => {
    const { mesh } = attack;
    const acme = async () => (await (await fetch(`${mesh.httpUrl}/safe`)).json()) as { id: string; secret: string | null };
    const acmeId = (await acme()).id;
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const worker = (await (await fetch(`${mesh.adminUrl}/v1/workers/evil/vault`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      cordon: string;
    };
    const stolen = keyringOf(await waitFor(`the ${worker.cordon} sandbox`, () => sandboxNodes(mesh).get(worker.cordon)));
    const session = await connectUnixSession<SupervisorForSandbox>(socketPath(mesh.dataDir, 'supervisor'), {
      keyring: stolen,
      name: worker.cordon,
      expect: 'supervisor',
    });
    // A host that keeps the storage of every object it is handed and says it still runs them.
    const held: { address: ObjectAddress; storage: RpcStub<ObjectStorageApi> }[] = [];
    class GreedyHost extends RpcTarget {
      async call(address: ObjectAddress, storage: RpcStub<ObjectStorageApi>) {
        held.push({ address, storage: storage.dup() });
        return `!${encodeValue(new Error('not served'))}`;
      }
      async ping() {
        return held.map((h) => `evil/vault:${h.address.className}:${h.address.id}`);
      }
      async drop() {}
    }
    try {
      await session.remote.registerObjectHost(new GreedyHost() as never);
      // New objects of evil's go to the least loaded host of its cordon: this one gets one.
      for (let i = 0; i < 20 && held.length === 0; i++) await (await fetch(`${mesh.httpUrl}/vault?n=grab-${i}`)).arrayBuffer();
      const [{ address, storage }] = held as [(typeof held)[0]];
      const honest = { className: 'Room', binding: 'LOADER', token: 'id:rooms', id: address.id, name: null };
      const refused = /a facet's start-up was refused/;
      const lies: [string, unknown, RegExp][] = [
        ["another tenant's loader binding", { ...honest, binding: 'ACME_LOADER' }, /evil\/vault has no Worker Loader binding ACME_LOADER/],
        ['a binding of its own that is not a loader', { ...honest, binding: 'VAULT' }, /has no Worker Loader binding VAULT/],
        ['a Dynamic Worker without its binding', { ...honest, binding: null }, /together, or neither/],
        ['a binding without its Dynamic Worker', { ...honest, token: null }, /together, or neither/],
        ["another tenant's object as its ctx.id", { ...honest, id: acmeId }, /neither its parent's nor an id of this worker's/],
        ['a made-up ctx.id', { ...honest, id: 'a'.repeat(64) }, /neither its parent's nor an id of this worker's/],
      ];
      const taken: string[] = [];
      for (const [what, route, reason] of lies) {
        try {
          await storage.facet('room', route as never);
          taken.push(what);
        } catch (e) {
          assert.match((e as Error).message, refused, what);
          assert.match((e as Error).message, reason, what);
        }
      }
      assert.deepEqual(taken, [], 'every lie is refused');
      // The same lies on a call of a facet of a loaded class (its identity goes to a loaded cordon with each call).
      for (const [what, route, reason] of lies) {
        const { binding, token: worker, ...identity } = route as typeof honest;
        if (binding === null || worker === null) continue;
        await assert.rejects(async () => await storage.facetIn('room', { binding, token: worker }, identity, 'rpc', 'hi', '[]'), reason, what);
      }
      // Malformed or oversize routes, and names that are not facet names, never get as far.
      const malformed: [string, string, unknown][] = [
        ['an oversize Worker token', 'room', { ...honest, token: `id:${'x'.repeat(400)}` }],
        ['an oversize class name', 'room', { ...honest, className: 'C'.repeat(100_000) }],
        ['a field of its own', 'room', { ...honest, parent: 'acme/safe:Safe:x' }],
        ['a binding that is not a name', 'room', { ...honest, binding: '../ACME_LOADER' }],
        ['a name too long for a facet', 'r'.repeat(257), honest],
        ['an empty name', '', honest],
      ];
      for (const [what, name, route] of malformed)
        await assert.rejects(async () => await storage.facet(name, route as never), /invalid facet (startup|name)/, what);
      // The honest route is taken (and so is a ctx.id minted for one of the worker's own classes).
      const ok = (await storage.facet('room', honest as never)) as unknown as RpcStub<ObjectStorageApi>;
      assert.equal(await ok.getAlarm(), null, "the facet's storage answers");
      const caps = (await session.remote.capabilities(address.codeKey)) as unknown as Record<
        string,
        { mint(kind: string, arg: string): Promise<{ id: string }> }
      >;
      const { id: minted } = await caps.VAULT!.mint('name', 'another-vault');
      const other = (await storage.facet('room2', { ...honest, id: minted } as never)) as unknown as RpcStub<ObjectStorageApi>;
      assert.equal(await other.getAlarm(), null);
    } finally {
      session.close();
    }
    // acme's object and its secret are as they were; the bystander answers; the refusals are audited.
    assert.deepEqual(await acme(), { id: acmeId, secret: 'acme-secret' });
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
    const audit = (await mesh.cli(['audit', 'tail', '--limit', '500'])).stdout;
    assert.match(audit, /capability\.storage\.facet\tevil\/vault\tdenied/);
  });
});
