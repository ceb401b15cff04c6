import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { TenantCordons, UnknownCordonError } from './tenant-cordons.ts';

test('a tenant may use the least trusted cordon until the operator grants more; only configured cordons', () => {
  const db = new Database(':memory:');
  const t = new TenantCordons(db, ['trusted', 'standard', 'untrusted']);
  assert.deepEqual(t.allowed('acme'), { cordons: ['untrusted'], granted: false });
  assert.deepEqual(t.set('acme', ['untrusted', 'trusted']), ['trusted', 'untrusted'], 'kept most trusted first');
  assert.deepEqual(t.allowed('acme'), { cordons: ['trusted', 'untrusted'], granted: true });
  assert.deepEqual(t.allowed('other').cordons, ['untrusted'], 'per tenant');
  assert.throws(() => t.set('acme', ['q-123456789abc']), UnknownCordonError);
  // A cordon dropped from the configuration drops out of the grant; nothing left means the default.
  const later = new TenantCordons(db, ['standard', 'untrusted']);
  assert.deepEqual(later.allowed('acme'), { cordons: ['untrusted'], granted: true });
  const narrower = new TenantCordons(db, ['standard', 'sealed']);
  assert.deepEqual(narrower.allowed('acme'), { cordons: ['sealed'], granted: false });
});
