/**
 * node:crypto's createCipheriv/createDecipheriv for AES-CBC, AES-CTR and AES-GCM (128/192/256), on the
 * worker's own crypto.subtle run synchronously (`node-internal:crypto`), so no cryptography is written
 * here. WebCrypto is one-shot; Node's ciphers stream, so:
 * - CBC and CTR give their output block by block as `update()` is called: each call encrypts the whole
 *   blocks it has and carries the chain (CBC: the last ciphertext block is the next IV; CTR: the counter
 *   advances by the blocks used). WebCrypto's CBC always pads: encryption drops the padding block it adds,
 *   and decryption without padding appends the one block that makes the padding valid (the encryption
 *   of a full padding block under the last ciphertext block), so nothing is ever decrypted unchecked
 *   that Node would check.
 * - GCM authenticates the whole message, so it gives everything at `final()` (Node's decipher gives
 *   plaintext before the tag is checked; here it never does).
 */
import { Buffer } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';
import type { webcrypto } from 'node:crypto';
import { subtle } from 'node-internal:crypto';
import { KeyObject, toBytes } from './crypto-keys.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
type Bytes = Uint8Array;
type Mode = 'cbc' | 'ctr' | 'gcm';

const CIPHERS: Record<string, { mode: Mode; keyBytes: number }> = {};
for (const bits of [128, 192, 256]) for (const mode of ['cbc', 'ctr', 'gcm'] as const) CIPHERS[`aes-${bits}-${mode}`] = { mode, keyBytes: bits / 8 };
CIPHERS['id-aes128-gcm'] = CIPHERS['aes-128-gcm']!;
CIPHERS['id-aes192-gcm'] = CIPHERS['aes-192-gcm']!;
CIPHERS['id-aes256-gcm'] = CIPHERS['aes-256-gcm']!;
CIPHERS.aes128 = CIPHERS['aes-128-cbc']!;
CIPHERS.aes192 = CIPHERS['aes-192-cbc']!;
CIPHERS.aes256 = CIPHERS['aes-256-cbc']!;

export const getCiphers = () => Object.keys(CIPHERS);

const nodeError = (message: string, code: string, Ctor: ErrorConstructor = Error) => Object.assign(new Ctor(message), { code });
const badDecrypt = () => nodeError('Unsupported state or unable to authenticate data', 'ERR_CRYPTO_INVALID_STATE');
const concat = (a: Bytes, b: Bytes): Bytes => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};
const EMPTY = new Uint8Array(0);
const GCM_TAGS = [4, 8, 12, 13, 14, 15, 16];

/** A counter block advanced by `n` blocks (Node's CTR counts over all 128 bits, as WebCrypto's `length: 128`). */
function advance(counter: Bytes, n: number): Bytes {
  const out = counter.slice();
  let carry = n;
  for (let i = 15; i >= 0 && carry > 0; i--) {
    const v = out[i]! + (carry % 256);
    out[i] = v & 0xff;
    carry = Math.floor(carry / 256) + (v >> 8);
  }
  return out;
}

interface Options {
  authTagLength?: number;
}

class CipherBase extends Transform {
  readonly #mode: Mode;
  readonly #decrypt: boolean;
  readonly #key: webcrypto.CryptoKey;
  #iv: Bytes;
  #held: Bytes = EMPTY;
  #aad: Bytes = EMPTY;
  #tag: Bytes | undefined;
  #tagLength: number;
  #padding = true;
  #done = false;
  #decoder: StringDecoder | undefined;
  constructor(decrypt: boolean, name: string, key: Input | KeyObject, iv: Input | null, options: Options = {}) {
    super();
    const spec = typeof name === 'string' ? CIPHERS[name.toLowerCase()] : undefined;
    if (!spec) throw nodeError(`Unknown cipher: ${String(name)} (AES-CBC, AES-CTR and AES-GCM are supported here)`, 'ERR_CRYPTO_UNKNOWN_CIPHER', TypeError);
    const raw = key instanceof KeyObject ? (key.export() as Buffer) : toBytes(key);
    if (raw.length !== spec.keyBytes) throw nodeError('Invalid key length', 'ERR_CRYPTO_INVALID_KEYLEN', RangeError);
    if (iv === null || iv === undefined) throw nodeError('Invalid initialization vector', 'ERR_CRYPTO_INVALID_IV', TypeError);
    this.#iv = toBytes(iv);
    if (spec.mode === 'gcm' ? this.#iv.length === 0 : this.#iv.length !== 16)
      throw nodeError('Invalid initialization vector', 'ERR_CRYPTO_INVALID_IV', TypeError);
    this.#tagLength = options.authTagLength ?? 16;
    if (spec.mode === 'gcm' && !GCM_TAGS.includes(this.#tagLength))
      throw nodeError(`Invalid authentication tag length: ${this.#tagLength}`, 'ERR_CRYPTO_INVALID_AUTH_TAG', TypeError);
    this.#mode = spec.mode;
    this.#decrypt = decrypt;
    this.#key = subtle.importKey('raw', new Uint8Array(raw), { name: `AES-${spec.mode.toUpperCase()}` }, false, ['encrypt', 'decrypt']);
  }

  #aes(op: 'encrypt' | 'decrypt', iv: Bytes, data: Bytes): Bytes {
    const alg = this.#mode === 'ctr' ? { name: 'AES-CTR', counter: iv, length: 128 } : { name: 'AES-CBC', iv };
    try {
      return new Uint8Array(subtle[op](alg, this.#key, data));
    } catch {
      throw nodeError('bad decrypt', 'ERR_OSSL_BAD_DECRYPT');
    }
  }

  /** CBC decryption without a padding check: the appended block decrypts to a full block of padding. */
  #rawCbcDecrypt(iv: Bytes, data: Bytes): Bytes {
    const pad = this.#aes('encrypt', data.slice(-16), EMPTY);
    return this.#aes('decrypt', iv, concat(data, pad));
  }

  /** The whole blocks that can be processed now (CBC decryption keeps its last block for the padding). */
  #step(): Bytes {
    const len = this.#held.length;
    const n = this.#mode === 'cbc' && this.#decrypt ? (len % 16 === 0 ? len - 16 : len - (len % 16)) : len - (len % 16);
    if (n <= 0) return EMPTY;
    const data = this.#held.slice(0, n);
    this.#held = this.#held.slice(n);
    if (this.#mode === 'ctr') {
      const out = this.#aes('encrypt', this.#iv, data);
      this.#iv = advance(this.#iv, n / 16);
      return out;
    }
    const iv = this.#iv;
    if (this.#decrypt) {
      this.#iv = data.slice(n - 16);
      return this.#rawCbcDecrypt(iv, data);
    }
    const out = this.#aes('encrypt', iv, data).slice(0, n);
    this.#iv = out.slice(n - 16);
    return out;
  }

  #finish(): Bytes {
    const rest = this.#held;
    this.#held = EMPTY;
    if (this.#mode === 'gcm') {
      const alg = { name: 'AES-GCM', iv: this.#iv, additionalData: this.#aad, tagLength: this.#tagLength * 8 };
      if (!this.#decrypt) {
        const sealed = new Uint8Array(subtle.encrypt(alg, this.#key, rest));
        this.#tag = sealed.slice(sealed.length - this.#tagLength);
        return sealed.slice(0, sealed.length - this.#tagLength);
      }
      if (!this.#tag) throw badDecrypt();
      try {
        return new Uint8Array(subtle.decrypt(alg, this.#key, concat(rest, this.#tag)));
      } catch {
        throw badDecrypt();
      }
    }
    if (this.#mode === 'ctr') return rest.length ? this.#aes('encrypt', this.#iv, rest) : EMPTY;
    if (!this.#decrypt) {
      if (this.#padding) return this.#aes('encrypt', this.#iv, rest);
      if (rest.length) throw nodeError('wrong final block length', 'ERR_OSSL_WRONG_FINAL_BLOCK_LENGTH');
      return EMPTY;
    }
    if (!this.#padding) return rest.length ? this.#rawCbcDecrypt(this.#iv, rest) : EMPTY;
    if (rest.length !== 16) throw nodeError('wrong final block length', 'ERR_OSSL_WRONG_FINAL_BLOCK_LENGTH');
    return this.#aes('decrypt', this.#iv, rest);
  }

  #out(b: Bytes, encoding: BufferEncoding | undefined, last: boolean): Buffer | string {
    const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (!encoding || encoding === ('buffer' as BufferEncoding)) return buf;
    this.#decoder ??= new StringDecoder(encoding);
    return last ? this.#decoder.write(buf) + this.#decoder.end() : this.#decoder.write(buf);
  }

  update(data: Input, inputEncoding?: BufferEncoding, outputEncoding?: BufferEncoding): Buffer | string {
    if (this.#done) throw nodeError('Cannot call update() after final()', 'ERR_CRYPTO_INVALID_STATE');
    this.#held = concat(this.#held, toBytes(data, inputEncoding));
    return this.#out(this.#mode === 'gcm' ? EMPTY : this.#step(), outputEncoding, false);
  }
  final(outputEncoding?: BufferEncoding): Buffer | string {
    if (this.#done) throw nodeError('final() was already called', 'ERR_CRYPTO_INVALID_STATE');
    this.#done = true;
    return this.#out(this.#finish(), outputEncoding, true);
  }
  setAutoPadding(autoPadding = true): this {
    this.#padding = Boolean(autoPadding);
    return this;
  }
  setAAD(aad: Input): this {
    if (this.#mode !== 'gcm' || this.#held.length) throw nodeError('setAAD() is for GCM, before update()', 'ERR_CRYPTO_INVALID_STATE');
    this.#aad = concat(this.#aad, toBytes(aad));
    return this;
  }
  getAuthTag(): Buffer {
    if (this.#decrypt || !this.#tag) throw nodeError('Invalid state for operation getAuthTag', 'ERR_CRYPTO_INVALID_STATE');
    return Buffer.from(this.#tag);
  }
  setAuthTag(tag: Input): this {
    if (!this.#decrypt || this.#mode !== 'gcm' || this.#done) throw nodeError('Invalid state for operation setAuthTag', 'ERR_CRYPTO_INVALID_STATE');
    const t = toBytes(tag);
    if (t.length !== this.#tagLength && !(this.#tagLength === 16 && GCM_TAGS.includes(t.length)))
      throw nodeError(`Invalid authentication tag length: ${t.length}`, 'ERR_CRYPTO_INVALID_AUTH_TAG', TypeError);
    this.#tagLength = t.length;
    this.#tag = t;
    return this;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      cb(null, this.update(chunk));
    } catch (e) {
      cb(e as Error);
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      cb(null, this.final());
    } catch (e) {
      cb(e as Error);
    }
  }
}

export class Cipheriv extends CipherBase {
  constructor(name: string, key: Input | KeyObject, iv: Input | null, options?: Options) {
    super(false, name, key, iv, options);
  }
}
export class Decipheriv extends CipherBase {
  constructor(name: string, key: Input | KeyObject, iv: Input | null, options?: Options) {
    super(true, name, key, iv, options);
  }
}
export const createCipheriv = (name: string, key: Input | KeyObject, iv: Input | null, options?: Options) => new Cipheriv(name, key, iv, options);
export const createDecipheriv = (name: string, key: Input | KeyObject, iv: Input | null, options?: Options) => new Decipheriv(name, key, iv, options);
