import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRoute, parseRoutePattern, RoutePatternError, RouteTable } from './routes.ts';

test('route patterns: most specific wins, host without port, case-insensitive host', () => {
  const table = new RouteTable(['*/*', '*/hello*', 'api.example.com/*', 'api.example.com/v1/*', '*.example.com/*'].map((p) => compileRoute(p, p)));
  const m = (host: string, path: string) => table.match(host, path)?.value;
  assert.equal(m('127.0.0.1:8080', '/hello'), '*/hello*');
  assert.equal(m('127.0.0.1:8080', '/hello/world'), '*/hello*');
  assert.equal(m('127.0.0.1', '/other'), '*/*');
  assert.equal(m('API.Example.com:443', '/v1/users'), 'api.example.com/v1/*');
  assert.equal(m('api.example.com', '/v2'), 'api.example.com/*');
  assert.equal(m('www.example.com', '/hello'), '*.example.com/*');
  assert.equal(m('[::1]:8080', '/x'), '*/*');
});

test('route patterns: no partial matches, and regex metacharacters are literal', () => {
  const table = new RouteTable([compileRoute('a.b/x(1)+', 'lit'), compileRoute('example.com/x.y', 'exact')]);
  assert.equal(table.match('a.b', '/x(1)+')?.value, 'lit');
  assert.equal(table.match('aXb', '/x(1)+'), undefined, 'a dot in the host is not a wildcard');
  assert.equal(table.match('a.b', '/x11'), undefined, 'parentheses and + are literal');
  assert.equal(table.match('example.com', '/xzy'), undefined, 'a dot in the path is not a wildcard');
  assert.equal(table.match('example.com', '/x.y')?.value, 'exact');
  assert.equal(table.match('example.com', '/x.y/more'), undefined, 'without a trailing * the path is exact');
  assert.equal(table.match('evil-example.com', '/x.y'), undefined, 'the host is anchored');
});

test('route patterns: malformed patterns are refused with a reason', () => {
  for (const bad of ['', 'no-slash', '/path-only', 'http://x.com/a', 'exa mple.com/*', 'x.com/a?b', 'x.com/#', 'ex_ample.com/*', 'x'.repeat(1100) + '/']) {
    assert.throws(() => parseRoutePattern(bad), RoutePatternError, bad);
  }
});
