/**
 * TextEncoder (UTF-8, as everywhere), TextDecoder (every WHATWG encoding) and atob / btoa for the isolate,
 * which has none of them (V8 alone ships no Web APIs). TextEncoder and base64 are written by hand: they are
 * small.
 */
const U8 = Uint8Array;
// Captured before tenant code runs: the runtime encodes every response body with these, and a tenant
// that patches Uint8Array's length or slice must change only what it sees itself.
const u8Slice = U8.prototype.slice;
const taLength = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(U8.prototype) as object, 'length')!.get!;

/**
 * UTF-8 of `s` into `out` (lone surrogates as U+FFFD), stopping before a code point that does not fit:
 * the code units read and the bytes written, as TextEncoder.encodeInto reports them.
 */
function utf8Into(s: string, out: Uint8Array, capacity: number): { read: number; written: number } {
  let n = 0;
  let i = 0;
  for (; i < s.length; i++) {
    let c = s.charCodeAt(i);
    let units = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        units = 2;
      } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    const size = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (n + size > capacity) break;
    if (size === 1) out[n++] = c;
    else if (size === 2) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 63);
    } else if (size === 3) {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    } else {
      out[n++] = 0xf0 | (c >> 18);
      out[n++] = 0x80 | ((c >> 12) & 63);
      out[n++] = 0x80 | ((c >> 6) & 63);
      out[n++] = 0x80 | (c & 63);
    }
    i += units - 1;
  }
  return { read: i, written: n };
}

export class TextEncoder {
  get encoding(): string {
    return 'utf-8';
  }
  encode(input: unknown = ''): Uint8Array {
    const s = String(input);
    const capacity = s.length * 3;
    const out = new U8(capacity);
    return Reflect.apply(u8Slice, out, [0, utf8Into(s, out, capacity).written]) as Uint8Array;
  }
  /** Encoding standard §8.2.2: as much of `source` as fits in `destination`, never half a code point. */
  encodeInto(source: unknown, destination: Uint8Array): { read: number; written: number } {
    if (!(destination instanceof U8)) throw new TypeError("Failed to execute 'encodeInto' on 'TextEncoder': parameter 2 is not of type 'Uint8Array'.");
    return utf8Into(String(source), destination, Reflect.apply(taLength, destination, []) as number);
  }
}

/**
 * TextDecoder for every encoding of the WHATWG Encoding standard, with its labels, `fatal`, `ignoreBOM`
 * and `stream` (@exodus/bytes, tested by its authors against the web-platform-tests). The multi-byte
 * decoders are a lazy unit (multibyte-unit.ts) and their tables are loaded on first use (legacy-tables.ts,
 * exported here for that unit).
 */
export { TextDecoder } from '@exodus/bytes/encoding.js';
export { default as loadLegacyTables, setLegacyTablesSource } from './legacy-tables.ts';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export function btoa(data: unknown): string {
  const s = String(data);
  let out = '';
  for (let i = 0; i < s.length; i += 3) {
    const a = s.charCodeAt(i);
    const b = s.charCodeAt(i + 1);
    const c = s.charCodeAt(i + 2);
    if (a > 255 || b > 255 || c > 255)
      throw new DOMException("Failed to execute 'btoa': the string contains characters outside Latin-1.", 'InvalidCharacterError');
    const n = (a << 16) | ((b || 0) << 8) | (c || 0);
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + (i + 1 < s.length ? B64[(n >> 6) & 63]! : '=') + (i + 2 < s.length ? B64[n & 63]! : '=');
  }
  return out;
}

export function atob(data: unknown): string {
  let s = String(data).replace(/[\t\n\f\r ]/g, '');
  if (s.length % 4 === 0) s = s.replace(/==?$/, '');
  if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s))
    throw new DOMException("Failed to execute 'atob': the string is not correctly encoded.", 'InvalidCharacterError');
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const ch of s) {
    acc = (acc << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((acc >> bits) & 0xff);
    }
  }
  return out;
}

/** WebIDL's legacy error codes: the names that have one, in code order (code = index + 1; '' has none). */
const CODE_NAMES = [
  'IndexSizeError',
  '',
  'HierarchyRequestError',
  'WrongDocumentError',
  'InvalidCharacterError',
  '',
  'NoModificationAllowedError',
  'NotFoundError',
  'NotSupportedError',
  'InUseAttributeError',
  'InvalidStateError',
  'SyntaxError',
  'InvalidModificationError',
  'NamespaceError',
  'InvalidAccessError',
  '',
  'TypeMismatchError',
  'SecurityError',
  'NetworkError',
  'AbortError',
  'URLMismatchError',
  'QuotaExceededError',
  'TimeoutError',
  'InvalidNodeTypeError',
  'DataCloneError',
];
/** WebIDL's constants on DOMException and its prototype, in code order. */
const CONSTANTS = [
  'INDEX_SIZE_ERR',
  'DOMSTRING_SIZE_ERR',
  'HIERARCHY_REQUEST_ERR',
  'WRONG_DOCUMENT_ERR',
  'INVALID_CHARACTER_ERR',
  'NO_DATA_ALLOWED_ERR',
  'NO_MODIFICATION_ALLOWED_ERR',
  'NOT_FOUND_ERR',
  'NOT_SUPPORTED_ERR',
  'INUSE_ATTRIBUTE_ERR',
  'INVALID_STATE_ERR',
  'SYNTAX_ERR',
  'INVALID_MODIFICATION_ERR',
  'NAMESPACE_ERR',
  'INVALID_ACCESS_ERR',
  'VALIDATION_ERR',
  'TYPE_MISMATCH_ERR',
  'SECURITY_ERR',
  'NETWORK_ERR',
  'ABORT_ERR',
  'URL_MISMATCH_ERR',
  'QUOTA_EXCEEDED_ERR',
  'TIMEOUT_ERR',
  'INVALID_NODE_TYPE_ERR',
  'DATA_CLONE_ERR',
];

/**
 * DOMException as WebIDL defines it (V8 has none): `name`, `message` and the legacy `code` (0 for names
 * without one), the `*_ERR` constants on the class and its prototype, and an Error subclass so it has a
 * stack, as V8-based runtimes give it. Not a CordonError: it lives in the isolate, which tenant code sees
 * and which imports no host module.
 */
export class DOMException extends Error {
  constructor(message: unknown = '', name: unknown = 'Error') {
    super(String(message));
    Object.defineProperty(this, 'name', { value: String(name), configurable: true, writable: true });
  }
  get code(): number {
    return this.name ? CODE_NAMES.indexOf(this.name) + 1 : 0;
  }
}
for (const [i, c] of CONSTANTS.entries()) {
  const desc = { value: i + 1, enumerable: true, writable: false, configurable: false };
  Object.defineProperty(DOMException, c, desc);
  Object.defineProperty(DOMException.prototype, c, desc);
}
