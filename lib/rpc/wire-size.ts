/**
 * How many bytes a value takes in a capnweb message, measured before it is sent: a caller that shares
 * a session with others refuses an oversized call itself rather than let the transport meet it.
 * capnweb's JSON carries bytes as base64 (4/3 of their length) and wraps arrays in one more array;
 * strings are measured as JSON would write them. Exact for plain data, an upper bound for numbers.
 */
const MAX_DEPTH = 64;
const NUMBER = 24; // the longest a JSON number can be

export function wireSize(value: unknown, depth = 0): number {
  if (value === null || value === undefined || typeof value === 'boolean') return 11; // ["undefined"]
  if (typeof value === 'number' || typeof value === 'bigint') return NUMBER + 10;
  if (typeof value === 'string') return jsonStringSize(value);
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return 13 + Math.ceil(value.byteLength / 3) * 4; // ["bytes","…"]
  if (depth >= MAX_DEPTH) return 0; // capnweb refuses anything deeper itself
  if (Array.isArray(value)) {
    let n = 4;
    for (const item of value) n += wireSize(item, depth + 1) + 1;
    return n;
  }
  if (typeof value === 'object') {
    let n = 2;
    for (const [key, item] of Object.entries(value)) n += jsonStringSize(key) + wireSize(item, depth + 1) + 2;
    return n;
  }
  return 0; // functions and capabilities travel as small references
}

/** UTF-8 bytes of the string as a JSON literal (quotes and escapes included). */
function jsonStringSize(s: string): number {
  let n = Buffer.byteLength(s, 'utf8') + 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c || c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d) n += 1;
    else if (c < 0x20) n += 5; // \u00XX
  }
  return n;
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
