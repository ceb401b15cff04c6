/**
 * TextEncoder / TextDecoder (UTF-8 only, as in Workers) and atob / btoa for the isolate, which has
 * none of them (V8 alone ships no Web APIs). Written by hand: they are small, and the pure-JS
 * packages for them either target Node's Buffer or pull in every legacy encoding.
 */
const U8 = Uint8Array;

export class TextEncoder {
  get encoding(): string {
    return 'utf-8';
  }
  encode(input: unknown = ''): Uint8Array {
    const s = String(input);
    const out = new U8(s.length * 3);
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out[n++] = c;
      else if (c < 0x800) {
        out[n++] = 0xc0 | (c >> 6);
        out[n++] = 0x80 | (c & 63);
      } else if (c < 0x10000) {
        out[n++] = 0xe0 | (c >> 12);
        out[n++] = 0x80 | ((c >> 6) & 63);
        out[n++] = 0x80 | (c & 63);
      } else {
        out[n++] = 0xf0 | (c >> 18);
        out[n++] = 0x80 | ((c >> 12) & 63);
        out[n++] = 0x80 | ((c >> 6) & 63);
        out[n++] = 0x80 | (c & 63);
      }
    }
    return out.slice(0, n);
  }
}

export class TextDecoder {
  readonly #fatal: boolean;
  readonly #ignoreBOM: boolean;
  constructor(label = 'utf-8', options: { fatal?: boolean; ignoreBOM?: boolean } = {}) {
    const l = String(label).trim().toLowerCase();
    if (l !== 'utf-8' && l !== 'utf8' && l !== 'unicode-1-1-utf-8')
      throw new RangeError(`The encoding label provided ('${label}') is not supported: only utf-8 is`);
    this.#fatal = Boolean(options.fatal);
    this.#ignoreBOM = Boolean(options.ignoreBOM);
  }
  get encoding(): string {
    return 'utf-8';
  }
  decode(input?: ArrayBuffer | ArrayBufferView): string {
    if (input === undefined) return '';
    const b = input instanceof ArrayBuffer ? new U8(input) : new U8(input.buffer, input.byteOffset, input.byteLength);
    let s = '';
    let i = !this.#ignoreBOM && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0;
    const bad = () => {
      if (this.#fatal) throw new TypeError('The encoded data was not valid utf-8');
      return 0xfffd;
    };
    const chunk: number[] = [];
    while (i < b.length) {
      const c = b[i]!;
      let cp: number;
      let need = 0;
      let min = 0;
      if (c < 0x80) cp = c;
      else if (c >= 0xc2 && c <= 0xdf) (cp = c & 0x1f), (need = 1), (min = 0x80);
      else if (c >= 0xe0 && c <= 0xef) (cp = c & 0x0f), (need = 2), (min = 0x800);
      else if (c >= 0xf0 && c <= 0xf4) (cp = c & 0x07), (need = 3), (min = 0x10000);
      else {
        chunk.push(bad());
        i++;
        continue;
      }
      let j = 1;
      for (; j <= need; j++) {
        const d = b[i + j];
        if (d === undefined || (d & 0xc0) !== 0x80) break;
        cp = (cp << 6) | (d & 0x3f);
      }
      if (j <= need || cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        chunk.push(bad());
        i += j; // the lead byte and the continuation bytes that were valid
        continue;
      }
      i += need + 1;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        chunk.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else chunk.push(cp);
      if (chunk.length > 8192) s += String.fromCharCode(...chunk.splice(0));
    }
    return s + String.fromCharCode(...chunk);
  }
}

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

/**
 * Minimal DOMException (V8 has none): name + message, an Error subclass as the standard's is. Not a
 * CordonError: it lives in the isolate, which tenant code sees and which imports no host module.
 */
export class DOMException extends Error {
  constructor(message = '', name = 'Error') {
    super(message);
    Object.defineProperty(this, 'name', { value: name, configurable: true, writable: true });
  }
}
