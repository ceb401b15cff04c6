/**
 * Whether a string is already the href the URL parser would make of it, told by one pass over its
 * characters: `new Request(url)` and a request arriving in the isolate then keep the string as it is,
 * without parsing it (request.ts). Nearly every request's URL is such a string — ingress builds it from
 * the request line — and a parse, even from the parse cache, cost more than the rest of a small
 * Request's construction.
 *
 * Conservative by design: `true` only for an http(s) URL whose every part the parser leaves unchanged —
 * a lower-case ASCII host of letters, digits, dots and hyphens whose last label does not start with a
 * digit (no IPv4 reading) unless the whole host is an IPv4 address as the parser writes it, and no label
 * starts with `xn--` (no IDNA), no credentials, a port that is not
 * the scheme's default and has no leading zero, a path of segments that are not dot segments (nor their
 * percent-encoded forms), characters the path and query percent-encode sets leave alone, and no fragment.
 * Anything else is `false` and goes to the parser. canonical-href.test.ts holds it to whatwg-url's href
 * over generated inputs.
 */

const HOST = 1;
const PATH = 2;
const QUERY = 4;
/** What each printable ASCII character may be, unescaped, in a canonical href (bit per part). */
const ALLOWED = new Uint8Array(128);
for (let c = 0x61; c <= 0x7a; c++) ALLOWED[c] = HOST | PATH | QUERY; // a-z
for (let c = 0x30; c <= 0x39; c++) ALLOWED[c] = HOST | PATH | QUERY; // 0-9
for (let c = 0x41; c <= 0x5a; c++) ALLOWED[c] = PATH | QUERY; // A-Z: lower-cased in a host
ALLOWED[0x2d] = HOST | PATH | QUERY; // -
ALLOWED[0x2e] = HOST | PATH | QUERY; // .
for (const ch of '_~!$&()*+,;=:@/%') ALLOWED[ch.charCodeAt(0)] = PATH | QUERY;
ALLOWED[0x27] = PATH; // ' is percent-encoded in a special URL's query
ALLOWED[0x3f] = QUERY; // ? starts the query; within it, it stays

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const COLON = 0x3a;
const QUESTION = 0x3f;

/** Whether s[start, end) is an IPv4 address as the URL parser serializes one. */
function isIPv4(s: string, start: number, end: number): boolean {
  let parts = 0;
  let i = start;
  for (;;) {
    const from = i;
    let value = 0;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      value = value * 10 + (c - 0x30);
      i++;
    }
    const digits = i - from;
    if (digits === 0 || digits > 3 || value > 255 || (digits > 1 && s.charCodeAt(from) === 0x30)) return false;
    parts++;
    if (i === end) return parts === 4;
    if (s.charCodeAt(i) !== DOT || parts === 4) return false;
    i++;
  }
}

/** Whether the URL parser's href of `s` is `s` itself (false when unsure). */
export function isCanonicalHref(s: string): boolean {
  let i: number;
  let defaultPort: string;
  if (s.startsWith('https://')) {
    i = 8;
    defaultPort = '443';
  } else if (s.startsWith('http://')) {
    i = 7;
    defaultPort = '80';
  } else return false;
  const n = s.length;
  // The host: labels of [a-z0-9-], none empty, none `xn--`, the last not starting with a digit — or an
  // IPv4 address as the parser writes it (four decimal numbers up to 255, no leading zeros).
  const hostStart = i;
  let labelStart = i;
  for (;;) {
    if (i >= n) return false; // no path: the href would end in "/"
    const c = s.charCodeAt(i);
    if (c === DOT || c === COLON || c === SLASH) {
      if (i === labelStart) return false; // an empty label or host
      if (s.startsWith('xn--', labelStart)) return false;
      if (c !== DOT) {
        const first = s.charCodeAt(labelStart);
        if (first >= 0x30 && first <= 0x39 && !isIPv4(s, hostStart, i)) return false; // read as an IPv4 address
        break;
      }
      labelStart = i + 1;
    } else if (c >= 128 || (ALLOWED[c]! & HOST) === 0) return false;
    i++;
  }
  if (s.charCodeAt(i) === COLON) {
    const start = ++i;
    while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
    const digits = i - start;
    if (digits === 0 || digits > 5 || s.charCodeAt(start) === 0x30 || i >= n || s.charCodeAt(i) !== SLASH) return false;
    const port = s.slice(start, i);
    if (Number(port) > 65535 || port === defaultPort) return false;
  }
  // The path: segments that are not ".", ".." or a percent-encoded form of them.
  for (;;) {
    // At a "/": the segment after it.
    const segment = ++i;
    while (i < n) {
      const c = s.charCodeAt(i);
      if (c === SLASH || c === QUESTION) break;
      if (c >= 128 || (ALLOWED[c]! & PATH) === 0) return false;
      i++;
    }
    if (s.charCodeAt(segment) === DOT) return false; // ".", "..", or a segment we do not need to tell apart
    for (let j = segment; j < i; j++)
      if (s.charCodeAt(j) === PERCENT && (s.charCodeAt(j + 1) | 0x20) === 0x32 && (s.charCodeAt(j + 2) | 0x20) === 0x65) return false;
    if (i >= n) return true;
    if (s.charCodeAt(i) === QUESTION) break;
  }
  // The query.
  for (i++; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (ALLOWED[c]! & QUERY) === 0) return false;
  }
  return true;
}
