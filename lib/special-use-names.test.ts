import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nameRefusal, PRIVATE_USE_NAMES, SPECIAL_USE_NAMES, specialName } from './special-use-names.ts';

for (const row of [...SPECIAL_USE_NAMES, ...PRIVATE_USE_NAMES]) {
  test(`name row .${row.name} (${row.rfc}) is ${row.refused ? 'refused' : 'looked up'}, with everything under it`, () => {
    for (const name of [row.name, `${row.name}.`, row.name.toUpperCase(), `a.b.${row.name}`, `A.B.${row.name.toUpperCase()}.`]) {
      assert.equal(specialName(name), row, name);
      const why = nameRefusal(name);
      if (row.refused) assert.match(why ?? '', new RegExp(`is a special-use name \\(\\.${row.name.replace(/\./g, '\\.')}, ${row.rfc}\\)`), name);
      else assert.equal(why, undefined, name);
    }
    // Just outside: the same text not at a label boundary, and the name as a label of a public name.
    for (const name of [`x${row.name}${row.name.includes('.') ? '' : '.com'}`, `${row.name}.co.uk`]) {
      assert.notEqual(specialName(name), row, name);
      assert.equal(nameRefusal(name), undefined, name);
    }
  });
}

test('the registry rows: what is refused and what is left to the address check', () => {
  assert.deepEqual(
    SPECIAL_USE_NAMES.filter((r) => !r.refused).map((r) => r.name),
    ['example.com', 'example.net', 'example.org'],
  );
  assert.equal(SPECIAL_USE_NAMES.filter((r) => r.name.endsWith('.172.in-addr.arpa')).length, 16);
  assert.deepEqual(
    [...SPECIAL_USE_NAMES, ...PRIVATE_USE_NAMES].filter((r) => r.loopback).map((r) => r.name),
    ['localhost'],
  );
});

test('single-label and malformed names are refused; public names are left to DNS', () => {
  assert.match(nameRefusal('intranet-portal')!, /single-label name/);
  assert.match(nameRefusal('metadata.')!, /single-label name/);
  assert.match(nameRefusal('localhost..')!, /empty label/);
  assert.match(nameRefusal('a..b.com')!, /empty label/);
  assert.match(nameRefusal('.localhost')!, /empty label/);
  for (const ok of ['example.com', 'www.example.com.', 'api.github.com', 'xn--bcher-kva.ch', 'localhost.example.com'])
    assert.equal(nameRefusal(ok), undefined, ok);
});
