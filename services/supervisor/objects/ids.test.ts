import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ObjectIds, namespaceOf } from './ids.ts';

const ids = new ObjectIds(randomBytes(32));
const room = namespaceOf('acme/chat', 'Room');
const other = namespaceOf('evil/chat', 'Room');

test('a name gives the same 64-hex id every time, and a different one in another namespace', () => {
  const a = ids.fromName(room, 'lobby');
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(ids.fromName(room, 'lobby'), a);
  assert.notEqual(ids.fromName(room, 'lobby2'), a);
  assert.notEqual(ids.fromName(other, 'lobby'), a);
  assert.ok(ids.isNamed(room, a, 'lobby'));
  assert.ok(!ids.isNamed(room, a, 'lobby2'));
});

test('ids are valid in their own namespace only; made-up and altered ids are refused', () => {
  const u = ids.unique(room);
  assert.ok(ids.valid(room, u));
  assert.ok(!ids.valid(other, u), 'another tenant cannot use a copied id');
  assert.ok(!ids.valid(namespaceOf('acme/chat', 'Other'), u), 'nor another class of the same worker');
  const flipped = (u[0] === '0' ? '1' : '0') + u.slice(1);
  assert.ok(!ids.valid(room, flipped));
  assert.ok(!ids.valid(room, 'f'.repeat(64)));
  assert.ok(!ids.valid(room, 'not hex'));
  assert.ok(!new ObjectIds(randomBytes(32)).valid(room, u), 'another supervisor key mints other ids');
});

test('namespace and name cannot be shifted into each other', () => {
  assert.notEqual(ids.fromName(namespaceOf('a/b', 'C'), 'x'), ids.fromName(namespaceOf('a/b', 'Cx'), ''));
});
