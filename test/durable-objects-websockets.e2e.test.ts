/**
 * The hibernation API side by side with workerd: the same fixture (test/fixtures/projects/do-websockets)
 * runs on the real workerd and through Cordon's mesh, and both must answer alike — what the API returns
 * and throws (with workerd's messages), and a socket's life: a send before the 101, tags, the
 * attachment, binary echo, the auto-response and its timestamp, a close from each side reaching
 * webSocketClose.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { WsClient } from './helpers/ws-client.ts';
import { startWorkerd, workerdMissing } from './helpers/workerd.ts';

const FIXTURE = join(ROOT, 'test/fixtures/projects/do-websockets');
const noWorkerd = workerdMissing();

/** Everything the fixture shows at `base` (http://host:port), in order. */
async function transcript(base: string): Promise<unknown[]> {
  const out: unknown[] = [];
  // Sizes are of each runtime's own serialisation (V8's there): only the message is compared.
  out.push(JSON.parse((await (await fetch(`${base}/dows/api`)).text()).replace(/'attachment' was \d+ bytes/, "'attachment' was N bytes")));
  const ws = base.replace('http:', 'ws:');
  const ann = new WsClient(`${ws}/dows/ws?name=ann`);
  await ann.opened;
  out.push(await ann.next());
  ann.ws.send('hi');
  out.push(JSON.parse(String(await ann.next())));
  ann.ws.send(new Uint8Array([1, 2, 3]));
  out.push(JSON.parse(String(await ann.next())));
  ann.ws.send('ping');
  out.push(await ann.next());
  ann.ws.send('stamp');
  out.push(await ann.next());
  const bob = new WsClient(`${ws}/dows/ws?name=bob`);
  await bob.opened;
  out.push(await bob.next());
  bob.ws.send('count');
  out.push(JSON.parse(String(await bob.next())));
  // The object closes ann's socket; bob closes his. Only what reaches webSocketClose is logged.
  ann.ws.send('bye');
  out.push(await ann.closed);
  // (Not what bob's client hears back: workerd before 2026-04-07 does not answer a client's close, Cordon's ingress does.)
  bob.ws.close(1000, 'bob leaves');
  await bob.closed;
  const events = await waitFor('the close to reach the object', async () => {
    const e = (await (await fetch(`${base}/dows/events`)).json()) as unknown[][];
    return e.some((x) => x[1] === 'bob') ? e : undefined;
  });
  out.push(events);
  return out;
}

describe('the hibernation API, side by side with workerd', { skip: noWorkerd }, () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  test('the same fixture answers the same on workerd and on Cordon', async () => {
    const r = await mesh.cli(['deploy', '--config', 'wrangler.jsonc'], FIXTURE);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the fixture to serve', async () => (await fetch(`${mesh.httpUrl}/dows/events`)).status === 200 || undefined);
    const ours = await transcript(mesh.httpUrl);

    const workerd = await startWorkerd({
      files: { 'index.js': readFileSync(join(FIXTURE, 'index.js')) },
      stderr: Boolean(process.env.DEBUG_WORKERD),
      config: (
        ports,
        dir,
      ) => `const config :Workerd.Config = ( services = [ (name = "main", worker = .w), (name = "disk", disk = (path = "${dir}", writable = true)) ],
  sockets = [ (name = "http", address = "127.0.0.1:${ports[0]}", http = (), service = "main") ] );
const w :Workerd.Worker = ( modules = [ (name = "index.js", esModule = embed "index.js") ], compatibilityDate = "2026-01-01",
  durableObjectNamespaces = [ (className = "Sockets", uniqueKey = "sockets", enableSql = true) ], durableObjectStorage = (localDisk = "disk"),
  bindings = [ (name = "SOCKETS", durableObjectNamespace = "Sockets") ] );`,
    });
    let theirs: unknown[];
    try {
      await waitFor('workerd', async () => (await fetch(`${workerd.url()}/dows/events`).catch(() => undefined))?.status === 200 || undefined);
      theirs = await transcript(workerd.url());
    } finally {
      workerd.stop();
    }
    assert.deepEqual(ours, theirs);
    // And what that is, so that agreeing on nothing cannot pass.
    assert.equal(ours[1], 'hello before the 101');
    assert.deepEqual(ours[2], { name: 'ann', tags: ['room'], echo: 'hi', others: 1 });
    assert.equal(ours[4], 'pong');
  });
});
