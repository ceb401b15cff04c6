/** Large KV values in transit: whose a transfer is, what it may hold, the bounds per tenant and in all, and idle transfers dropped. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvTransit } from './kv-transit.ts';
import { KV_LIMITS } from '../../schemas/kv.ts';

test('an upload is its owner’s, holds its size exactly, and counts until closed', () => {
  const t = new KvTransit({ tenant: 100, all: 1000, idleMs: 60_000 });
  const [mine, other] = [{}, {}];
  const up = t.open(mine, 'acme', 'PUT', 10);
  assert.equal(t.inTransit('acme'), 10);
  assert.throws(() => t.append(other, up, new Uint8Array(1)), /invalid upload: no transfer of that name is open for this binding/);
  t.append(mine, up, new Uint8Array([1, 2, 3, 4]));
  assert.throws(() => t.complete(mine, up), /the upload holds 4 of its 10 bytes/);
  assert.equal(t.inTransit('acme'), 0, 'a refused upload is gone');
  const again = t.open(mine, 'acme', 'PUT', 4);
  t.append(mine, again, new Uint8Array([1, 2]));
  assert.throws(() => t.append(mine, again, new Uint8Array(3)), /goes past them/);
  const ok = t.open(mine, 'acme', 'PUT', 3);
  t.append(mine, ok, new Uint8Array([7, 8]));
  t.append(mine, ok, new Uint8Array([9]));
  assert.deepEqual([...t.complete(mine, ok)], [7, 8, 9]);
  t.close(ok);
  assert.equal(t.inTransit(), 0);
});

test('a download is read in order, a part at a time, by its owner; the last part closes it', () => {
  const t = new KvTransit({ tenant: 64 * 1024 * 1024, all: 64 * 1024 * 1024, idleMs: 60_000 });
  const owner = {};
  const value = Buffer.alloc(KV_LIMITS.partBytes + 5, 3);
  const d = t.open(owner, 'acme', 'GET', value.byteLength, value);
  assert.throws(() => t.read({}, d, 0), /invalid download/);
  assert.throws(() => t.read(owner, d, 5), /the download is at byte 0/);
  assert.equal(t.read(owner, d, 0).byteLength, KV_LIMITS.partBytes);
  assert.equal(t.read(owner, d, KV_LIMITS.partBytes).byteLength, 5);
  assert.equal(t.inTransit(), 0);
  assert.throws(() => t.read(owner, d, 0), /invalid download/);
});

test('bounds per tenant and in all: past either a 429; another tenant still has its share; idle transfers are dropped', async () => {
  const t = new KvTransit({ tenant: 30, all: 50, idleMs: 50 });
  const owner = {};
  t.open(owner, 'evil', 'PUT', 20);
  assert.throws(() => t.open(owner, 'evil', 'PUT', 11), /KV PUT failed: 429 Too many large values in transit for this tenant/);
  t.open(owner, 'acme', 'GET', 25);
  assert.throws(() => t.open(owner, 'third', 'GET', 6), /KV GET failed: 429 Too many large values in transit for this server/);
  await sleep(200);
  assert.equal(t.inTransit(), 0, 'idle transfers were dropped');
});
