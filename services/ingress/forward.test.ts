import { test } from 'node:test';
import assert from 'node:assert/strict';
import { responseProblem } from './forward.ts';

test('responseProblem: only what HTTP/1.1 can carry leaves ingress, whatever a (compromised) sandbox answers', () => {
  const ok = { status: 200, statusText: 'Caf\u00e9 OK', headers: [['x-a', 'caf\u00e9\tb']], body: new Uint8Array(1) };
  assert.equal(responseProblem(ok), undefined);
  assert.equal(responseProblem({ ...ok, body: null, stream: new ReadableStream() }), undefined);
  const bad: unknown[] = [
    undefined,
    null,
    'a string',
    { ...ok, statusText: '\u20ac' },
    { ...ok, statusText: 'a\r\nx-injected: 1' },
    { ...ok, statusText: 'a\u0001' },
    { ...ok, headers: [['x-a', '\u20ac']] },
    { ...ok, headers: [['x-a', 'a\u0001']] },
    { ...ok, headers: [['x a', 'b']] },
    { ...ok, status: 700 },
    { ...ok, body: 'not bytes' },
    { ...ok, body: null, stream: {} },
  ];
  for (const r of bad) assert.equal(typeof responseProblem(r), 'string', JSON.stringify(r));
});
