/**
 * A facet of a loaded class (a Dynamic Worker's Durable Object class) holding hibernatable WebSockets,
 * through the real mesh: its Worker is unloaded when idle, and the next message starts it again from the
 * code the sandbox kept in memory for it — without the parent's code being asked again — and the facet's
 * `webSocketMessage` answers. Another object's socket on the same Worker talks on; a Worker whose code does
 * not fit the operator's bound (CORDON_DYNAMIC_WORKER_KEPT_CODE_KB) cannot accept a hibernatable socket
 * in a facet, and says why. docs/durable-objects.md, "A facet takes WebSockets".
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/loaded-facet-websockets');

describe('a facet of a loaded class takes WebSockets across its Worker’s unload', () => {
  let mesh: TestMesh;
  const clients: WsClient[] = [];
  const created = async () => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const r = await fetch(`${mesh.adminUrl}/v1/workers/default/loaded-facet-websockets`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };
  const get = async (path: string) => {
    const r = await fetch(`${mesh.httpUrl}${path}`);
    return `${r.status} ${await r.text()}`;
  };
  const open = async (room: string) => {
    const c = new WsClient(`${mesh.httpUrl.replace('http:', 'ws:')}/lfw/ws?room=${room}`);
    clients.push(c);
    await c.opened;
    return c;
  };

  before(async () => {
    // Objects and loaded Workers unloaded after a second idle; 16 KiB of code kept for hibernated facets.
    mesh = await startTestMesh({
      CORDON_OBJECT_IDLE_SECONDS: '1',
      CORDON_OBJECT_LEASE_MS: '900',
      CORDON_DYNAMIC_WORKER_IDLE_SECONDS: '1',
      CORDON_DYNAMIC_WORKER_KEPT_CODE_KB: '16',
    });
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], FIXTURE);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the fixture to serve', async () => ((await fetch(`${mesh.httpUrl}/lfw/asked`)).status === 200 ? true : undefined), 30_000);
  });
  after(async () => {
    for (const c of clients) c.ws.terminate();
    await mesh?.stop();
  });

  test('the Worker is unloaded while idle; a message starts it again from the kept code and the facet answers', async () => {
    const one = await open('one');
    const boot = String(await one.next()).replace(/^hello /, '');
    const two = await open('two');
    assert.equal(await two.next(), `hello ${boot}`, 'both rooms’ facets run in the one loaded Worker');
    const loads = await waitFor('the load counted', async () => ((await created()) >= 1 ? created() : undefined), 10_000);
    const idleSince = Date.now();
    // Both parents are evicted (their sockets stay open)…
    await waitFor(
      'the objects to be evicted',
      async () => {
        const r = await mesh.cli(['objects', 'list', 'loaded-facet-websockets']);
        return (r.stdout.match(/\bidle\b/g) ?? []).length >= 2 ? true : undefined;
      },
      20_000,
      500,
    );
    // …and the Worker's isolate, idle past CORDON_DYNAMIC_WORKER_IDLE_SECONDS, is swept (every half second here).
    await waitFor('the Worker to be idle thrice its idle time', () => (Date.now() - idleSince > 3000 ? true : undefined), 10_000);
    one.ws.send('ping');
    const answer = String(await one.next());
    const [, again] = /^ping from (\S+) 1$/.exec(answer) ?? assert.fail(`unexpected answer ${answer}`);
    assert.notEqual(again, boot, 'a new isolate of the Worker answered: it had been unloaded');
    // Made from the code kept in the sandbox: the parent's code was not asked again; the new isolate is counted.
    assert.equal(await get('/lfw/asked?room=one'), '200 1');
    assert.equal(await get('/lfw/asked?room=two'), '200 0');
    await waitFor('the new isolate counted', async () => ((await created()) === loads + 1 ? true : undefined), 10_000);
    // Another object's socket on the same Worker talks on, to the same new isolate.
    two.ws.send('pong');
    assert.equal(await two.next(), `pong from ${again} 1`);
  });

  test('code past CORDON_DYNAMIC_WORKER_KEPT_CODE_KB cannot take a hibernatable socket in a facet; the others are unharmed', async () => {
    const three = await open('three');
    const boot = String(await three.next()).replace(/^hello /, '');
    const refused = await get('/lfw/big?room=three');
    assert.match(refused, /^507 .*at most 16384 bytes in all \(CORDON_DYNAMIC_WORKER_KEPT_CODE_KB\)/);
    three.ws.send('still');
    assert.equal(await three.next(), `still from ${boot} 1`);
    three.ws.close(1000, 'done');
    await three.closed;
  });
});
