import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RpcTarget } from 'capnweb';
import { Keyring, Membrane, type MeshSession } from './index.ts';
import { unixTransport, type TestEndpoint } from './testing/transports.ts';

class Store extends RpcTarget {
  reads = 0;
  read(): string {
    this.reads++;
    return 'data';
  }
  sub(): Store {
    return new Store();
  }
  async later(): Promise<Store> {
    return new Store();
  }
}

const secret = randomBytes(32);
let ep: TestEndpoint;
let listener: { close(): Promise<void> };
let grant: Membrane;
let root: Membrane;
let target: Store;
let s: MeshSession<{ store(): Store }>;

before(async () => {
  ep = await unixTransport.setup();
  listener = await ep.serve({
    keyring: Keyring.forRole(secret, 'supervisor'),
    name: 'sup',
    accept: ['sandbox'],
    mainFor: () =>
      new (class extends RpcTarget {
        store(): Store {
          return grant.wrap(target);
        }
      })(),
  });
  s = await ep.connect({ keyring: Keyring.forRole(secret, 'sandbox', 'sb'), name: 'sb', expect: 'supervisor' });
});
after(async () => {
  s.close();
  await listener.close();
  await ep.teardown();
});

test('a wrapped capability works through a real session until revoked, then every call fails', async () => {
  root = new Membrane();
  grant = new Membrane(root);
  target = new Store();
  using store = s.remote.store();
  assert.equal(await store.read(), 'data');
  using derived = await store.sub();
  assert.equal(await derived.read(), 'data');
  using promised = await store.later();
  assert.equal(await promised.read(), 'data');
  grant.revoke('worker undeployed');
  await assert.rejects(async () => store.read(), /capability revoked: worker undeployed/);
  await assert.rejects(async () => derived.read(), /capability revoked/);
  await assert.rejects(async () => promised.read(), /capability revoked/);
  assert.equal(target.reads, 1, 'the target ran nothing after revocation');
});

test('revoking a parent revokes its children; a child of a revoked parent starts revoked', () => {
  const parent = new Membrane();
  const child = new Membrane(parent);
  const reasons: string[] = [];
  child.onRevoke((r) => reasons.push(r));
  const t = new Store();
  const wrapped = child.wrap(t);
  assert.equal(wrapped.read(), 'data');
  parent.revoke('quarantine');
  assert.equal(child.revoked, true);
  assert.deepEqual(reasons, ['quarantine']);
  assert.throws(() => wrapped.read(), /capability revoked: quarantine/);
  assert.equal(new Membrane(parent).revoked, true);
  assert.throws(() => child.wrap(new Store()), /capability revoked/);
});

test('a revoked stand-in no longer references its target', () => {
  const m = new Membrane();
  const t = new Store();
  const wrapped = m.wrap(t);
  m.revoke();
  // The stand-in's own properties and prototype are not the target: nothing reaches the instance.
  assert.equal(Object.getOwnPropertyNames(wrapped).length, 0);
  assert.throws(() => (wrapped as unknown as { reads: () => unknown }).reads(), /capability revoked/, 'even data reads give nothing');
  assert.equal(wrapped instanceof Store, true, 'capnweb still sees an RpcTarget');
});

test('a stand-in its peer released is forgotten: the membrane keeps no target alive until the next revocation', async () => {
  // Found by the RPC fuzzer: every capabilities() call of a sandbox left its stand-ins, and their
  // targets, in the worker's membrane for good, so asking again and again grew the supervisor.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  grant = new Membrane();
  const targets: WeakRef<Store>[] = [];
  for (let i = 0; i < 50; i++) {
    target = new Store();
    targets.push(new WeakRef(target));
    using store = s.remote.store();
    assert.equal(await store.read(), 'data');
  }
  target = new Store();
  const deadline = Date.now() + 5000;
  let alive = targets.length;
  while (alive > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20)); // the releases travel to the server
    gc();
    alive = targets.filter((t) => t.deref()).length;
  }
  assert.equal(alive, 0, 'no released target is still referenced');
});

test('a released stand-in cannot be called, and revoking its membrane later is harmless', () => {
  const m = new Membrane();
  const wrapped = m.wrap(new Store());
  assert.equal(Symbol.dispose in wrapped, true, 'capnweb sees it as disposable');
  (wrapped as unknown as Disposable)[Symbol.dispose]();
  assert.throws(() => wrapped.read(), /capability revoked: released by its holder/);
  m.revoke('undeploy');
  assert.throws(() => wrapped.read(), /capability revoked/);
});
