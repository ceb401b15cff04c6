/** The parse cache in front of whatwg-url's parser, here with the package's own parser (web-platform.test.ts checks the same through the URL API in an isolate). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { CACHE_ENTRIES, CACHE_MAX_INPUT, copyRecord, urlParses, withParseCache, type ParseOptions, type UrlRecord } from './url-parse-cache.ts';

const usm = createRequire(import.meta.url)('whatwg-url/lib/url-state-machine') as { basicURLParse(input: string, options?: ParseOptions): UrlRecord | null };
const fresh = () => withParseCache((input, options) => usm.basicURLParse(input, options));

test("a copy carries every field of whatwg-url's record and shares none of its objects", () => {
  for (const input of ['https://u:p@a.test:8080/x/y?q=1#f', 'http://[::1]/a', 'http://10.0.0.1/', 'mailto:a@b.test', 'file:///etc/x']) {
    const record = usm.basicURLParse(input)!;
    const copy = copyRecord(record);
    // Fails if whatwg-url's record gains a field copyRecord does not know.
    assert.deepEqual(copy, record);
    assert.deepEqual(Object.keys(copy), Object.keys(record));
    if (typeof record.path === 'object') assert.notEqual(copy.path, record.path);
    if (typeof record.host === 'object' && record.host !== null) assert.notEqual(copy.host, record.host);
  }
});

test('each caller gets a record of its own: changing one changes neither the cache nor another', () => {
  const parse = fresh();
  const a = parse('http://[::1]/a/b?q#f')!;
  const b = parse('http://[::1]/a/b?q#f')!;
  assert.notEqual(a, b);
  assert.notEqual(a.path, b.path);
  assert.notEqual(a.host, b.host);
  (a.path as string[]).push('c');
  (a.host as number[])[7] = 2;
  a.query = 'changed';
  const c = parse('http://[::1]/a/b?q#f')!;
  assert.deepEqual(c, usm.basicURLParse('http://[::1]/a/b?q#f'));
  assert.deepEqual(b, c);
});

test('a record the parser filled in place (a setter) is neither cached nor answered from the cache', () => {
  const parse = fresh();
  const url = parse('http://a.test/x')!;
  // As URL's pathname setter does: the record given is changed, and the input is not a whole URL.
  parse('/y', { url, stateOverride: 'path start' });
  assert.deepEqual(url.path, ['x', 'y']);
  assert.deepEqual(parse('http://a.test/x')!.path, ['x']);
  // A state override's input that is also a whole URL string: not answered from the cache.
  const other = parse('http://b.test/')!;
  other.query = ''; // as URL's search setter does
  parse('http://a.test/x', { url: other, stateOverride: 'query' });
  assert.equal(other.query, 'http://a.test/x');
  assert.deepEqual(parse('http://a.test/x')!.query, null);
});

test('a base URL takes no part in the cache: a relative input parses against each base, and alone fails', () => {
  const parse = fresh();
  const base = (s: string) => usm.basicURLParse(s)!;
  assert.equal(parse('/p'), null);
  assert.equal(parse('/p', { baseURL: base('http://a.test/') })!.host, 'a.test');
  assert.equal(parse('/p', { baseURL: base('http://b.test/') })!.host, 'b.test');
  assert.equal(parse('/p'), null);
  // A whole URL with a base: parsed as given, and the cache's later answer is the same.
  assert.equal(parse('http://c.test/q', { baseURL: base('http://a.test/') })!.host, 'c.test');
  assert.equal(parse('http://c.test/q')!.host, 'c.test');
});

test('the parser runs once per string while it stays cached; long inputs and evicted strings are parsed again', () => {
  const parse = fresh();
  const runs = () => urlParses();
  let before = runs();
  parse('http://a.test/once');
  parse('http://a.test/once');
  parse('http://a.test/once');
  assert.equal(runs() - before, 1);
  const long = `http://a.test/${'x'.repeat(CACHE_MAX_INPUT)}`;
  before = runs();
  assert.equal((parse(long)!.path as string[])[0]!.length, CACHE_MAX_INPUT);
  parse(long);
  assert.equal(runs() - before, 2);
  // Least recently used goes first: 'keep' is used again in between, 'drop' is not.
  parse('http://a.test/keep');
  parse('http://a.test/drop');
  for (let i = 0; i < CACHE_ENTRIES - 2; i++) parse(`http://a.test/${i}`);
  parse('http://a.test/keep');
  parse('http://a.test/one-more');
  before = runs();
  assert.equal(parse('http://a.test/keep')!.host, 'a.test');
  assert.equal(runs() - before, 0);
  assert.deepEqual(parse('http://a.test/drop')!.path, ['drop']);
  assert.equal(runs() - before, 1);
});
