import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialize } from 'capnweb';
import { wireSize } from './wire-size.ts';

test('wireSize is at least what capnweb writes, and close to it', () => {
  const samples: unknown[] = [
    ['INSERT INTO t VALUES (?, ?)', [new Uint8Array(2 * 1024 * 1024), 'text "quoted" \\ and\nnew lines\u0001', 42, null]],
    [{ url: 'https://example.com/é', headers: [['a', 'b']], body: new Uint8Array(1000) }],
    ['ünïcødé ✓ 😀'.repeat(100)],
    [[[[1.5, -2e300, true, false]]]],
  ];
  for (const value of samples) {
    const actual = Buffer.byteLength(serialize(value), 'utf8');
    const measured = wireSize(value);
    assert.ok(measured >= actual, `measured ${measured} < actual ${actual}`);
    assert.ok(measured <= actual * 1.05 + 200, `measured ${measured} is far over actual ${actual}`);
  }
});

test('bytes count as base64: nine 2 MiB bindings are 24 MiB on the wire', () => {
  const nine = Array.from({ length: 9 }, () => new Uint8Array(2 * 1024 * 1024));
  assert.ok(wireSize(['x', nine]) > 24 * 1024 * 1024);
});
