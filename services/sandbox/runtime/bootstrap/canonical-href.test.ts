/**
 * isCanonicalHref against the URL parsers: whenever it says a string is already its href, whatwg-url (the
 * parser the isolate runs) and Node's (ada, workerd's) give that very string — over typical request URLs,
 * the edge cases the parser rewrites, and generated inputs built from the characters that matter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { isCanonicalHref } from './canonical-href.ts';

const usm = createRequire(import.meta.url)('whatwg-url/lib/url-state-machine') as {
  basicURLParse(input: string): object | null;
  serializeURL(record: object): string;
};
const whatwgHref = (s: string) => {
  const r = usm.basicURLParse(s);
  return r === null ? null : usm.serializeURL(r);
};
const nodeHref = (s: string) => (URL.canParse(s) ? new URL(s).href : null);

function holds(s: string): void {
  if (!isCanonicalHref(s)) return;
  assert.equal(whatwgHref(s), s, `whatwg-url rewrites ${JSON.stringify(s)}`);
  assert.equal(nodeHref(s), s, `Node's parser rewrites ${JSON.stringify(s)}`);
}

test('the URLs requests usually carry are taken as they are', () => {
  for (const s of [
    'http://example.test/',
    'https://api.example.com/v1/users/42?expand=true&limit=10',
    'http://127.0.0.1.example/x',
    'http://127.0.0.1:8787/perf/hello',
    'http://10.0.255.1/',
    'http://localhost:8787/path/to/thing.json',
    'https://a.b-c.example:8443/%E2%9C%93?q=%20a+b&x=~y',
    'http://w.test/a//b/c?',
    "http://w.test/it's/(here)!*$,;=:@",
    'http://w.test/?a=/b?c',
  ]) {
    assert.equal(isCanonicalHref(s), true, s);
    holds(s);
  }
});

test('what the parser would rewrite, or might, goes to the parser', () => {
  for (const s of [
    'HTTP://example.test/',
    'http://Example.test/',
    'http://example.test',
    'http://example.test?q',
    'http://example.test:80/',
    'https://example.test:443/',
    'http://example.test:080/',
    'http://example.test:/',
    'http://example.test:99999/',
    'http://u:p@example.test/',
    'http://example.test/a/./b',
    'http://example.test/a/../b',
    'http://example.test/a/%2e/b',
    'http://example.test/a/.%2E/b',
    'http://example.test/a/..',
    'http://example.test/a b',
    'http://example.test/a\\b',
    'http://example.test/a#f',
    "http://example.test/?a='b",
    'http://example.test/é',
    'http://exa\tmple.test/',
    'http://127.1/',
    'http://127.0.0.01/',
    'http://256.0.0.1/',
    'http://1.2.3.4.5/',
    'http://0x7f.0.0.1/',
    'http://0x7f.1/',
    'http://a.1/',
    'http://xn--nxasmq6b.test/',
    'http://a..b/',
    'http://.a/',
    'http://a./',
    'ftp://example.test/',
    'http://example.test/{x}',
    'http://example.test/a^b',
  ])
    assert.equal(isCanonicalHref(s), false, s);
});

test('generated inputs: whenever it says yes, both parsers agree the string is its own href', () => {
  // A deterministic generator (no flakes): xorshift32.
  let seed = 0x2545f491;
  const next = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(next() * a.length)]!;
  // Common characters many times over, so that inputs are often canonical and often only just not.
  const HOST = [...'abzxn'.repeat(6), ...'0125'.repeat(3), ...'..9-', ...'A_%é:'];
  const PATH = [...'aZ0/'.repeat(8), ...'.%2eE?', ...'#\\ \'"^|`{~@:;=&+!\té<['];
  const word = (chars: readonly string[], max: number) => Array.from({ length: Math.floor(next() * max) }, () => pick(chars)).join('');
  let canonical = 0;
  for (let k = 0; k < 60_000; k++) {
    const port = next() < 0.2 ? `:${pick(['80', '443', '8080', '0', '01', '65535', '65536', '', '1'])}` : '';
    const s = `${pick(['http://', 'https://', 'HTTP://', 'http:/'])}${word(HOST, 10)}${port}${next() < 0.9 ? '/' : ''}${word(PATH, 14)}`;
    if (isCanonicalHref(s)) canonical++;
    holds(s);
  }
  // Hosts of numbers: IPv4 addresses as the parser writes them, and the many it would rewrite.
  let ipv4 = 0;
  for (let k = 0; k < 10_000; k++) {
    const labels = Array.from({ length: pick([3, 4, 4, 4, 5]) }, () =>
      pick([...['0', '1', '255', '99', '10', '127'].flatMap((l) => [l, l, l]), '00', '07', '256', '0x1', '1a', '300']),
    );
    const s = `http://${labels.join('.')}${next() < 0.2 ? ':8080' : ''}/${word(PATH, 6)}`;
    if (isCanonicalHref(s)) ipv4++;
    holds(s);
  }
  assert.ok(ipv4 > 300, `only ${ipv4} generated IPv4 inputs were canonical`);
  // The generator reaches both answers often enough for the comparison to mean something.
  assert.ok(canonical > 2_000, `only ${canonical} generated inputs were canonical`);
});
