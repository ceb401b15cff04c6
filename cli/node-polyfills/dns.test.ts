/**
 * node:dns and node:dns/promises as `deploy` bundles them, run in a real isolate: exports, argument errors,
 * literal addresses, unimplemented corners and a query that cannot reach its server, equal to the real
 * workerd's on the same source (neither side has a DoH server here: both fail the query alike). Answers
 * from a DoH server are tested through a mesh (test/node-dns.e2e.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runCompatWorker } from './testing.ts';
import { answerOnWorkerd, workerdMissing } from '../../test/helpers/workerd.ts';

const SOURCE = readFileSync(new URL('./dns.test-worker.js', import.meta.url), 'utf8');

test("node:dns: workerd's exports, argument errors, literal answers and failures", { skip: workerdMissing() }, async () => {
  const ours = await runCompatWorker(SOURCE);
  assert.equal(ours.status, 200, ours.body);
  assert.deepEqual(JSON.parse(ours.body), JSON.parse(await answerOnWorkerd(SOURCE, '2025-06-01')));
});

test('node:dns is there with nodejs_compat whatever the date, as in workerd', async () => {
  const source = `import { lookup } from 'node:dns';
export default { fetch: () => new Promise((r) => lookup('192.0.2.7', (err, address, family) => r(Response.json([err, address, family])))) };`;
  assert.deepEqual(JSON.parse((await runCompatWorker(source, {}, '2024-01-01')).body), [null, '192.0.2.7', 4]);
});
