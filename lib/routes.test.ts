import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compileRoute,
  hostMatches,
  hostsOverlap,
  hostWithin,
  normalizeHostPattern,
  normalizeRoutePattern,
  parseRoutePattern,
  RoutePatternError,
  RouteTable,
  type CompiledRoute,
  type HostOwner,
  type RouteOrder,
} from './routes.ts';

/** A repeatable 0..n-1 (a 32-bit LCG in integer arithmetic, its high bits: the low bits of an LCG cycle short). */
function seeded(seed: number): (n: number) => number {
  return (n) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), (seed >>> 8) % n);
}

test('route patterns: most specific wins; hosts are matched as normalised names', () => {
  const table = new RouteTable(['*/*', '*/hello*', 'api.example.com/*', 'api.example.com/v1/*', '*.example.com/*'].map((p) => compileRoute(p, p)));
  const m = (host: string, path: string) => table.match(host, path)?.value;
  assert.equal(m('127.0.0.1', '/hello'), '*/hello*');
  assert.equal(m('127.0.0.1', '/hello/world'), '*/hello*');
  assert.equal(m('127.0.0.1', '/other'), '*/*');
  assert.equal(m('api.example.com', '/v1/users'), 'api.example.com/v1/*');
  assert.equal(m('api.example.com', '/v2'), 'api.example.com/*');
  assert.equal(m('www.example.com', '/hello'), '*.example.com/*');
  assert.equal(m('::1', '/x'), '*/*');
});

test('route patterns: no partial matches, and regex metacharacters are literal', () => {
  const table = new RouteTable([compileRoute('a.b/x(1)+', 'lit'), compileRoute('example.com/x.y', 'exact')]);
  assert.equal(table.match('a.b', '/x(1)+')?.value, 'lit');
  assert.equal(table.match('axb', '/x(1)+'), undefined, 'a dot in the host is not a wildcard');
  assert.equal(table.match('a.b', '/x11'), undefined, 'parentheses and + are literal');
  assert.equal(table.match('example.com', '/xzy'), undefined, 'a dot in the path is not a wildcard');
  assert.equal(table.match('example.com', '/x.y')?.value, 'exact');
  assert.equal(table.match('example.com', '/x.y/more'), undefined, 'without a trailing * the path is exact');
  assert.equal(table.match('evil-example.com', '/x.y'), undefined, 'the host is anchored');
});

test('route patterns: malformed patterns are refused with a reason', () => {
  for (const bad of [
    '',
    'no-slash',
    '/path-only',
    'http://x.com/a',
    'exa mple.com/*',
    'x.com/a?b',
    'x.com/#',
    'ex_ample.com/*',
    'x'.repeat(1100) + '/',
    'a*b.com/*',
    '**/x',
    'a.*/x',
    'a..b/x',
    './x',
    '*./x',
    'x.com:8080/*',
    '[::1]/x',
    '*bücher.example/*',
  ]) {
    assert.throws(() => parseRoutePattern(bad), RoutePatternError, bad);
  }
});

test('host patterns have one spelling: case, trailing dot, international names, wildcards', () => {
  const same = ['admin.b.example', 'ADMIN.B.EXAMPLE', 'admin.b.example.', 'Admin.B.Example.', 'ａｄｍｉｎ.b.example', 'admin。b.example'];
  for (const h of same) assert.equal(normalizeHostPattern(h), 'admin.b.example', h);
  assert.equal(normalizeHostPattern('bücher.example'), 'xn--bcher-kva.example');
  assert.equal(normalizeHostPattern('*.Bücher.example.'), '*.xn--bcher-kva.example');
  assert.equal(normalizeHostPattern('*'), '*');
  assert.equal(normalizeHostPattern('*Admin.b.example'), '*admin.b.example');
  assert.equal(normalizeRoutePattern('ADMIN.B.EXAMPLE./Login*'), 'admin.b.example/Login*', 'the path keeps its case');
  const table = new RouteTable([compileRoute('ＡＤＭＩＮ.b.example./*', 'b')]);
  assert.equal(table.match('admin.b.example', '/x')?.value, 'b');
});

test('host patterns: overlap and containment', () => {
  const overlap: [string, string, boolean][] = [
    ['*', 'admin.b.example', true],
    ['*admin.b.example', 'admin.b.example', true],
    ['*.b.example', 'admin.b.example', true],
    ['*.b.example', 'b.example', false],
    ['*b.example', 'b.example', true],
    ['*b.example', '*.example', true],
    ['*.a.example', '*.b.example', false],
    ['a.example', 'b.example', false],
    ['b.example', 'b.example', true],
    ['*min.b.example', 'admin.b.example', true],
    ['*x.b.example', 'admin.b.example', false],
  ];
  for (const [a, b, want] of overlap) {
    assert.equal(hostsOverlap(a, b), want, `${a} ~ ${b}`);
    assert.equal(hostsOverlap(b, a), want, `${b} ~ ${a}`);
  }
  assert.equal(hostWithin('admin.b.example', '*.b.example'), true);
  assert.equal(hostWithin('*.x.b.example', '*.b.example'), true);
  assert.equal(hostWithin('*b.example', '*.b.example'), false, '*b.example also matches b.example itself');
  assert.equal(hostWithin('*', 'b.example'), false);
  assert.equal(hostWithin('b.example', 'b.example'), true);
  assert.equal(hostWithin('*.b.example', 'b.example'), false);
});

test('a tie goes to the older route, never to the newcomer', () => {
  // Same score (no host literals, 6 path literals): whichever came first keeps winning.
  const older = compileRoute('*/login*', 'older');
  const newer = compileRoute('*/*login', 'newer');
  assert.equal(new RouteTable([older, newer]).match('x.example', '/login')?.value, 'older');
  assert.equal(new RouteTable([newer, older]).match('x.example', '/login')?.value, 'newer');
});

test("a host assigned to a tenant is served by that tenant's routes only", () => {
  const table = new RouteTable(
    [compileRoute('*/*', 'catch-all', 'a'), compileRoute('*/login*', 'a-login', 'a'), compileRoute('admin.b.example/*', 'b', 'b')],
    [{ host: 'admin.b.example', tenant: 'b' }],
  );
  assert.equal(table.match('admin.b.example', '/login')?.value, 'b', "a's more specific path does not reach b's host");
  assert.equal(table.match('admin.b.example', '/x')?.value, 'b');
  assert.equal(table.match('other.example', '/login')?.value, 'a-login', 'unassigned hosts: every route');
  const empty = new RouteTable([compileRoute('*/*', 'catch-all', 'a')], [{ host: '*.b.example', tenant: 'b' }]);
  assert.equal(empty.match('x.b.example', '/'), undefined, "b's host without a route of b's: nobody's");
});

test('the host index picks what a scan of every route in order picks (random tables, owners and requests)', () => {
  // The reference: the table's order (most specific first, older first) and the first route that fits.
  const reference = (routes: CompiledRoute<number>[], owners: HostOwner[], host: string, path: string) => {
    const sorted = [...routes].sort((a, b) => b.score[0] - a.score[0] || b.score[1] - a.score[1]);
    const owner = [...owners].sort((a, b) => b.host.replace('*', '').length - a.host.replace('*', '').length).find((o) => hostMatches(o.host, host))?.tenant;
    return sorted.find((r) => (owner === undefined || r.tenant === owner) && hostMatches(r.host, host) && r.path.test(path))?.value;
  };
  // A wildcard as specific in the host as an exact host (`*` matching nothing) and more in the path wins.
  const tie = [compileRoute('b.example.com/*', 0), compileRoute('*b.example.com/api/*', 1)];
  assert.equal(new RouteTable(tie).match('b.example.com', '/api/x')?.value, 1);
  assert.equal(reference(tie, [], 'b.example.com', '/api/x'), 1);
  const rand = seeded(42);
  const hosts = ['*', '*.example.com', 'a.example.com', 'b.example.com', '*b.example.com', 'example.com', 'other.test', '*.test'];
  const paths = ['/*', '/api/*', '/api/v1/*', '/x', '/*/y', '/a*'];
  const requests = ['a.example.com', 'b.example.com', 'example.com', 'other.test', 'c.test', 'zzz'];
  const reqPaths = ['/', '/api/', '/api/v1/z', '/x', '/q/y', '/abc'];
  for (let round = 0; round < 200; round++) {
    const routes = Array.from({ length: 1 + rand(20) }, (_, i) => compileRoute(`${hosts[rand(hosts.length)]}${paths[rand(paths.length)]}`, i, `t${rand(3)}`));
    const owners = rand(3) === 0 ? [{ host: hosts[1 + rand(hosts.length - 1)]!, tenant: `t${rand(3)}` }] : [];
    const table = new RouteTable(routes, owners);
    for (const host of requests)
      for (const path of reqPaths) assert.equal(table.match(host, path)?.value, reference(routes, owners, host, path), `${host}${path} in round ${round}`);
  }
});

test('a table changed route by route matches the same routes as one built whole (random sets, replacements and deletions)', () => {
  const rand = seeded(7);
  const hosts = ['*', '*.example.com', 'a.example.com', 'b.example.com', 'example.com', 'other.test', '*.test'];
  const paths = ['/*', '/api/*', '/x', '/a*', '/*/y'];
  const requests = ['a.example.com', 'b.example.com', 'example.com', 'other.test', 'c.test'];
  const reqPaths = ['/', '/api/', '/x', '/abc', '/q/y'];
  for (let round = 0; round < 100; round++) {
    const changed = new RouteTable<number>();
    /** What the table should hold, by key: its route and order (order[0] unique, as the supervisor's deploy order is). */
    const live = new Map<string, [CompiledRoute<number>, RouteOrder]>();
    let next = 0;
    for (let step = 0; step < 40; step++) {
      const key = `k${rand(12)}`;
      if (rand(4) === 0) assert.equal(changed.delete(key), live.delete(key));
      else {
        // A redeploy keeps its order (same route row); a new route comes after every other.
        const order: RouteOrder = live.get(key)?.[1] ?? [next++, key];
        const route = compileRoute(`${hosts[rand(hosts.length)]}${paths[rand(paths.length)]}`, step, `t${rand(2)}`);
        changed.set(key, route, order);
        live.set(key, [route, order]);
      }
    }
    const whole = new RouteTable([...live.values()].sort((a, b) => a[1][0] - b[1][0]).map(([r]) => r));
    assert.equal(changed.size, live.size);
    for (const host of requests)
      for (const path of reqPaths) assert.equal(changed.match(host, path)?.value, whole.match(host, path)?.value, `${host}${path} in round ${round}`);
  }
});
