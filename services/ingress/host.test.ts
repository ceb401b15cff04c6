import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHost } from './host.ts';

test('Host: a name, IPv4 or bracketed IPv6 with an optional port; the route name drops port, brackets and trailing dot', () => {
  const ok: [string, string, string][] = [
    ['example.com', 'example.com', 'example.com'],
    ['API.Example.com:8080', 'api.example.com:8080', 'api.example.com'],
    ['admin.b.example.', 'admin.b.example.', 'admin.b.example'],
    ['127.0.0.1:80', '127.0.0.1:80', '127.0.0.1'],
    ['[::1]:8080', '[::1]:8080', '::1'],
    ['[2001:DB8::1]', '[2001:db8::1]', '2001:db8::1'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['localhost', 'localhost', 'localhost'],
    ['my_host.internal', 'my_host.internal', 'my_host.internal'],
  ];
  for (const [header, authority, name] of ok) assert.deepEqual(parseHost(header), { authority, name }, header);
});

test('Host: anything that could put a path, query, userinfo or another host into the URL is refused', () => {
  const bad = [
    undefined,
    '',
    '127.0.0.1/secret-admin?',
    'x@evil.example',
    'user:pw@host',
    'a.example#frag',
    'a.example?q',
    'a.example\\evil',
    'a b.example',
    'a.example:',
    'a.example:99999',
    'a.example:80:80',
    '[::1',
    '[not-ip]',
    '[::1%25eth0]',
    'bücher.example',
    '..',
    'a..b',
    '.a',
    '0x7f.1',
    '127.1',
    '1.2.3.4.5',
    'x'.repeat(300),
  ];
  for (const header of bad) assert.equal(parseHost(header), undefined, String(header));
});
