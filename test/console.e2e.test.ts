/**
 * console through the real mesh: a worker deployed with the CLI logs values, and `cordon logs` shows
 * them as workerd prints them (util.inspect's format, formatted in the sandbox from what the isolate
 * describes), not as JSON.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const WORKER = `
class Point { constructor() { this.x = 1; this.y = 2 } }
export default {
  fetch() {
    const cyc = { name: 'loop' }; cyc.self = cyc;
    console.log('plain', 'strings');
    console.log({ a: [1, { b: 'c' }], m: new Map([['k', new Set([1])]]) });
    console.warn('%d items for %s', 3, 'you', new Point());
    console.error(new TypeError('went wrong'));
    console.info(cyc, [undefined, null, -0, 10n]);
    return new Response('logged');
  },
};`;

describe('console lines as workerd prints them', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-console-'));
  before(async () => {
    writeFileSync(join(dir, 'index.js'), WORKER);
    writeFileSync(join(dir, 'wrangler.json'), JSON.stringify({ name: 'talker', main: 'index.js', compatibility_date: '2025-06-01', route: '*/talk*' }));
    mesh = await startTestMesh();
    const r = await mesh.cli(['deploy', '--tenant', 'acme'], dir);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('objects, maps, class instances, errors, cycles and formats', async () => {
    await waitFor('the worker', async () => (await fetch(`${mesh.httpUrl}/talk`)).status === 200 || undefined);
    const messages = await waitFor('its log lines', async () => {
      const lines = (await mesh.cli(['logs', 'acme/talker'])).stdout.split('\n').filter(Boolean);
      const m = lines.map((l) => JSON.parse(l) as { level: string; message: string });
      return m.length >= 5 ? m.slice(-5) : undefined;
    });
    assert.deepEqual(
      messages.map((m) => m.level),
      ['log', 'log', 'warn', 'error', 'info'],
    );
    assert.equal(messages[0]!.message, 'plain strings');
    assert.equal(messages[1]!.message, "{ a: [ 1, { b: 'c' } ], m: Map(1) { 'k' => Set(1) { 1 } } }");
    assert.equal(messages[2]!.message, '3 items for you Point { x: 1, y: 2 }');
    assert.match(messages[3]!.message, /^TypeError: went wrong\n {4}at Object\.fetch \(worker:\/\/\/worker\.js:\d+:\d+\)$/);
    assert.equal(messages[4]!.message, "<ref *1> { name: 'loop', self: [Circular *1] } [ undefined, null, -0, 10n ]");
  });
});
