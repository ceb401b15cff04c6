/**
 * node:crypto's createCipheriv/createDecipheriv. AES CBC, CTR, GCM and OFB run on the worker's own
 * crypto.subtle run synchronously (`node-internal:crypto`); AES-ECB, Triple DES and ChaCha20-Poly1305,
 * which WebCrypto lacks, on the host's node:crypto (crypto-host.ts). No cryptography is written here.
 * Both are one-shot; Node's ciphers stream, so:
 * - CBC and CTR give their output block by block as `update()` is called: each call encrypts the whole
 *   blocks it has and carries the chain (CBC: the last ciphertext block is the next IV; CTR: the counter
 *   advances by the blocks used). WebCrypto's CBC always pads: encryption drops the padding block it adds,
 *   and decryption without padding appends the one block that makes the padding valid (the encryption
 *   of a full padding block under the last ciphertext block), so nothing is ever decrypted unchecked
 *   that Node would check. ECB and Triple DES go the same way on the host, which pads only at `final()`.
 * - OFB's keystream is CBC's encryption of zero blocks: each `update()` gives all its bytes, as Node does,
 *   and keeps the keystream it did not use.
 * - GCM and ChaCha20-Poly1305 authenticate the whole message, so they give everything at `final()`
 *   (Node's decipher gives plaintext before the tag is checked; here it never does).
 */
import { Buffer } from 'node:buffer';
import { StringDecoder } from 'node:string_decoder';
import { Transform, type TransformCallback } from 'node:stream';
import type { webcrypto } from 'node:crypto';
import { subtle } from 'node-internal:crypto';
import { buf, hostCall } from './crypto-host.ts';
import { KeyObject, toBytes } from './crypto-keys.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
type Bytes = Uint8Array;
/** Where a cipher runs: crypto.subtle's AES, or the host's node:crypto (block or AEAD). */
type Mode = 'cbc' | 'ctr' | 'gcm' | 'ofb' | 'host-block' | 'host-aead';

interface Spec {
  mode: Mode;
  keyBytes: number;
  ivBytes: number;
  /** Block size for the block modes; 1 for the stream and AEAD ones. */
  block: number;
  /** The host's name for it. */
  host?: string;
  /** getCipherInfo's answer, as workerd gives it. */
  info: { name: string; nid: number; blockSize: number; ivLength: number; keyLength: number; mode: string };
}

const CIPHERS: Record<string, Spec> = {};
/** One cipher: where it runs, its sizes, and getCipherInfo's name, mode and nid (OpenSSL's numbers, as workerd gives them). */
function add(name: string, mode: Mode, keyBytes: number, ivBytes: number, block: number, info: [string, string, number], host?: string): void {
  const [infoName, infoMode, nid] = info;
  const blockSize = infoMode === 'cbc' || infoMode === 'ecb' ? block : 1;
  CIPHERS[name] = { mode, keyBytes, ivBytes, block, host, info: { name: infoName, nid, blockSize, ivLength: ivBytes, keyLength: keyBytes, mode: infoMode } };
}
const AES_NIDS = { cbc: [419, 423, 427], ctr: [904, 905, 906], ecb: [418, 422, 426], ofb: [420, 424, 428], gcm: [895, 898, 901] };
for (const [i, bits] of [128, 192, 256].entries()) {
  const k = bits / 8;
  add(`aes-${bits}-cbc`, 'cbc', k, 16, 16, [`AES-${bits}-CBC`, 'cbc', AES_NIDS.cbc[i]!]);
  add(`aes-${bits}-ctr`, 'ctr', k, 16, 16, [`AES-${bits}-CTR`, 'ctr', AES_NIDS.ctr[i]!]);
  add(`aes-${bits}-ecb`, 'host-block', k, 0, 16, [`AES-${bits}-ECB`, 'ecb', AES_NIDS.ecb[i]!], `aes-${bits}-ecb`);
  add(`aes-${bits}-ofb`, 'ofb', k, 16, 16, [`AES-${bits}-OFB`, 'ofb', AES_NIDS.ofb[i]!]);
  add(`aes-${bits}-gcm`, 'gcm', k, 12, 16, [`id-aes${bits}-GCM`, 'gcm', AES_NIDS.gcm[i]!]);
  CIPHERS[`id-aes${bits}-gcm`] = CIPHERS[`aes-${bits}-gcm`]!;
  CIPHERS[`aes${bits}`] = CIPHERS[`aes-${bits}-cbc`]!;
}
add('des-ede3-cbc', 'host-block', 24, 8, 8, ['DES-EDE3-CBC', 'cbc', 44], 'des-ede3-cbc');
add('des-ede-cbc', 'host-block', 16, 8, 8, ['DES-EDE-CBC', 'cbc', 43], 'des-ede-cbc');
add('des-ede', 'host-block', 16, 0, 8, ['DES-EDE', 'ecb', 32], 'des-ede');
add('chacha20-poly1305', 'host-aead', 32, 12, 1, ['chacha20-poly1305', 'stream', 950], 'chacha20-poly1305');

/**
 * workerd's getCiphers(): OpenSSL's names in upper and lower case, then BoringSSL's AEADs. It lists more
 * than it runs, and more than runs here: single DES, RC2 and RC4 are only in the host OpenSSL 3's legacy
 * provider, and BoringSSL's AEADs other than ChaCha20-Poly1305 are not in OpenSSL.
 */
const OPENSSL_NAMES = ['cbc', 'ctr', 'ecb', 'ofb', 'gcm']
  .flatMap((m) => [128, 192, 256].map((b) => `aes-${b}-${m}`))
  .concat(['des-cbc', 'des-ecb', 'des-ede', 'des-ede-cbc', 'des-ede3-cbc', 'rc2-cbc', 'rc4']);
const WORKERD_CIPHERS = [
  ...OPENSSL_NAMES.map((n) => n.toUpperCase()),
  ...OPENSSL_NAMES,
  'aes-128-eax',
  'aes-128-ccm-matter',
  'aes-128-ccm-bluetooth',
  'aes-128-gcm-randnonce',
  'aes-256-eax',
  'aes-128-ccm-bluetooth-8',
  'aes-256-gcm-siv',
  'xchacha20-poly1305',
  'aes-192-gcm',
  'chacha20-poly1305',
  'aes-256-ctr-hmac-sha256',
  'aes-128-gcm-siv',
  'aes-256-gcm',
  'aes-256-gcm-randnonce',
  'aes-128-ctr-hmac-sha256',
  'aes-128-gcm',
];
export const getCiphers = () => [...WORKERD_CIPHERS];

/** Node's getCipherInfo: name, nid, block, IV and key sizes and mode; undefined for an unknown cipher or the wrong key/IV length asked. */
export function getCipherInfo(nameOrNid: string | number, options: { keyLength?: number; ivLength?: number } = {}) {
  const spec = typeof nameOrNid === 'number' ? Object.values(CIPHERS).find((s) => s.info.nid === nameOrNid) : CIPHERS[String(nameOrNid).toLowerCase()];
  if (!spec) return undefined;
  if (options.keyLength !== undefined && options.keyLength !== spec.keyBytes) return undefined;
  if (options.ivLength !== undefined && options.ivLength !== spec.ivBytes && spec.mode !== 'gcm') return undefined;
  return { ...spec.info };
}

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
  readonly #spec: Spec;
  readonly #mode: Mode;
  readonly #decrypt: boolean;
  readonly #raw: Bytes;
  readonly #key: webcrypto.CryptoKey | undefined;
  #iv: Bytes;
  /** OFB: keystream made but not yet used. */
  #stream: Bytes = new Uint8Array(0);
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
    if (!spec) {
      const listed = typeof name === 'string' && WORKERD_CIPHERS.includes(name);
      throw nodeError(
        listed
          ? `Unsupported cipher here: ${name} (AES CBC/CTR/ECB/OFB/GCM, des-ede3-cbc, des-ede-cbc, des-ede and chacha20-poly1305 are supported)`
          : `Unknown or unsupported cipher: ${String(name)}`,
        'ERR_CRYPTO_UNKNOWN_CIPHER',
      );
    }
    const raw = key instanceof KeyObject ? (key.export() as Buffer) : toBytes(key);
    if (raw.length !== spec.keyBytes) throw nodeError('Invalid key length', 'ERR_CRYPTO_INVALID_KEYLEN', RangeError);
    // ECB has no IV: Node takes null (or an empty one) there, and needs one everywhere else.
    if ((iv === null || iv === undefined) && spec.ivBytes !== 0) throw nodeError('Invalid initialization vector', 'ERR_CRYPTO_INVALID_IV', TypeError);
    this.#iv = iv === null || iv === undefined ? new Uint8Array(0) : toBytes(iv);
    if (spec.mode === 'gcm' ? this.#iv.length === 0 : this.#iv.length !== spec.ivBytes)
      throw nodeError('Invalid initialization vector', 'ERR_CRYPTO_INVALID_IV', TypeError);
    this.#tagLength = options.authTagLength ?? 16;
    if (spec.mode === 'gcm' && !GCM_TAGS.includes(this.#tagLength))
      throw nodeError(`Invalid authentication tag length: ${this.#tagLength}`, 'ERR_CRYPTO_INVALID_AUTH_TAG', TypeError);
    if (spec.mode === 'host-aead' && !(Number.isInteger(this.#tagLength) && this.#tagLength >= 1 && this.#tagLength <= 16))
      throw nodeError(`Invalid authentication tag length: ${this.#tagLength}`, 'ERR_CRYPTO_INVALID_AUTH_TAG', TypeError);
    this.#spec = spec;
    this.#mode = spec.mode;
    this.#decrypt = decrypt;
    this.#raw = new Uint8Array(raw);
    if (!spec.host) {
      // OFB's keystream is AES-CBC's encryption of zeros.
      const webName = spec.mode === 'ofb' ? 'AES-CBC' : `AES-${spec.mode.toUpperCase()}`;
      this.#key = subtle.importKey('raw', this.#raw, { name: webName }, false, ['encrypt', 'decrypt']);
    }
  }

  /** One piece on the host: whole blocks with the chain so far, or the rest at final (padded or checked there). */
  #host(data: Bytes, final: boolean): Bytes {
    const aead = this.#mode === 'host-aead';
    return new Uint8Array(
      hostCall(
        {
          op: 'node.cipher',
          name: this.#spec.host!,
          key: buf(this.#raw),
          iv: this.#spec.ivBytes ? buf(this.#iv) : null,
          data: buf(data),
          decrypt: this.#decrypt,
          final,
          padding: this.#padding,
          ...(aead ? { aad: buf(this.#aad), tagLength: this.#tagLength, ...(this.#tag ? { tag: buf(this.#tag) } : {}) } : {}),
        },
        'bytes',
      ),
    );
  }

  /** OFB: `n` more bytes of keystream (whole blocks are made; what is left over is kept). */
  #keystream(n: number): Bytes {
    if (this.#stream.length < n) {
      const blocks = Math.ceil((n - this.#stream.length) / 16);
      const more = this.#aes('encrypt', this.#iv, new Uint8Array(blocks * 16)).slice(0, blocks * 16);
      this.#iv = more.slice(more.length - 16);
      this.#stream = concat(this.#stream, more);
    }
    const ks = this.#stream.subarray(0, n);
    this.#stream = this.#stream.slice(n);
    return ks;
  }

  #aes(op: 'encrypt' | 'decrypt', iv: Bytes, data: Bytes): Bytes {
    const alg = this.#mode === 'ctr' ? { name: 'AES-CTR', counter: iv, length: 128 } : { name: 'AES-CBC', iv };
    try {
      return new Uint8Array(subtle[op](alg, this.#key!, data));
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
    const b = this.#spec.block;
    const padded = (this.#mode === 'cbc' || this.#mode === 'host-block') && this.#decrypt;
    const n = padded ? (len % b === 0 ? len - b : len - (len % b)) : len - (len % b);
    if (n <= 0) return EMPTY;
    const data = this.#held.slice(0, n);
    this.#held = this.#held.slice(n);
    if (this.#mode === 'host-block') {
      const result = this.#host(data, false);
      // CBC's next IV is the last ciphertext block (ECB has none).
      if (this.#spec.ivBytes) this.#iv = (this.#decrypt ? data : result).slice(n - b);
      return result;
    }
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
    if (this.#mode === 'host-block') return this.#host(rest, true);
    if (this.#mode === 'ofb') return EMPTY;
    if (this.#mode === 'host-aead') {
      if (this.#decrypt && !this.#tag) throw badDecrypt();
      const sealed = this.#host(rest, true);
      if (this.#decrypt) return sealed;
      this.#tag = sealed.slice(sealed.length - this.#tagLength);
      return sealed.slice(0, sealed.length - this.#tagLength);
    }
    if (this.#mode === 'gcm') {
      const alg = { name: 'AES-GCM', iv: this.#iv, additionalData: this.#aad, tagLength: this.#tagLength * 8 };
      if (!this.#decrypt) {
        const sealed = new Uint8Array(subtle.encrypt(alg, this.#key!, rest));
        this.#tag = sealed.slice(sealed.length - this.#tagLength);
        return sealed.slice(0, sealed.length - this.#tagLength);
      }
      if (!this.#tag) throw badDecrypt();
      try {
        return new Uint8Array(subtle.decrypt(alg, this.#key!, concat(rest, this.#tag)));
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
    const input = toBytes(data, inputEncoding);
    if (this.#mode === 'ofb') {
      const ks = this.#keystream(input.length);
      return this.#out(
        input.map((x, i) => x ^ ks[i]!),
        outputEncoding,
        false,
      );
    }
    this.#held = concat(this.#held, input);
    return this.#out(this.#mode === 'gcm' || this.#mode === 'host-aead' ? EMPTY : this.#step(), outputEncoding, false);
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
    if ((this.#mode !== 'gcm' && this.#mode !== 'host-aead') || this.#held.length)
      throw nodeError('setAAD() is for GCM and ChaCha20-Poly1305, before update()', 'ERR_CRYPTO_INVALID_STATE');
    this.#aad = concat(this.#aad, toBytes(aad));
    return this;
  }
  getAuthTag(): Buffer {
    if (this.#decrypt || !this.#tag) throw nodeError('Invalid state for operation getAuthTag', 'ERR_CRYPTO_INVALID_STATE');
    return Buffer.from(this.#tag);
  }
  setAuthTag(tag: Input): this {
    if (!this.#decrypt || (this.#mode !== 'gcm' && this.#mode !== 'host-aead') || this.#done)
      throw nodeError('Invalid state for operation setAuthTag', 'ERR_CRYPTO_INVALID_STATE');
    const t = toBytes(tag);
    const tags = this.#mode === 'gcm' ? GCM_TAGS : [this.#tagLength];
    if (t.length !== this.#tagLength && !(this.#tagLength === 16 && tags.includes(t.length)))
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
