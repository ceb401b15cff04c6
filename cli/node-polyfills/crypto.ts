/**
 * `node:crypto` for the isolate: unenv's module (webcrypto, getRandomValues, randomUUID, constants; what
 * it lacks throws "not implemented"), with
 * - the hashing and key derivation Node code uses most computed in the isolate by @noble/hashes
 *   (audited, pure JS: the CPU is the worker's and nothing crosses to the host): createHash, createHmac,
 *   hash, pbkdf2(Sync), hkdf(Sync), scrypt(Sync), randomBytes, randomInt, randomFill(Sync), timingSafeEqual;
 * - keys, signatures and ciphers on the worker's crypto.subtle run synchronously (crypto-keys.ts,
 *   crypto-cipher.ts), and what WebCrypto lacks (more ciphers, ECDH and DH objects, primes, RSA's other
 *   paddings, X509Certificate) on the host's node:crypto through the same synchronous call (crypto-host.ts).
 */
import { Buffer } from 'node:buffer';
import { Transform } from 'node:stream';
import { hkdf as nobleHkdf } from '@noble/hashes/hkdf';
import { hmac } from '@noble/hashes/hmac';
import { md5, sha1 } from '@noble/hashes/legacy';
import { pbkdf2 as noblePbkdf2 } from '@noble/hashes/pbkdf2';
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt';
import { sha224, sha256, sha384, sha512, sha512_256 } from '@noble/hashes/sha2';
import * as unenv from 'unenv/node/crypto';
import * as cipher from './crypto-cipher.ts';
import * as dh from './crypto-dh.ts';
import * as keys from './crypto-keys.ts';
import { X509Certificate } from './crypto-x509.ts';

type Algo = typeof sha256;
const ALGOS: Record<string, Algo> = { md5, sha1, sha224, sha256, sha384, sha512, sha512256: sha512_256 } as Record<string, Algo>;
// OpenSSL's other names for SHA-1, which workerd's createHash takes.
const SHA1_NAMES = new Set(['dsa-sha', 'dsa-sha1', 'ecdsa-with-sha1']);

/** TLS 1.0's MD5‖SHA-1, which workerd's createHash has (a digest only: no HMAC over it). */
const md5sha1 = Object.assign((m: Uint8Array) => Buffer.concat([md5(m), sha1(m)]), {
  create: () => {
    const a = md5.create();
    const b = sha1.create();
    return {
      update(x: Uint8Array) {
        a.update(x);
        b.update(x);
        return this;
      },
      digest: () => Buffer.concat([a.digest(), b.digest()]),
    };
  },
});

function algo(name: unknown, forHmac = false): Algo {
  const n = typeof name === 'string' ? name.toLowerCase() : '';
  const a = SHA1_NAMES.has(n) ? sha1 : n === 'md5-sha1' && !forHmac ? (md5sha1 as unknown as Algo) : ALGOS[n.replace(/^rsa-/, '').replace('-', '')];
  if (!a) throw Object.assign(new Error(`Digest method not supported: ${String(name)}`), { code: 'ERR_CRYPTO_INVALID_DIGEST' });
  return a;
}

type Input = string | ArrayBufferView | ArrayBuffer;
function bytes(data: Input, encoding?: BufferEncoding): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8');
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw Object.assign(new TypeError('The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView.'), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
}
function out(digest: Uint8Array, encoding?: BufferEncoding): Buffer | string {
  const b = Buffer.from(digest);
  return encoding ? b.toString(encoding) : b;
}

interface Hasher {
  update(b: Uint8Array): unknown;
  digest(): Uint8Array;
}

class Digest extends Transform {
  #h: Hasher;
  #done = false;
  constructor(h: Hasher) {
    super();
    this.#h = h;
  }
  update(data: Input, encoding?: BufferEncoding): this {
    if (this.#done) throw Object.assign(new Error('Digest already called'), { code: 'ERR_CRYPTO_HASH_FINALIZED' });
    this.#h.update(bytes(data, encoding));
    return this;
  }
  digest(encoding?: BufferEncoding): Buffer | string {
    if (this.#done) throw Object.assign(new Error('Digest already called'), { code: 'ERR_CRYPTO_HASH_FINALIZED' });
    this.#done = true;
    return out(this.#h.digest(), encoding);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.update(chunk);
    cb();
  }
  override _flush(cb: () => void): void {
    this.push(this.digest());
    cb();
  }
}

export class Hash extends Digest {
  constructor(name: string) {
    super(algo(name).create());
  }
}
export class Hmac extends Digest {}

export const createHash = (name: string) => new Hash(name);
export const createHmac = (name: string, key: Input) => new Hmac(hmac.create(algo(name, true), bytes(key)));
export const hash = (name: string, data: Input, encoding: BufferEncoding = 'hex') => out(algo(name)(bytes(data)), encoding);
/** workerd's list, as it gives it (md4 is listed but not computed here: @noble/hashes has no MD4). */
export const getHashes = () => [
  'md4',
  'md5',
  'sha1',
  'sha224',
  'sha256',
  'sha384',
  'sha512',
  'md5-sha1',
  'RSA-MD5',
  'RSA-SHA1',
  'RSA-SHA224',
  'RSA-SHA256',
  'RSA-SHA384',
  'RSA-SHA512',
  'DSA-SHA',
  'DSA-SHA1',
  'ecdsa-with-SHA1',
];

export function pbkdf2Sync(password: Input, salt: Input, iterations: number, keylen: number, digest: string): Buffer {
  return Buffer.from(noblePbkdf2(algo(digest), bytes(password), bytes(salt), { c: iterations, dkLen: keylen }));
}
export function pbkdf2(password: Input, salt: Input, iterations: number, keylen: number, digest: string, cb: (e: Error | null, key?: Buffer) => void): void {
  callLater(cb, () => pbkdf2Sync(password, salt, iterations, keylen, digest));
}
export function hkdfSync(digest: string, ikm: Input, salt: Input, info: Input, keylen: number): ArrayBuffer {
  const k = nobleHkdf(algo(digest), bytes(ikm), bytes(salt), bytes(info), keylen);
  return k.buffer.slice(k.byteOffset, k.byteOffset + k.byteLength) as ArrayBuffer;
}

export function hkdf(digest: string, ikm: Input, salt: Input, info: Input, keylen: number, cb: (e: Error | null, key?: ArrayBuffer) => void): void {
  callLater(cb, () => hkdfSync(digest, ikm, salt, info, keylen));
}

interface ScryptOptions {
  N?: number;
  r?: number;
  p?: number;
  cost?: number;
  blockSize?: number;
  parallelization?: number;
  maxmem?: number;
}
/** Node's default memory bound for scrypt (128·N·r bytes); the worker's own memory limit applies too. */
const SCRYPT_MAXMEM = 32 * 1024 * 1024;
export function scryptSync(password: Input, salt: Input, keylen: number, options: ScryptOptions = {}): Buffer {
  const N = options.N ?? options.cost ?? 16384;
  const r = options.r ?? options.blockSize ?? 8;
  const p = options.p ?? options.parallelization ?? 1;
  const maxmem = options.maxmem ?? SCRYPT_MAXMEM;
  if (128 * N * r > maxmem)
    throw Object.assign(new RangeError(`Invalid scrypt params: memory limit exceeded (128*N*r > maxmem ${maxmem})`), {
      code: 'ERR_CRYPTO_INVALID_SCRYPT_PARAMS',
    });
  return Buffer.from(nobleScrypt(bytes(password), bytes(salt), { N, r, p, dkLen: keylen, maxmem: maxmem + 1024 }));
}
export function scrypt(
  password: Input,
  salt: Input,
  keylen: number,
  options: ScryptOptions | ((e: Error | null, key?: Buffer) => void),
  cb?: (e: Error | null, key?: Buffer) => void,
): void {
  const [opts, done] = typeof options === 'function' ? [{}, options] : [options, cb!];
  callLater(done, () => scryptSync(password, salt, keylen, opts));
}

/** Node's callback form of a synchronous function: the callback runs later, with the error or the result. */
function callLater<T>(cb: (e: Error | null, v?: T) => void, f: () => T): void {
  if (typeof cb !== 'function') throw Object.assign(new TypeError('The "callback" argument must be of type function.'), { code: 'ERR_INVALID_ARG_TYPE' });
  let v: T;
  try {
    v = f();
  } catch (e) {
    queueMicrotask(() => cb(e as Error));
    return;
  }
  queueMicrotask(() => cb(null, v));
}

export function randomFill<T extends ArrayBufferView>(buf: T, ...rest: unknown[]): void {
  const cb = rest.pop() as (e: Error | null, b?: T) => void;
  callLater(cb, () => randomFillSync(buf, ...(rest as [number?, number?])));
}

export function randomFillSync<T extends ArrayBufferView>(buf: T, offset = 0, size?: number): T {
  const view = new Uint8Array(buf.buffer, buf.byteOffset + offset, size ?? buf.byteLength - offset);
  for (let i = 0; i < view.length; i += 65536) crypto.getRandomValues(view.subarray(i, i + 65536));
  return buf;
}
export function randomBytes(size: number, cb?: (e: Error | null, b?: Buffer) => void): Buffer | undefined {
  if (!Number.isInteger(size) || size < 0 || size > 2 ** 31 - 1)
    throw Object.assign(new RangeError(`The value of "size" is out of range: ${size}`), { code: 'ERR_OUT_OF_RANGE' });
  const b = randomFillSync(Buffer.alloc(size));
  if (!cb) return b;
  queueMicrotask(() => cb(null, b));
  return undefined;
}
export function randomInt(min: number, max?: number): number {
  if (max === undefined) [min, max] = [0, min];
  const range = max - min;
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || range <= 0 || range > 2 ** 48) {
    throw Object.assign(new RangeError('randomInt: min and max must be safe integers with 0 < max - min <= 2^48'), { code: 'ERR_OUT_OF_RANGE' });
  }
  // Rejection sampling over 48 random bits, as Node does: no modulo bias.
  const limit = 2 ** 48 - (2 ** 48 % range);
  for (;;) {
    const b = randomFillSync(new Uint8Array(6));
    const n = b.reduce((acc, x) => acc * 256 + x, 0);
    if (n < limit) return min + (n % range);
  }
}
export function timingSafeEqual(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const x = bytes(a);
  const y = bytes(b);
  if (x.length !== y.length)
    throw Object.assign(new RangeError('Input buffers must have the same byte length'), { code: 'ERR_CRYPTO_TIMING_SAFE_EQUAL_LENGTH' });
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i]! ^ y[i]!;
  return d === 0;
}

export const { webcrypto, subtle, getRandomValues, randomUUID } = unenv;
export const constants = { ...unenv.constants, ...keys.rsaConstants };
export { X509Certificate };
export const {
  KeyObject,
  SecretKeyObject,
  PublicKeyObject,
  PrivateKeyObject,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKey,
  generateKeySync,
  generateKeyPair,
  generateKeyPairSync,
  sign,
  verify,
  Sign,
  Verify,
  createSign,
  createVerify,
  publicEncrypt,
  privateDecrypt,
  privateEncrypt,
  publicDecrypt,
  diffieHellman,
} = keys;
export const {
  ECDH,
  createECDH,
  getCurves,
  DiffieHellman,
  DiffieHellmanGroup,
  createDiffieHellman,
  getDiffieHellman,
  createDiffieHellmanGroup,
  generatePrime,
  generatePrimeSync,
  checkPrime,
  checkPrimeSync,
} = dh;
export const { Cipheriv, Decipheriv, createCipheriv, createDecipheriv, getCiphers, getCipherInfo } = cipher;

export default {
  ...unenv,
  ...keys,
  ...cipher,
  ...dh,
  X509Certificate,
  constants,
  Hash,
  Hmac,
  createHash,
  createHmac,
  hash,
  getHashes,
  pbkdf2,
  pbkdf2Sync,
  hkdf,
  hkdfSync,
  scrypt,
  scryptSync,
  randomBytes,
  randomFill,
  randomFillSync,
  randomInt,
  timingSafeEqual,
};
