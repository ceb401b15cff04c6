/**
 * Routes go from the supervisor's hub to ingress's follower whole once, then as patches of what changed
 * (over real capnweb sessions on a MessageChannel): one deploy among 2,000 routes sends one route, and
 * ingress ends up with the table a fresh load would give, drift digest included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newMessagePortRpcSession, type RpcStub } from 'capnweb';
import { createLogger } from '../lib/log.ts';
import { RouteHub } from '../services/supervisor/route-hub.ts';
import { IngressPort } from '../services/supervisor/ports.ts';
import { RouteFollower } from '../services/ingress/route-follower.ts';
import type { HostAssignment, Route, RoutingPatch, RoutingTable } from '../schemas/routes.ts';
import type { SupervisorForIngress } from '../schemas/services.ts';
import { waitFor } from './helpers/mesh.ts';

const quiet = createLogger('test', {}, () => {});
const route = (n: number, version = 'a', pattern = `w${n}.example.com/*`): Route => ({
  pattern,
  tenant: `t${n % 7}`,
  cordon: 'standard',
  target: { workerId: `t${n % 7}/w${n}`, version: version.repeat(64), codeKey: 'k'.repeat(43) },
  order: [n, pattern],
});

/** A store whose table the test edits, a hub over it, and a follower subscribed to the hub through capnweb. */
async function wired(routes: Route[], hosts: HostAssignment[] = []) {
  let table: RoutingTable = { version: 0, routes, hosts };
  const hub = new RouteHub({ store: { routingTable: () => table }, log: quiet });
  const { port1, port2 } = new MessageChannel();
  newMessagePortRpcSession(port1, new IngressPort({ hub, drift: {} as never, metrics: {} as never }));
  const remote: RpcStub<SupervisorForIngress> = newMessagePortRpcSession<SupervisorForIngress>(port2);
  const patches: RoutingPatch[] = [];
  let refetches = 0;
  const follower = new RouteFollower(quiet, () => (refetches++, remote.routingTable()));
  // Each patch as it reaches the follower (capnweb calls the listener's method, which calls this).
  const patch = follower.patch.bind(follower);
  follower.patch = (p) => (patches.push(p), patch(p));
  follower.load(await remote.subscribeRoutes(follower.listener()));
  return {
    hub,
    follower,
    patches,
    refetches: () => refetches,
    /** Changes the store's table and publishes; resolves once the follower is at the hub's version. */
    async change(edit: (t: RoutingTable) => RoutingTable, wait = true) {
      const before = patches.length;
      table = edit(table);
      hub.publish();
      if (wait) await waitFor('the follower to catch up', () => (patches.length > before && follower.digest === hub.digest() ? true : undefined), 10_000, 5);
    },
    close() {
      port1.close();
      port2.close();
    },
  };
}

test('one deploy among 2,000 routes sends that route only; ingress matches what a whole table gives', async () => {
  const routes = Array.from({ length: 2000 }, (_, i) => route(i));
  const w = await wired(routes, [{ host: '*.t1.example', tenant: 't1' }]);
  assert.equal(w.follower.table.size, 2000);
  assert.equal(w.follower.digest, w.hub.digest());

  // A redeploy of one worker (new version): one route in the patch.
  await w.change((t) => ({ ...t, routes: t.routes.map((r) => (r.order[0] === 5 ? route(5, 'b') : r)) }));
  assert.equal(w.patches.length, 1);
  assert.deepEqual([w.patches[0]!.set.length, w.patches[0]!.removed.length, w.patches[0]!.hosts], [1, 0, undefined]);
  assert.equal(w.follower.table.match('w5.example.com', '/')?.value.target.version, 'b'.repeat(64));

  // A worker deleted, one added, hosts reassigned: each sent once.
  await w.change((t) => ({ ...t, routes: [...t.routes.filter((r) => r.order[0] !== 7), route(5000)], hosts: [{ host: '*.t2.example', tenant: 't2' }] }));
  const p = w.patches[1]!;
  assert.deepEqual([p.set.map((r) => r.order[0]), p.removed.map((o) => o[0]), p.hosts?.length], [[5000], [7], 1]);
  assert.equal(w.follower.table.match('w7.example.com', '/'), undefined);
  assert.equal(w.follower.table.match('w5000.example.com', '/')?.value.target.workerId, 't2/w5000');

  // Nothing changed: nothing sent.
  w.hub.publish();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(w.patches.length, 2);

  // A route taking a tie from a newer one keeps its place: the older wins, as in a whole table.
  const tie = (n: number) => route(n, 'a', `*/same*`);
  await w.change((t) => ({ ...t, routes: [...t.routes, tie(9000), tie(8000)] }));
  assert.equal(w.follower.table.match('x.example', '/same')?.value.order[0], 8000);
  w.close();
});

test('a lost patch makes ingress load the whole table again, and it ends up right', async () => {
  const w = await wired([route(1), route(2)]);
  // The follower loses the next patch (recorded on its way in, then dropped).
  const recorded = w.follower.patch.bind(w.follower);
  let drop = true;
  w.follower.patch = (p) => (drop ? ((drop = false), w.patches.push(p)) : recorded(p));
  await w.change((t) => ({ ...t, routes: [...t.routes, route(3)] }), false);
  await waitFor('the patch to be sent', () => (w.patches.length === 1 ? true : undefined), 10_000, 5);
  assert.equal(w.refetches(), 0, 'nothing tells ingress yet');
  assert.notEqual(w.follower.digest, w.hub.digest(), 'drift sees it meanwhile');
  await w.change((t) => ({ ...t, routes: [...t.routes, route(4)] }));
  assert.equal(w.refetches(), 1);
  assert.equal(w.follower.table.size, 4);
  assert.ok(w.follower.table.match('w3.example.com', '/'));
  w.close();
});

test('a patch handled before the table it follows is applied after it, not lost', () => {
  const follower = new RouteFollower(quiet, () => assert.fail('no reload needed'));
  follower.patch({ from: 3, to: 4, set: [route(9)], removed: [], hosts: undefined });
  follower.patch({ from: 2, to: 3, set: [route(8)], removed: [], hosts: undefined });
  follower.load({ version: 3, routes: [route(1), route(8)], hosts: [] });
  assert.equal(follower.table.size, 3);
  assert.ok(follower.table.match('w9.example.com', '/'));
});
