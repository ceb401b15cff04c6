/**
 * crypto.subtle for the isolate: digest; HMAC and AES-GCM with secret keys; ECDSA (P-256, P-384) and
 * Ed25519 signatures; import and export in raw, spki, pkcs8 and jwk. The algorithm work is done by the
 * host (Node's crypto) on copies of validated inputs; here live the WebCrypto surface, argument checks
 * and the CryptoKey objects. Asymmetric keys travel to the host as DER (pkcs8 / spki). RSA and other
 * algorithms are not offered, and say so.
 */
import { DOMException, TextEncoder, atob, btoa } from './encoding.ts';

export interface CryptoHost {
  digest(algorithm: string, data: ArrayBuffer): ArrayBuffer;
  cipher(op: string, hash: string, key: ArrayBuffer, data: ArrayBuffer, iv: ArrayBuffer | null, aad: ArrayBuffer | null, tagBits: number): ArrayBuffer;
  /** Asymmetric keys: op and its JSON parameters, plus up to two byte arguments; bytes or JSON back. */
  asym(op: string, params: string, a: ArrayBuffer | null, b: ArrayBuffer | null): ArrayBuffer | string | boolean;
  random(bytes: number): ArrayBuffer;
}

const HASHES = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'];
const HASH_BLOCK: Record<string, number> = { 'SHA-1': 64, 'SHA-256': 64, 'SHA-384': 128, 'SHA-512': 128 };
const CURVES = ['P-256', 'P-384'];
type Algo =
  | { name: 'HMAC'; hash: { name: string }; length: number }
  | { name: 'AES-GCM'; length: number }
  | { name: 'ECDSA'; namedCurve: string }
  | { name: 'Ed25519' };
type KeyType = 'secret' | 'public' | 'private';

// Key material lives in a WeakMap in this closure, not on the object: a symbol-keyed property would be
// reachable with Object.getOwnPropertySymbols, making non-extractable keys extractable.
const RAW = new WeakMap<CryptoKey, ArrayBuffer>();
const MINT = Symbol('mint');

export class CryptoKey {
  readonly type: KeyType;
  readonly algorithm: Algo;
  readonly extractable: boolean;
  readonly usages: string[];
  constructor(mint: symbol, raw: ArrayBuffer, type: KeyType, algorithm: Algo, extractable: boolean, usages: string[]) {
    if (mint !== MINT) throw new TypeError('Illegal constructor');
    RAW.set(this, raw);
    this.type = type;
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
  const n = String(typeof a === 'string' ? a : (a as { name?: unknown } | null)?.name);
  return n.toUpperCase() === 'ED25519' ? 'Ed25519' : n.toUpperCase();
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

function secretAlgorithm(algorithm: unknown, length: number): Algo {
  const name = algoName(algorithm);
  if (name === 'HMAC') return { name: 'HMAC', hash: { name: hashOf(algorithm) }, length: length * 8 };
  if (name === 'AES-GCM') {
    if (![16, 24, 32].includes(length)) throw new DOMException('AES-GCM keys are 128, 192 or 256 bits', 'DataError');
    return { name: 'AES-GCM', length: length * 8 };
  }
  return notSupported(`algorithm ${name}`);
}

function asymAlgorithm(algorithm: unknown): { name: 'ECDSA'; namedCurve: string } | { name: 'Ed25519' } | undefined {
  const name = algoName(algorithm);
  if (name === 'Ed25519') return { name: 'Ed25519' };
  if (name !== 'ECDSA') return undefined;
  const curve = String((algorithm as { namedCurve?: unknown }).namedCurve);
  if (!CURVES.includes(curve)) throw new DOMException(`unsupported namedCurve ${curve} (P-256 and P-384 are)`, 'NotSupportedError');
  return { name: 'ECDSA', namedCurve: curve };
}

const b64url = {
  encode: (b: ArrayBuffer) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
  decode: (s: string) => {
    const t = s.replace(/-/g, '+').replace(/_/g, '/');
    return Uint8Array.from(atob(t + '='.repeat((4 - (t.length % 4)) % 4)), (c) => c.charCodeAt(0)).buffer;
  },
};

const SIGN_USAGES: Record<KeyType, string[]> = { private: ['sign'], public: ['verify'], secret: [] };

export function makeSubtle(host: CryptoHost): object {
  const timingSafeEqual = (a: Uint8Array, b: Uint8Array) => {
    let diff = a.length ^ b.length;
    for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
    return diff === 0;
  };
  const failed = (e: unknown, name = 'DataError'): never => {
    throw new DOMException(e instanceof Error ? e.message : 'the key could not be used', name);
  };
  const asym = (op: string, params: object, a: ArrayBuffer | null = null, b: ArrayBuffer | null = null) => {
    try {
      return host.asym(op, JSON.stringify(params), a, b);
    } catch (e) {
      return failed(e, op === 'sign' || op === 'verify' ? 'OperationError' : 'DataError');
    }
  };
  const asymKey = (der: ArrayBuffer, type: KeyType, algorithm: Algo, extractable: boolean, usages: string[]) => {
    for (const u of usages) if (!SIGN_USAGES[type].includes(u)) throw new DOMException(`a ${type} ${algorithm.name} key cannot be used to ${u}`, 'SyntaxError');
    return new CryptoKey(MINT, der, type, algorithm, extractable, usages);
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
  const signing = (algorithm: unknown, key: unknown, usage: 'sign' | 'verify') => {
    // The curve is the key's; the parameters name the algorithm (and, for ECDSA, the hash).
    const name = algoName(algorithm);
    if (name !== 'ECDSA' && name !== 'Ed25519') return undefined;
    const k = keyFor(key, name, usage);
    return { k, params: { ...(k.algorithm as object), hash: name === 'ECDSA' ? hashOf(algorithm) : null } };
  };
  return Object.freeze({
    async digest(algorithm: unknown, data: unknown): Promise<ArrayBuffer> {
      const name = algoName(algorithm);
      if (!HASHES.includes(name)) throw new DOMException(`Unrecognized or unsupported digest algorithm: ${name}`, 'NotSupportedError');
      return host.digest(name, bytes(data));
    },
    async importKey(format: string, keyData: unknown, algorithm: unknown, extractable: boolean, usages: string[]): Promise<CryptoKey> {
      const alg = asymAlgorithm(algorithm);
      if (alg) {
        if (!['raw', 'spki', 'pkcs8', 'jwk'].includes(format)) return notSupported(`key format ${format}`);
        const data = format === 'jwk' ? (new TextEncoder().encode(JSON.stringify(keyData)).buffer as ArrayBuffer) : bytes(keyData, 'keyData');
        const { type, der } = JSON.parse(asym('import', { format, ...alg }, data) as string) as { type: 'public' | 'private'; der: string };
        return asymKey(b64url.decode(der), type, alg, Boolean(extractable), [...usages]);
      }
      let raw: ArrayBuffer;
      if (format === 'raw') raw = bytes(keyData, 'keyData');
      else if (format === 'jwk' && (keyData as { kty?: unknown })?.kty === 'oct') raw = b64url.decode(String((keyData as { k?: unknown }).k ?? ''));
      else return notSupported(`key format ${format}`);
      return new CryptoKey(MINT, raw, 'secret', secretAlgorithm(algorithm, raw.byteLength), Boolean(extractable), [...usages]);
    },
    async generateKey(algorithm: unknown, extractable: boolean, usages: string[]): Promise<CryptoKey | { publicKey: CryptoKey; privateKey: CryptoKey }> {
      const alg = asymAlgorithm(algorithm);
      if (alg) {
        const pair = JSON.parse(asym('generate', alg) as string) as { publicKey: string; privateKey: string };
        return {
          publicKey: asymKey(b64url.decode(pair.publicKey), 'public', alg, true, usages.filter((u) => u === 'verify')),
          privateKey: asymKey(b64url.decode(pair.privateKey), 'private', alg, Boolean(extractable), usages.filter((u) => u === 'sign')),
        };
      }
      const name = algoName(algorithm);
      const length = name === 'HMAC' ? ((algorithm as { length?: number }).length ?? HASH_BLOCK[hashOf(algorithm)]! * 8) / 8 : ((algorithm as { length?: number }).length ?? 0) / 8;
      return new CryptoKey(MINT, host.random(length), 'secret', secretAlgorithm(algorithm, length), Boolean(extractable), [...usages]);
    },
    async exportKey(format: string, key: unknown): Promise<ArrayBuffer | object> {
      if (!(key instanceof CryptoKey)) throw new TypeError('key must be a CryptoKey');
      if (!key.extractable) throw new DOMException('key is not extractable', 'InvalidAccessError');
      const raw = RAW.get(key)!;
      if (key.type === 'secret') {
        if (format === 'raw') return raw.slice(0);
        if (format === 'jwk') return { kty: 'oct', k: b64url.encode(raw), ext: true, key_ops: [...key.usages] };
        return notSupported(`export format ${format} for a secret key`);
      }
      if ((format === 'spki' || format === 'raw') && key.type !== 'public') throw new DOMException(`${format} is for public keys`, 'InvalidAccessError');
      if (format === 'pkcs8' && key.type !== 'private') throw new DOMException('pkcs8 is for private keys', 'InvalidAccessError');
      if (format === 'spki' || format === 'pkcs8') return raw.slice(0);
      if (format !== 'raw' && format !== 'jwk') return notSupported(`export format ${format}`);
      const out = asym('export', { format, type: key.type, ...(key.algorithm as object) }, raw);
      return format === 'jwk' ? { ...(JSON.parse(out as string) as object), ext: true, key_ops: [...key.usages] } : (out as ArrayBuffer);
    },
    async sign(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
      const s = signing(algorithm, key, 'sign');
      if (s) return asym('sign', s.params, RAW.get(s.k)!, bytes(data)) as ArrayBuffer;
      if (algoName(algorithm) !== 'HMAC') return notSupported(`signing with ${algoName(algorithm)}`);
      const k = keyFor(key, 'HMAC', 'sign');
      return host.cipher('hmac', (k.algorithm as { hash: { name: string } }).hash.name, RAW.get(k)!, bytes(data), null, null, 0);
    },
    async verify(algorithm: unknown, key: unknown, signature: unknown, data: unknown): Promise<boolean> {
      const s = signing(algorithm, key, 'verify');
      if (s) {
        // The signature is packed after the data; a length prefix would be the host's to trust, so it is in params.
        const sig = bytes(signature, 'signature');
        const d = bytes(data);
        const both = new Uint8Array(d.byteLength + sig.byteLength);
        both.set(new Uint8Array(d), 0);
        both.set(new Uint8Array(sig), d.byteLength);
        return asym('verify', { ...s.params, dataLength: d.byteLength }, RAW.get(s.k)!, both.buffer) as boolean;
      }
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
