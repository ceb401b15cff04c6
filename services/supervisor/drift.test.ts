import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AuditLog } from './audit.ts';
import { DriftMonitor } from './drift.ts';
import { createLogger } from '../../lib/log.ts';
import { configHash, RoutesDigest, routeText } from '../../lib/drift.ts';
import type { HostAssignment, Route } from '../../schemas/routes.ts';
import { loadSettings } from '../../lib/config.ts';

const h = (c: string) => c.repeat(64);

function monitor() {
  const audit = new AuditLog(mkdtempSync(join(tmpdir(), 'cordon-drift-')), randomBytes(32));
  let now = 1_000_000;
  const desired = { config: h('a'), routes: h('b') };
  const m = new DriftMonitor({ desired: () => desired, audit, log: createLogger('test', {}, () => {}), graceMs: 500, now: () => now });
  const actions = () => audit.tail(100).map((e) => `${e.action} ${e.target} ${(e.detail as { aspect: string }).aspect}`);
  return { m, audit, desired, actions, tick: (ms: number) => (now += ms) };
}

test('drift: a mismatch that outlasts the grace period is drift, audited once when it starts and once when it ends', () => {
  const { m, desired, actions, tick } = monitor();
  m.report('ingress', { config: h('a'), routes: h('b') });
  m.report('egress', { config: h('a') });
  assert.deepEqual(m.status().ingress!.config, 'ok');
  assert.deepEqual(m.status().ingress!.routes, 'ok');
  assert.equal(m.status().egress!.routes, undefined, 'egress has no routes to compare');

  desired.routes = h('c'); // a deploy: ingress has not got the update yet
  m.report('ingress', { config: h('a'), routes: h('b') });
  tick(200);
  m.report('ingress', { config: h('a'), routes: h('c') });
  assert.equal(m.status().ingress!.routes, 'ok', 'caught up within the grace period: no drift');

  m.report('egress', { config: h('d') });
  assert.equal(m.status().egress!.config, 'ok', 'one mismatched report is not yet drift');
  tick(600);
  m.report('egress', { config: h('d') });
  tick(600);
  m.report('egress', { config: h('d') });
  assert.equal(m.status().egress!.config, 'drift');
  m.report('egress', { config: h('a') });
  assert.equal(m.status().egress!.config, 'ok');
  assert.deepEqual(actions(), ['drift.detected egress config', 'drift.resolved egress config']);
});

test('drift: reports are validated; a peer that went away is forgotten unless it was drifting', () => {
  const { m, tick, actions } = monitor();
  for (const bad of [null, 'x', { config: 'not-a-hash' }, { config: h('a'), routes: 5 }, { config: h('a'), extra: 1 }]) {
    assert.throws(() => m.report('egress', bad), /effective state/);
  }
  m.report('sandbox:standard', { config: h('a') });
  m.forget('sandbox:standard');
  assert.deepEqual(m.status(), {});
  m.report('egress', { config: h('d') });
  tick(600);
  m.report('egress', { config: h('d') });
  m.forget('egress');
  assert.equal(m.status().egress!.config, 'drift', 'kept until a successor reports');
  m.report('egress', { config: h('a') });
  assert.deepEqual(actions(), ['drift.detected egress config', 'drift.resolved egress config']);
});

test('drift hashes: settings as resolved from environment and config file; routes in order, host assignments in any order', () => {
  assert.equal(configHash(loadSettings({})), configHash(loadSettings({})));
  assert.notEqual(configHash(loadSettings({})), configHash(loadSettings({ CORDON_ISOLATE_IDLE_SECONDS: '60' })));
  assert.notEqual(
    configHash(loadSettings({})),
    configHash(loadSettings({ CORDON_EGRESS_RATE: '50' })),
    "every service's settings are hashed, not only the mesh's",
  );
  const target = { workerId: 't/a', version: '0'.repeat(64), codeKey: 'k'.repeat(43) };
  const route = (pattern: string, order: [number, string]): Route => ({ pattern, tenant: 't', cordon: 'standard', target, order });
  const a = route('*/a*', [1, '*/a*']);
  const b = route('*/b*', [2, '*/b*']);
  const x = { host: 'x.example', tenant: 't' };
  const y = { host: '*.y.example', tenant: 'u' };
  const table = (routes: Route[], hosts: HostAssignment[]) => {
    const d = new RoutesDigest();
    for (const r of routes) d.toggle(routeText(r));
    d.setHosts(hosts);
    return d.value();
  };
  assert.equal(table([a, b], []), table([b, a], []), 'a table is a set: each route says its own order');
  assert.notEqual(table([a], []), table([route('*/a*', [3, '*/a*'])], []), 'the order settles ties between routes');
  assert.notEqual(table([a], []), table([a, b], []));
  assert.notEqual(table([a], []), table([{ ...a, target: { ...target, version: '1'.repeat(64) } }], []), 'a new version is another route');
  assert.equal(table([a], [x, y]), table([a], [y, x]));
  assert.notEqual(table([a], [x]), table([a], [x, y]));
  // Kept up route by route, it is the digest of the table as it ends up.
  const kept = new RoutesDigest();
  for (const r of [a, b]) kept.toggle(routeText(r));
  kept.toggle(routeText(a));
  kept.setHosts([x]);
  assert.equal(kept.value(), table([b], [x]));
});
