import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowError } from './errors.ts';
import { InstanceStore, type InstanceRef } from './instance-store.ts';

const HOST = { worker: 'acme/w', version: 'v1', className: 'Flow', params: null };

async function withInstance(now = 1000) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-is-'));
  const store = new InstanceStore(dir);
  const ref: InstanceRef = { tenant: 'acme', workflow: 'flow', id: 'one' };
  await store.write('acme', (tx) => {
    tx.declare('acme/w', { name: 'flow', className: 'Flow' });
    tx.createInstance(ref, { ...HOST, now });
  });
  return { dir, store, ref };
}

test('one database per tenant: tenants() lists them, instances of one are not found in another, and a bad tenant name never becomes a file name', async () => {
  const { dir, store, ref } = await withInstance();
  await store.write('globex', (tx) => tx.declare('globex/w', { name: 'flow', className: 'Other' }));
  writeFileSync(join(dir, 'notes.txt'), '');
  writeFileSync(join(dir, 'Upper.db'), '');
  assert.deepEqual(store.tenants().sort(), ['acme', 'globex']);
  assert.equal(store.instance(ref)?.status, 'queued');
  assert.equal(store.instance({ ...ref, tenant: 'globex' }), undefined);
  assert.deepEqual(store.host({ tenant: 'globex', workflow: 'flow' }), { worker: 'globex/w', className: 'Other' });
  assert.throws(
    () => store.instance({ ...ref, tenant: '../acme' }),
    (e: WorkflowError) => e.status === 400 && /bad tenant name/.test(e.message),
  );
  assert.equal(existsSync(join(dir, '..', 'acme.db')), false);
  store.close();
});

test('an instance id is created once; status changes apply only from the status they leave', async () => {
  const { store, ref } = await withInstance();
  let again = true;
  let woke = true;
  await store.write('acme', (tx) => {
    again = tx.createInstance(ref, { ...HOST, now: 2000 });
    woke = tx.wake(ref, 2000); // queued, not waiting
    tx.sleep(ref, 9000, 2000); // not running: no effect
  });
  assert.equal(again, false);
  assert.equal(woke, false);
  assert.equal(store.state(ref), 'queued');
  await store.write('acme', (tx) => {
    tx.start(ref, 3000);
    tx.sleep(ref, 9000, 3000);
  });
  assert.equal(store.instance(ref)?.wake_at, 9000);
  await store.write('acme', (tx) => {
    woke = tx.wake(ref, 9000);
    tx.complete(ref, '"out"', 9000);
    tx.fail(ref, { name: 'Error', message: 'too late' }, 9000); // complete already: no effect
  });
  assert.equal(woke, true);
  const row = store.instance(ref)!;
  assert.deepEqual([row.status, row.output, row.error_name, row.wake_at], ['complete', '"out"', null, null]);
  store.close();
});

test('steps keep the order first reached; events are taken oldest first; a reset erases both and queues the instance', async () => {
  const { store, ref } = await withInstance();
  const a = { ...ref, name: 'a', count: 1 };
  const nap = { ...ref, name: 'nap', count: 1 };
  await store.write('acme', (tx) => {
    tx.start(ref, 1000);
    tx.addStep(nap, { type: 'sleep', status: 'waiting', now: 1000, wakeAt: 5000 });
    tx.addStep(a, { type: 'do', status: 'running', attempts: 1, now: 1000 });
    tx.retryLater(a, { name: 'Error', message: 'first' }, 2000);
    tx.addEvent(ref, 'go', '1', 1100);
    tx.addEvent(ref, 'go', '2', 1200);
  });
  assert.equal(store.doSteps(ref), 1);
  assert.equal(store.waitsFor(ref, 'go'), false);
  await store.write('acme', (tx) => {
    tx.retryStep(a, 2);
    tx.completeStep(a, '"done"', 2500);
  });
  assert.deepEqual(
    store.steps(ref).map((s) => [s.name, s.type, s.status, s.attempts, s.value, s.error_name]),
    [
      ['nap', 'sleep', 'waiting', 0, null, null],
      ['a', 'do', 'complete', 2, '"done"', null],
    ],
  );
  const first = store.nextEvent(ref, 'go')!;
  assert.equal(first.payload, '1');
  await store.write('acme', (tx) => tx.consumeEvent(first.seq));
  assert.equal(store.nextEvent(ref, 'go')?.payload, '2');
  await store.write('acme', (tx) => tx.reset(ref, 3000));
  assert.deepEqual(store.steps(ref), []);
  assert.equal(store.nextEvent(ref, 'go'), undefined);
  assert.equal(store.state(ref), 'queued');
  store.close();
});

test('a list is newest first, by status if asked, and limited; counts are per status', async () => {
  const { store } = await withInstance(1000);
  const wf = { tenant: 'acme', workflow: 'flow' };
  await store.write('acme', (tx) => {
    tx.createInstance({ ...wf, id: 'two' }, { ...HOST, now: 2000 });
    tx.createInstance({ ...wf, id: 'three' }, { ...HOST, now: 3000 });
    tx.setStatus({ ...wf, id: 'two' }, 'paused', 3000);
  });
  assert.deepEqual(
    store.list(wf, { limit: 10 }).map((r) => r.id),
    ['three', 'two', 'one'],
  );
  assert.deepEqual(
    store.list(wf, { limit: 2 }).map((r) => r.id),
    ['three', 'two'],
  );
  assert.deepEqual(
    store.list(wf, { status: 'queued', limit: 10 }).map((r) => r.id),
    ['three', 'one'],
  );
  assert.deepEqual(store.counts(wf), { paused: 1, queued: 2 });
  assert.deepEqual(
    store
      .unfinished('acme')
      .map((r) => r.id)
      .sort(),
    ['one', 'three'],
  );
  store.close();
});
