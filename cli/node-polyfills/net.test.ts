/**
 * node:net and node:tls as `deploy` bundles them, run in a real isolate (no network: the e2e and attack
 * tests connect through egress): `isIP` agrees with the host's Node on valid and invalid spellings, and
 * the synchronous refusals (bad port, no port, a Unix path, servers) are workerd's (as workerd 2026-07-30, the
 * devDependency, words them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as host from 'node:net';
import { runCompatWorker } from './testing.ts';

async function inWorker(body: string): Promise<any> {
  const res = await runCompatWorker(
    `import net from 'node:net'; import tls from 'node:tls';
     const fails = (f) => { try { f(); return 'no throw' } catch (e) { return e.name + (e.code ? ' [' + e.code + ']' : '') + ': ' + e.message } };
     export default { async fetch() { return Response.json((() => { ${body} })()) } };`,
  );
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body);
}

test('isIP, isIPv4 and isIPv6 answer as the host Node does', async () => {
  const inputs = [
    '127.0.0.1',
    '0.0.0.0',
    '255.255.255.255',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3',
    '0x7f.1',
    '::',
    '::1',
    '::ffff:10.0.0.1',
    'fe80::1%eth0',
    '2001:db8::8a2e:370:7334',
    '1:2:3:4:5:6:7:8:9',
    '[::1]',
    'example.com',
    '',
  ];
  const out = await inWorker(`return ${JSON.stringify(inputs)}.map((a) => [net.isIP(a), net.isIPv4(a), net.isIPv6(a)])`);
  assert.deepEqual(
    out,
    inputs.map((a) => [host.isIP(a), host.isIPv4(a), host.isIPv6(a)]),
  );
});

test("refused before anything is opened, with workerd's errors", async () => {
  const out = await inWorker(`return [
    fails(() => net.connect({ host: 'example.com', port: 70000 })),
    fails(() => net.connect({ host: 'example.com', port: -1 })),
    fails(() => net.connect({ host: 'example.com' })),
    fails(() => net.connect('/run/db.sock')),
    fails(() => net.createServer()),
    fails(() => new net.Server()),
    fails(() => tls.createServer()),
    fails(() => new tls.Server()),
    fails(() => tls.connect({ host: 'example.com' })),
  ]`);
  assert.deepEqual(out, [
    'Error [ERR_SOCKET_BAD_PORT]: Port should be >= 0 and < 65536. Received number.',
    'Error [ERR_SOCKET_BAD_PORT]: Port should be >= 0 and < 65536. Received number.',
    'TypeError [ERR_MISSING_ARGS]: The "options" or "port" or "path" argument must be specified',
    "TypeError [ERR_INVALID_ARG_VALUE]: The argument 'path' is not supported. Received '/run/db.sock'",
    'Error: createServer() is not implemented',
    'Error: Server is not implemented',
    'Error: Not implemented',
    'Error: Not implemented',
    'TypeError [ERR_MISSING_ARGS]: The "options" or "port" or "path" argument must be specified',
  ]);
});
