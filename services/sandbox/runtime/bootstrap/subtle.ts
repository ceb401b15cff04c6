/**
 * crypto.subtle for the isolate: digest, HMAC and AES-GCM with secret keys. The algorithm work is
 * done by the host (Node's crypto) on copies of validated inputs; here live the WebCrypto surface,
 * argument checks and the CryptoKey objects. ECDSA/Ed25519/RSA and key formats other than raw/jwk
 * (oct) are not offered yet, and say so.
 */
import { DOMException, atob } from './encoding.ts';

export interface CryptoHost {
  digest(algorithm: string, data: ArrayBuffer): ArrayBuffer;
  cipher(op: string, hash: string, key: ArrayBuffer, data: ArrayBuffer, iv: ArrayBuffer | null, aad: ArrayBuffer | null, tagBits: number): ArrayBuffer;
  random(bytes: number): ArrayBuffer;
}

const HASHES = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'];
const HASH_BLOCK: Record<string, number> = { 'SHA-1': 64, 'SHA-256': 64, 'SHA-384': 128, 'SHA-512': 128 };
type Algo = { name: 'HMAC'; hash: { name: string }; length: number } | { name: 'AES-GCM'; length: number };
// Key material lives in a WeakMap in this closure, not on the object: a symbol-keyed property would be
// reachable with Object.getOwnPropertySymbols, making non-extractable keys extractable.
const RAW = new WeakMap<CryptoKey, ArrayBuffer>();
const MINT = Symbol('mint');

export class CryptoKey {
  readonly type = 'secret';
  readonly algorithm: Algo;
  readonly extractable: boolean;
  readonly usages: string[];
  constructor(mint: symbol, raw: ArrayBuffer, algorithm: Algo, extractable: boolean, usages: string[]) {
    if (mint !== MINT) throw new TypeError('Illegal constructor');
    RAW.set(this, raw);
    this.algorithm = Object.freeze(algorithm) as Algo;
    this.extractable = extractable;
    this.usages = Object.freeze([...usages]) as string[];
  }
}

function bytes(data: unknown, what = 'data'): ArrayBuffer {
  if (data instanceof ArrayBuffer) return data.slice(0);
  if (ArrayBuffer.isView(data)) return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  throw new TypeError(`${what} must be an ArrayBuffer or ArrayBufferView`);
}

function algoName(a: unknown): string {
  return String(typeof a === 'string' ? a : (a as { name?: unknown } | null)?.name).toUpperCase();
}

function hashOf(a: unknown): string {
  const h = algoName((a as { hash?: unknown } | null)?.hash ?? '');
  if (!HASHES.includes(h)) throw new DOMException(`unsupported hash ${h}`, 'NotSupportedError');
  return h;
}

function notSupported(what: string): never {
  throw new DOMException(`${what} is not supported by this runtime yet`, 'NotSupportedError');
}

function keyFor(key: unknown, name: string, usage: string): CryptoKey {
  if (!(key instanceof CryptoKey)) throw new TypeError('key must be a CryptoKey');
  if (key.algorithm.name !== name) throw new DOMException(`key is for ${key.algorithm.name}, not ${name}`, 'InvalidAccessError');
  if (!key.usages.includes(usage)) throw new DOMException(`key may not be used to ${usage}`, 'InvalidAccessError');
  return key;
}

function algorithmFor(algorithm: unknown, length: number): Algo {
  const name = algoName(algorithm);
  if (name === 'HMAC') return { name: 'HMAC', hash: { name: hashOf(algorithm) }, length: length * 8 };
  if (name === 'AES-GCM') {
    if (![16, 24, 32].includes(length)) throw new DOMException('AES-GCM keys are 128, 192 or 256 bits', 'DataError');
    return { name: 'AES-GCM', length: length * 8 };
  }
  return notSupported(`algorithm ${name}`);
}

export function makeSubtle(host: CryptoHost): object {
  const timingSafeEqual = (a: Uint8Array, b: Uint8Array) => {
    let diff = a.length ^ b.length;
    for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
    return diff === 0;
  };
  const gcm = (op: 'encrypt' | 'decrypt', params: unknown, key: unknown, data: unknown) => {
    const k = keyFor(key, 'AES-GCM', op);
    const p = params as { iv?: unknown; additionalData?: unknown; tagLength?: number };
    const iv = bytes(p.iv, 'iv');
    if (iv.byteLength === 0) throw new DOMException('iv must not be empty', 'OperationError');
    const tag = p.tagLength ?? 128;
    if (![32, 64, 96, 104, 112, 120, 128].includes(tag)) throw new DOMException('invalid tagLength', 'OperationError');
    try {
      return host.cipher(`aes-gcm-${op}`, '', RAW.get(k)!, bytes(data), iv, p.additionalData === undefined ? null : bytes(p.additionalData, 'additionalData'), tag);
    } catch {
      throw new DOMException(op === 'decrypt' ? 'The operation failed for an operation-specific reason' : 'encryption failed', 'OperationError');
    }
  };
  return Object.freeze({
    async digest(algorithm: unknown, data: unknown): Promise<ArrayBuffer> {
      const name = algoName(algorithm);
      if (!HASHES.includes(name)) throw new DOMException(`Unrecognized or unsupported digest algorithm: ${name}`, 'NotSupportedError');
      return host.digest(name, bytes(data));
    },
    async importKey(format: string, keyData: unknown, algorithm: unknown, extractable: boolean, usages: string[]): Promise<CryptoKey> {
      let raw: ArrayBuffer;
      if (format === 'raw') raw = bytes(keyData, 'keyData');
      else if (format === 'jwk' && (keyData as { kty?: unknown })?.kty === 'oct') {
        const k = String((keyData as { k?: unknown }).k ?? '').replace(/-/g, '+').replace(/_/g, '/');
        raw = Uint8Array.from(atob(k + '='.repeat((4 - (k.length % 4)) % 4)), (c) => c.charCodeAt(0)).buffer;
      } else return notSupported(`key format ${format}`);
      return new CryptoKey(MINT, raw, algorithmFor(algorithm, raw.byteLength), Boolean(extractable), [...usages]);
    },
    async generateKey(algorithm: unknown, extractable: boolean, usages: string[]): Promise<CryptoKey> {
      const name = algoName(algorithm);
      const length = name === 'HMAC' ? ((algorithm as { length?: number }).length ?? HASH_BLOCK[hashOf(algorithm)]! * 8) / 8 : ((algorithm as { length?: number }).length ?? 0) / 8;
      return new CryptoKey(MINT, host.random(length), algorithmFor(algorithm, length), Boolean(extractable), [...usages]);
    },
    async exportKey(format: string, key: unknown): Promise<ArrayBuffer> {
      if (!(key instanceof CryptoKey)) throw new TypeError('key must be a CryptoKey');
      if (!key.extractable) throw new DOMException('key is not extractable', 'InvalidAccessError');
      if (format !== 'raw') return notSupported(`export format ${format}`);
      return RAW.get(key)!.slice(0);
    },
    async sign(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
      if (algoName(algorithm) !== 'HMAC') return notSupported(`signing with ${algoName(algorithm)}`);
      const k = keyFor(key, 'HMAC', 'sign');
      return host.cipher('hmac', (k.algorithm as { hash: { name: string } }).hash.name, RAW.get(k)!, bytes(data), null, null, 0);
    },
    async verify(algorithm: unknown, key: unknown, signature: unknown, data: unknown): Promise<boolean> {
      if (algoName(algorithm) !== 'HMAC') return notSupported(`verifying with ${algoName(algorithm)}`);
      const k = keyFor(key, 'HMAC', 'verify');
      const mac = host.cipher('hmac', (k.algorithm as { hash: { name: string } }).hash.name, RAW.get(k)!, bytes(data), null, null, 0);
      return timingSafeEqual(new Uint8Array(mac), new Uint8Array(bytes(signature, 'signature')));
    },
    async encrypt(params: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
      if (algoName(params) !== 'AES-GCM') return notSupported(`encryption with ${algoName(params)}`);
      return gcm('encrypt', params, key, data);
    },
    async decrypt(params: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
      if (algoName(params) !== 'AES-GCM') return notSupported(`decryption with ${algoName(params)}`);
      return gcm('decrypt', params, key, data);
    },
  });
}
