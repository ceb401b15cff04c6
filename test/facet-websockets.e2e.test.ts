/**
 * A facet accepting WebSockets (the hibernation API), side by side with workerd (--experimental, for
 * ctx.facets): the same fixture (test/fixtures/projects/facet-websockets) answers alike on both — the
 * facet's own sockets, tags and attachments, its handlers (not its parent's), its close. And in Cordon,
 * a facet's socket keeps working across its parent's eviction: the next message starts the facet again
 * from its route, without its parent's code.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/facet-websockets');
const noWorkerd = workerdMissing();

interface State {
  parentSockets: number;
  closes: [string, string][];
  facetInstances: number;
}

/** What the fixture shows at `base`, in order. */
async function transcript(base: string): Promise<unknown[]> {
  const out: unknown[] = [];
  const ws = base.replace('http:', 'ws:');
  const ann = new WsClient(`${ws}/fws/ws?name=ann`);
  await ann.opened;
  out.push(await ann.next());
  const bob = new WsClient(`${ws}/fws/ws?name=bob`);
  await bob.opened;
  out.push(await bob.next());
  ann.ws.send('hi');
  out.push(await ann.next(), await bob.next());
  const state = (await (await fetch(`${base}/fws/state`)).json()) as State;
  out.push(state.parentSockets);
  ann.ws.send('bye');
  out.push(await ann.closed);
  out.push(
    await waitFor('the close to reach the facet', async () => {
      const s = (await (await fetch(`${base}/fws/state`)).json()) as State;
      return s.closes.length > 0 ? s.closes : undefined;
    }),
  );
  bob.ws.close(1000, 'done');
  await bob.closed;
  return out;
}

describe('a facet accepting WebSockets', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ CORDON_OBJECT_IDLE_SECONDS: '1', CORDON_OBJECT_LEASE_MS: '900' });
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], FIXTURE);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the fixture to serve', async () => (await fetch(`${mesh.httpUrl}/fws/state`)).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('the same fixture answers the same on workerd and on Cordon', { skip: noWorkerd }, async () => {
    const ours = await transcript(mesh.httpUrl);
    const workerd = await startWorkerd({
      files: { 'index.js': readFileSync(join(FIXTURE, 'index.js')) },
      experimental: true,
      stderr: Boolean(process.env.DEBUG_WORKERD),
      config: (
        ports,
        dir,
      ) => `const config :Workerd.Config = ( services = [ (name = "main", worker = .w), (name = "disk", disk = (path = "${dir}", writable = true)) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "index.js", esModule = embed "index.js") ], compatibilityDate = "2026-01-01", compatibilityFlags = ["experimental"],
  durableObjectNamespaces = [ (className = "Host", uniqueKey = "host", enableSql = true) ], durableObjectStorage = (localDisk = "disk"),
  bindings = [ (name = "HOST", durableObjectNamespace = "Host") ] );`,
    });
    let theirs: unknown[];
    try {
      await waitFor('workerd', async () => (await fetch(`${workerd.url()}/fws/state`).catch(() => undefined))?.status === 200 || undefined);
      theirs = await transcript(workerd.url());
    } finally {
      workerd.stop();
    }
    assert.deepEqual(ours, theirs);
    // And what that is, so that agreeing on nothing cannot pass.
    assert.deepEqual(ours, [
      'hello ann, 1 here',
      'hello bob, 2 here',
      'ann: hi (room,ann)',
      'ann: hi (room,ann)',
      0,
      { code: 4000, reason: 'bye ann' },
      [['closed:ann', '4000 bye ann']],
    ]);
  });

  test("a facet's socket outlives its parent's instance: the next message starts the facet again, without its parent's code", async () => {
    const state = async () => (await (await fetch(`${mesh.httpUrl}/fws/state`)).json()) as State;
    const ws = mesh.httpUrl.replace('http:', 'ws:');
    const cy = new WsClient(`${ws}/fws/ws?name=cy`);
    await cy.opened;
    assert.match(String(await cy.next()), /^hello cy/);
    const before = (await state()).facetInstances;
    // Idle past CORDON_OBJECT_IDLE_SECONDS: the object (and so its facet) is evicted; the socket stays open.
    await waitFor(
      'the object to be evicted',
      async () => {
        const r = await mesh.cli(['objects', 'list', 'facet-websockets']);
        return /idle/.test(r.stdout) ? true : undefined;
      },
      20_000,
      500,
    );
    cy.ws.send('still here');
    assert.equal(await cy.next(), 'cy: still here (room,cy)');
    assert.ok((await state()).facetInstances > before, 'a new instance of the facet answered');
    cy.ws.close(1000, 'done');
    await cy.closed;
  });
});
