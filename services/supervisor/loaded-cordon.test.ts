import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadedCordonOf } from './loaded-cordon.ts';

test('loaded cordon: only ever less trusted than where the worker runs now; else its own process', () => {
  const deps = { cordons: ['trusted', 'standard', 'untrusted'], fallback: undefined };
  assert.equal(loadedCordonOf(deps, {}, 'standard'), undefined, 'no choice, no default: its own process');
  assert.equal(loadedCordonOf(deps, { loadedCordon: 'untrusted' }, 'standard'), 'untrusted');
  assert.equal(loadedCordonOf(deps, { loadedCordon: 'untrusted' }, 'trusted'), 'untrusted');
  assert.equal(loadedCordonOf(deps, { loadedCordon: 'standard' }, 'standard'), undefined, 'the same cordon: its own process');
  // Moved to a less trusted cordon later (an admin, a redeploy): never loaded into a more trusted one.
  assert.equal(loadedCordonOf(deps, { loadedCordon: 'standard' }, 'untrusted'), undefined);
  // Quarantined (a cordon made for it, not configured): its loaded Workers stay with it.
  assert.equal(loadedCordonOf(deps, { loadedCordon: 'untrusted' }, 'q-acme-platform'), undefined);
  // The operator's default applies to workers that chose none, on the same terms.
  const withDefault = { ...deps, fallback: 'untrusted' };
  assert.equal(loadedCordonOf(withDefault, {}, 'trusted'), 'untrusted');
  assert.equal(loadedCordonOf(withDefault, {}, 'untrusted'), undefined);
  assert.equal(loadedCordonOf(withDefault, { loadedCordon: 'standard' }, 'trusted'), 'standard', "the worker's own choice first");
});
