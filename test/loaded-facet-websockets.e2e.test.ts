/**
 * A facet of a loaded class (a Dynamic Worker's Durable Object class) holding hibernatable WebSockets,
 * through the real mesh: its Worker is unloaded when idle, and the next message starts it again from the
 * code the sandbox kept in memory for it — without the parent's code being asked again — and the facet's
 * `webSocketMessage` answers. Another object's socket on the same Worker talks on; a Worker whose code does
 * not fit the operator's bound (CORDON_DYNAMIC_WORKER_KEPT_CODE_KB) cannot accept a hibernatable socket
 * in a facet, and says why. Both with the loaded Workers in the parent's process and in a loaded cordon
 * (`--loaded-cordon`). docs/durable-objects.md, "A facet of a loaded class wakes hours later".
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/loaded-facet-websockets');

describe('a facet of a loaded class takes WebSockets across its Worker’s unload', () => {
  let mesh: TestMesh;
  let strictDir: string | undefined;
  const clients: WsClient[] = [];
  const admin = (path: string) =>
    fetch(`${mesh.adminUrl}/v1/workers/default/${path}`, {
      headers: { authorization: `Bearer ${readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim()}` },
    });
  const created = async (worker: string) => {
    const r = await admin(worker);
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    return `${r.status} ${await r.text()}`;
  };
  const open = async (prefix: string, room: string, app = 'small') => {
    const c = new WsClient(`${mesh.httpUrl.replace('http:', 'ws:')}/${prefix}/ws?room=${room}&app=${app}`);
    clients.push(c);
    // A refused upgrade says why in the worker's log, not in its answer: carried into the failure.
    await c.opened.catch(async (e: Error) => {
      const { worker } = placements.find((p) => p.prefix === prefix)!;
      throw new Error(`${e.message}\n${worker}'s log:\n${await (await admin(`${worker}/logs`)).text()}`);
    });
    return c;
  };
  /** The fixture twice: its loaded Workers in the parent's own process, and in a loaded cordon (`--loaded-cordon`). */
  const placements = [
    { prefix: 'lfw', worker: 'loaded-facet-websockets', where: 'in the parent’s process' },
    { prefix: 'lfs', worker: 'loaded-facet-websockets-strict', where: 'in a loaded cordon' },
  ];

  before(async () => {
    // Objects unloaded after a second idle, loaded Workers after two; 16 KiB of code kept for hibernated facets.
    mesh = await startTestMesh({
      CORDON_OBJECT_IDLE_SECONDS: '1',
      CORDON_OBJECT_LEASE_MS: '900',
      CORDON_DYNAMIC_WORKER_IDLE_SECONDS: '2',
      CORDON_DYNAMIC_WORKER_KEPT_CODE_KB: '16',
    });
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], FIXTURE);
    assert.equal(r.code, 0, r.stderr);
    // The same code as another worker, on its own path, with its loaded Workers in the untrusted cordon.
    strictDir = mkdtempSync(join(tmpdir(), 'cordon-lfs-'));
    cpSync(join(FIXTURE, 'index.js'), join(strictDir, 'index.js'));
    const config = readFileSync(join(FIXTURE, 'wrangler.jsonc'), 'utf8');
    writeFileSync(join(strictDir, 'wrangler.jsonc'), config.replace('"loaded-facet-websockets"', `"${placements[1]!.worker}"`).replace('*/lfw/*', '*/lfs/*'));
    const strict = await mesh.cli(['deploy', '--config', 'wrangler.jsonc', '--cordon', 'standard', '--loaded-cordon', 'untrusted'], strictDir);
    assert.equal(strict.code, 0, strict.stderr);
    for (const { prefix } of placements)
      await waitFor('the fixture to serve', async () => ((await fetch(`${mesh.httpUrl}/${prefix}/asked`)).status === 200 ? true : undefined), 30_000);
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await mesh?.stop();
    if (strictDir) rmSync(strictDir, { recursive: true, force: true });
  });

  for (const { prefix, worker, where } of placements)
    test(`${where}: the Worker is unloaded while idle; a message starts it again from the kept code and the facet answers`, async () => {
      const one = await open(prefix, 'one');
      const boot = String(await one.next()).replace(/^hello /, '');
      const two = await open(prefix, 'two');
      assert.equal(await two.next(), `hello ${boot}`, 'both rooms’ facets run in the one loaded Worker');
      const loads = await waitFor('the load counted', async () => ((await created(worker)) >= 1 ? created(worker) : undefined), 10_000);
      const idleSince = Date.now();
      // Both parents are evicted (their sockets stay open)…
      await waitFor(
        'the objects to be evicted',
        async () => {
          const r = await mesh.cli(['objects', 'list', worker]);
          return (r.stdout.match(/\bidle\b/g) ?? []).length >= 2 ? true : undefined;
        },
        20_000,
        500,
      );
      // …and the Worker's isolate, idle past CORDON_DYNAMIC_WORKER_IDLE_SECONDS, is swept (every second here).
      await waitFor('the Worker to be idle thrice its idle time', () => (Date.now() - idleSince > 6000 ? true : undefined), 10_000);
      one.ws.send('ping');
      const answer = String(await one.next());
      const [, again] = /^ping from (\S+) 1$/.exec(answer) ?? assert.fail(`unexpected answer ${answer}`);
      assert.notEqual(again, boot, 'a new isolate of the Worker answered: it had been unloaded');
      // Another object's socket on the same Worker talks on, to the same new isolate (at once: it is unloaded after two seconds idle).
      two.ws.send('pong');
      assert.equal(await two.next(), `pong from ${again} 1`);
      // Made from the code kept in the sandbox: the parent's code was not asked again; the new isolate is counted.
      assert.equal(await get(`/${prefix}/asked?room=one`), '200 1');
      assert.equal(await get(`/${prefix}/asked?room=two`), '200 0');
      await waitFor('the new isolate counted', async () => ((await created(worker)) === loads + 1 ? true : undefined), 10_000);
    });

  test('code past CORDON_DYNAMIC_WORKER_KEPT_CODE_KB cannot take a hibernatable socket in a facet; the others are unharmed', async () => {
    const three = await open('lfw', 'three');
    const boot = String(await three.next()).replace(/^hello /, '');
    const refused = await get('/lfw/big?room=three');
    assert.match(refused, /^507 .*at most 16384 bytes in all \(CORDON_DYNAMIC_WORKER_KEPT_CODE_KB\)/);
    three.ws.send('still');
    assert.equal(await three.next(), `still from ${boot} 1`);
    three.ws.close(1000, 'done');
    await three.closed;
  });

  test("deleting a parent object lets go of the code its facets' sockets kept, also once it was evicted; others keep theirs", async () => {
    const five = await open('lfw', 'five', 'medium-a');
    assert.match(String(await five.next()), /^hello /);
    // 8 KB of code each: a second medium Worker does not fit beside the first (16 KiB in all).
    const fits = () => get('/lfw/accept?room=six&app=medium-b');
    assert.match(await fits(), /^507 .*\(CORDON_DYNAMIC_WORKER_KEPT_CODE_KB\)/);
    const rowOf = async (room: string) =>
      (await mesh.cli(['objects', 'list', 'loaded-facet-websockets'])).stdout.split('\n').find((l) => l.split('\t')[2] === room);
    // Evicted while idle: no lease left, so no holder to tell; the sandbox process is told all the same.
    await waitFor('room five evicted', async () => ((await rowOf('five'))?.split('\t')[3] === 'idle' ? true : undefined), 20_000, 500);
    const id = (await rowOf('five'))!.split('\t')[1]!;
    const del = await mesh.cli(['objects', 'delete', 'loaded-facet-websockets', 'Host', id]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal((await five.closed).reason, 'the Durable Object was deleted');
    assert.equal(await waitFor('the kept code let go', async () => ((await fits()).startsWith('507') ? undefined : fits()), 10_000, 250), '200 accepted');
    // Room one's socket (another object, on `small`) still talks.
    const one = clients[0]!;
    one.ws.send('still');
    assert.match(String(await one.next()), /^still from \S+ \d+$/);
  });
});
