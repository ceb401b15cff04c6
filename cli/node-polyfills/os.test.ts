/**
 * node:os as `deploy` bundles it from the 2025-09-15 compatibility date, run in a real isolate: every
 * export, answer and argument error equal to the real workerd's on the same source; before that date
 * (and with disable_nodejs_os_module) it is unenv's stand-in, as wrangler bundles it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCompatWorker } from './testing.ts';
import { answerOnWorkerd, workerdMissing } from '../../test/helpers/workerd.ts';

const SOURCE = `import os from 'node:os'; import * as ns from 'node:os';
const t = (f) => { try { return ['ok', f()] } catch (e) { return ['throws', e.name, e.code, e.message] } };
export default { async fetch() {
  const calls = {};
  for (const k of Object.keys(os).sort()) if (typeof os[k] === 'function' && !/Priority$/.test(k)) calls[k] = t(() => os[k]());
  return Response.json({
    exports: Object.keys(ns).sort(), same: ns.default === os, calls, EOL: os.EOL, devNull: os.devNull, constants: os.constants,
    userInfo: Object.keys(os.userInfo()), getPriority: [t(() => os.getPriority()), t(() => os.getPriority(0)), t(() => os.getPriority('x')), t(() => os.getPriority(null))],
    setPriority: [t(() => os.setPriority(0, 10)), t(() => os.setPriority(5)), t(() => os.setPriority({}, 1)), t(() => os.setPriority(0, () => 1)), t(() => os.setPriority(0, function named() {}))],
  });
} };`;

test("node:os from 2025-09-15: workerd's fixed answers, exports and argument errors", { skip: workerdMissing() }, async () => {
  const ours = await runCompatWorker(SOURCE, {}, '2025-09-15');
  assert.equal(ours.status, 200, ours.body);
  assert.deepEqual(JSON.parse(ours.body), JSON.parse(await answerOnWorkerd(SOURCE, '2025-09-15')));
  assert.equal(JSON.parse(ours.body).calls.hostname[1], 'localhost', 'never the host machine');
});

test("node:os before 2025-09-15 is unenv's stand-in, as wrangler bundles it", async () => {
  const before = await runCompatWorker(`import os from 'node:os'; export default { fetch: () => new Response(String(os.cpus().length)) };`, {}, '2025-09-14');
  assert.equal(before.body, '8', "unenv's eight stand-in CPUs");
});
