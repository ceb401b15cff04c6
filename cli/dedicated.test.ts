import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dedicatedCordons } from './dedicated.ts';

test("the dedicated cordons' list keeps only valid cordon names and inspector token hashes", () => {
  const hash = 'a'.repeat(64);
  assert.deepEqual(dedicatedCordons({ dynamic: ['q-1', 'd-2', '../x', 'A', 7, ''], inspector: { 'd-2': hash, 'd-3': 'short', 'd-4': 5 } }), {
    dynamic: ['q-1', 'd-2'],
    inspector: { 'd-2': hash },
  });
  for (const bad of [undefined, null, 'text', [], { dynamic: 'q-1' }]) assert.deepEqual(dedicatedCordons(bad), { dynamic: [], inspector: {} });
});
