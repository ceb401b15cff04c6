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
import { waitFor } from '../../test/helpers/mesh.ts';
import { startWorkerd, workerdMissing } from '../../test/helpers/workerd.ts';

const SOURCE = readFileSync(new URL('./dns.test-worker.js', import.meta.url), 'utf8');

test("node:dns: workerd's exports, argument errors, literal answers and failures", { skip: workerdMissing() }, async () => {
  const ours = await runCompatWorker(SOURCE);
  assert.equal(ours.status, 200, ours.body);
  const workerd = await startWorkerd({
    files: { 'w.js': SOURCE },
    config: (
      ports,
    ) => `const config :Workerd.Config = ( services = [ (name = "main", worker = .w) ], sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "w.js", esModule = embed "w.js") ], compatibilityDate = "2025-06-01", compatibilityFlags = ["nodejs_compat"] );`,
  });
  try {
    const theirs = await waitFor('workerd', async () => {
      const res = await fetch(workerd.url()).catch(() => undefined);
      return res?.status === 200 ? await res.text() : undefined;
    });
    assert.deepEqual(JSON.parse(ours.body), JSON.parse(theirs));
  } finally {
    workerd.stop();
  }
});

test('node:dns is there with nodejs_compat whatever the date, as in workerd', async () => {
  const source = `import { lookup } from 'node:dns';
export default { fetch: () => new Promise((r) => lookup('192.0.2.7', (err, address, family) => r(Response.json([err, address, family])))) };`;
  assert.deepEqual(JSON.parse((await runCompatWorker(source, {}, '2024-01-01')).body), [null, '192.0.2.7', 4]);
});
