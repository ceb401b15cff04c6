/** The header and status-text checks walk code units rather than run regular expressions: they must accept exactly what the Fetch grammar does. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHeaderValue, isToken } from './headers.ts';
import { isReasonPhrase } from './response.ts';

// The grammar as the regular expressions these checks replaced wrote it.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const BAD_VALUE = /[\0\r\n\u0100-\uffff]/;
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

test('each code unit is judged as the grammar judges it', () => {
  for (let c = 0; c <= 0xffff; c++) {
    const s = String.fromCharCode(c);
    assert.equal(isToken(s), TOKEN.test(s), `token ${c.toString(16)}`);
    assert.equal(isHeaderValue(s), !BAD_VALUE.test(s), `header value ${c.toString(16)}`);
    assert.equal(isReasonPhrase(s), REASON_PHRASE.test(s), `reason phrase ${c.toString(16)}`);
  }
});

test('strings: empty, ordinary, and one bad code unit anywhere', () => {
  const samples = [
    '',
    'content-type',
    'X-Custom_1',
    'a b',
    'a\r\nb',
    'ok\0',
    '\nok',
    'caf\u00e9',
    'caf\u0113',
    '\ud83d\ude00',
    'Not Found',
    'tab\there',
    'del\x7f',
  ];
  for (const s of samples) {
    assert.equal(isToken(s), TOKEN.test(s), `token ${JSON.stringify(s)}`);
    assert.equal(isHeaderValue(s), !BAD_VALUE.test(s), `header value ${JSON.stringify(s)}`);
    assert.equal(isReasonPhrase(s), REASON_PHRASE.test(s), `reason phrase ${JSON.stringify(s)}`);
  }
});
