/**
 * node:crypto's keys and signatures for the isolate: KeyObject, createPrivateKey/createPublicKey/
 * createSecretKey (encrypted keys through crypto-pem.ts), generateKeyPair(Sync)/generateKey(Sync),
 * sign/verify, createSign/createVerify, publicEncrypt/privateDecrypt/privateEncrypt/publicDecrypt and
 * diffieHellman (ECDH, X25519). Every operation is the worker's own crypto.subtle, run synchronously
 * (`node-internal:crypto`): the same host algorithms, checks and limits as WebCrypto; RSA's paddings that
 * WebCrypto lacks go to the host's node:crypto (crypto-host.ts). No cryptography is written here. A KeyObject holds its key as pkcs8 or spki bytes and imports it for
 * each operation with the algorithm that operation needs (Node picks the hash and padding per call;
 * a WebCrypto key is bound to one).
 */
import { Buffer } from 'node:buffer';
import { Writable } from 'node:stream';
import type { webcrypto } from 'node:crypto';
import { subtle } from 'node-internal:crypto';
import { buf, hostCall } from './crypto-host.ts';
import { decryptLegacy, decryptPkcs8, encryptLegacyPem, encryptPkcs8, isEncryptedPkcs8 } from './crypto-pem.ts';
import {
  derToP1363,
  fromPem,
  innerKey,
  invalidKey,
  type KeyShape,
  p1363ToDer,
  pkcs1ToPkcs8,
  pkcs1ToSpki,
  pkcs8ToSec1,
  sec1ToPkcs8,
  shapeOf,
  toPem,
} from './der.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
type Bytes = Uint8Array;

export function toBytes(data: Input, encoding?: BufferEncoding): Bytes {
  if (typeof data === 'string') return new Uint8Array(Buffer.from(data, encoding ?? 'utf8'));
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer);
  throw Object.assign(new TypeError('The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView.'), {
    code: 'ERR_INVALID_ARG_TYPE',
  });
}

// unenv's Buffer has no 'base64url' encoding.
const base64url = (b: Uint8Array) => Buffer.from(b).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

const nodeError = (message: string, code: string, Ctor: ErrorConstructor = Error) => Object.assign(new Ctor(message), { code });

const HASHES: Record<string, string> = { sha1: 'SHA-1', sha256: 'SHA-256', sha384: 'SHA-384', sha512: 'SHA-512' };
export function webHash(name: unknown): string {
  const h = typeof name === 'string' ? HASHES[name.toLowerCase().replace(/^rsa-/, '').replace('-', '')] : undefined;
  if (!h)
    throw nodeError(`Invalid digest: ${String(name)} (sha1, sha256, sha384 and sha512 are supported for signatures)`, 'ERR_CRYPTO_INVALID_DIGEST', TypeError);
  return h;
}

const CURVE_NAMES: Record<string, 'P-256' | 'P-384' | 'P-521'> = {
  'p-256': 'P-256',
  prime256v1: 'P-256',
  secp256r1: 'P-256',
  'p-384': 'P-384',
  secp384r1: 'P-384',
  'p-521': 'P-521',
  secp521r1: 'P-521',
};
const NODE_CURVE = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' } as const;
const CURVE_BYTES = { 'P-256': 32, 'P-384': 48, 'P-521': 66 } as const;
const PRIVATE_JWK = ['d', 'p', 'q', 'dp', 'dq', 'qi'];

/** The WebCrypto algorithm a key of this shape is imported with to sign (the hash is the call's). */
function signAlgorithm(s: KeyShape, hash = 'SHA-256', pss = false): string | (Record<string, unknown> & Record<string, unknown>) {
  if (s.kind === 'rsa') return { name: pss ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash };
  if (s.kind === 'ec') return { name: 'ECDSA', namedCurve: s.curve };
  if (s.kind === 'ed25519') return { name: 'Ed25519' };
  return { name: 'X25519' };
}
const usage = (s: KeyShape, type: 'private' | 'public'): string[] =>
  s.kind === 'x25519' ? (type === 'private' ? ['deriveBits'] : []) : [type === 'private' ? 'sign' : 'verify'];

const MINT = Symbol('KeyObject');

export class KeyObject {
  readonly #type: 'secret' | 'public' | 'private';
  /** pkcs8 (private), spki (public) or the raw secret. */
  readonly #der: Bytes;
  readonly #shape: KeyShape | undefined;
  #details: Record<string, unknown> | undefined;
  constructor(mint: symbol, type: 'secret' | 'public' | 'private', der: Bytes) {
    if (mint !== MINT) throw nodeError('Illegal constructor: use createSecretKey, createPublicKey or createPrivateKey', 'ERR_ILLEGAL_CONSTRUCTOR', TypeError);
    this.#type = type;
    this.#der = der;
    this.#shape = type === 'secret' ? undefined : shapeOf(der, type);
  }
  get type(): string {
    return this.#type;
  }
  get asymmetricKeyType(): string | undefined {
    return this.#shape?.kind;
  }
  get symmetricKeySize(): number | undefined {
    return this.#type === 'secret' ? this.#der.length : undefined;
  }
  get asymmetricKeyDetails(): Record<string, unknown> | undefined {
    const s = this.#shape;
    if (!s) return undefined;
    if (s.kind === 'ec') return { namedCurve: NODE_CURVE[s.curve!] };
    if (s.kind !== 'rsa') return {};
    if (!this.#details) {
      const a = this.cryptoKey(signAlgorithm(s)).algorithm as webcrypto.RsaHashedKeyAlgorithm;
      this.#details = { modulusLength: a.modulusLength, publicExponent: BigInt(`0x${Buffer.from(a.publicExponent).toString('hex')}`) };
    }
    return { ...this.#details };
  }
  /** The key as a WebCrypto key for one operation's algorithm. */
  cryptoKey(algorithm: string | Record<string, unknown>, usages?: string[], extractable = false): webcrypto.CryptoKey {
    const t = this.#type;
    if (t === 'secret') return subtle.importKey('raw', this.#der, algorithm, extractable, usages ?? []);
    return subtle.importKey(t === 'private' ? 'pkcs8' : 'spki', this.#der, algorithm, extractable, usages ?? usage(this.#shape!, t));
  }
  get shape(): KeyShape | undefined {
    return this.#shape;
  }
  get material(): Bytes {
    return this.#der.slice();
  }
  export(options: { format?: string; type?: string; cipher?: string; passphrase?: Input } = {}): Buffer | string | webcrypto.JsonWebKey {
    const format = options.format ?? (this.#type === 'secret' ? 'buffer' : undefined);
    if (format === 'jwk') return this.#jwk();
    if (this.#type === 'secret') {
      if (format !== 'buffer') throw nodeError(`The property 'options.format' is invalid for a secret key: ${format}`, 'ERR_INVALID_ARG_VALUE', TypeError);
      return Buffer.from(this.#der);
    }
    const type = options.type ?? (this.#type === 'private' ? 'pkcs8' : 'spki');
    let der: Uint8Array = this.#der;
    let label = this.#type === 'private' ? 'PRIVATE KEY' : 'PUBLIC KEY';
    if (type === 'pkcs1' && this.#shape!.kind === 'rsa') {
      der = innerKey(this.#der, this.#type as 'private' | 'public');
      label = `RSA ${label}`;
    } else if (type === 'sec1' && this.#shape!.kind === 'ec' && this.#type === 'private') {
      der = pkcs8ToSec1(this.#der, this.#shape!.curve!);
      label = 'EC PRIVATE KEY';
    } else if (type !== (this.#type === 'private' ? 'pkcs8' : 'spki')) {
      throw nodeError(
        `The property 'options.type' is invalid: ${type} (pkcs8/spki, pkcs1 for RSA, sec1 for EC, are supported)`,
        'ERR_INVALID_ARG_VALUE',
        TypeError,
      );
    }
    if (options.cipher !== undefined) {
      // Node's rules: a passphrase is needed, PKCS#8 is encrypted as PBES2 (PEM or DER), PKCS#1/SEC1 only in PEM's legacy form.
      if (options.passphrase === undefined)
        throw nodeError("The property 'options.passphrase' is invalid. Received undefined", 'ERR_INVALID_ARG_VALUE', TypeError);
      if (this.#type !== 'private') throw nodeError('Only private keys can be encrypted', 'ERR_CRYPTO_INCOMPATIBLE_KEY_OPTIONS');
      const passphrase = toBytes(options.passphrase);
      if (type === 'pkcs8') {
        const sealed = encryptPkcs8(der, options.cipher, passphrase);
        return format === 'der' ? Buffer.from(sealed) : toPem(sealed, 'ENCRYPTED PRIVATE KEY');
      }
      if (format !== 'pem') throw nodeError(`The selected key encoding ${type} does not support encryption.`, 'ERR_CRYPTO_INCOMPATIBLE_KEY_OPTIONS');
      return encryptLegacyPem(der, label, options.cipher, passphrase);
    }
    if (format === 'der') return Buffer.from(der);
    if (format === 'pem') return toPem(der, label);
    throw nodeError(`The property 'options.format' is invalid: ${String(format)}`, 'ERR_INVALID_ARG_VALUE', TypeError);
  }
  #jwk(): webcrypto.JsonWebKey {
    if (this.#type === 'secret') return { kty: 'oct', k: base64url(this.#der) };
    if (this.#shape!.kind === 'x25519' && this.#type === 'public') {
      return { crv: 'X25519', x: base64url(innerKey(this.#der, 'public')), kty: 'OKP' };
    }
    const jwk = subtle.exportKey('jwk', this.cryptoKey(signAlgorithm(this.#shape!), undefined, true)) as webcrypto.JsonWebKey;
    for (const m of ['alg', 'ext', 'key_ops', 'use'] as const) delete jwk[m];
    return jwk;
  }
  equals(other: KeyObject): boolean {
    if (!(other instanceof KeyObject) || other.#type !== this.#type || other.#der.length !== this.#der.length) return false;
    return subtle.timingSafeEqual(this.#der, other.#der);
  }
  toCryptoKey(algorithm: string | Record<string, unknown>, extractable: boolean, usages: string[]): webcrypto.CryptoKey {
    return this.cryptoKey(algorithm, usages, extractable);
  }
  static from(key: webcrypto.CryptoKey): KeyObject {
    if (!key.extractable) throw nodeError('KeyObject.from needs an extractable webcrypto.CryptoKey here', 'ERR_INVALID_ARG_VALUE', TypeError);
    const format = key.type === 'secret' ? 'raw' : key.type === 'private' ? 'pkcs8' : 'spki';
    return mint(key.type as 'secret', new Uint8Array(subtle.exportKey(format, key) as ArrayBuffer));
  }
}
export class SecretKeyObject extends KeyObject {}
export class PublicKeyObject extends KeyObject {}
export class PrivateKeyObject extends KeyObject {}
Object.defineProperty(KeyObject.prototype, Symbol.toStringTag, { value: 'KeyObject', configurable: true });

function mint(type: 'secret' | 'public' | 'private', der: Bytes): KeyObject {
  const C = type === 'secret' ? SecretKeyObject : type === 'public' ? PublicKeyObject : PrivateKeyObject;
  return new C(MINT, type, der);
}

export function createSecretKey(key: Input, encoding?: BufferEncoding): KeyObject {
  return mint('secret', toBytes(key, encoding));
}

interface KeyInput {
  key: Input | webcrypto.JsonWebKey | KeyObject;
  format?: 'pem' | 'der' | 'jwk';
  type?: 'pkcs1' | 'pkcs8' | 'spki' | 'sec1';
  encoding?: BufferEncoding;
  passphrase?: Input;
}
type KeyLike = Input | KeyObject | KeyInput;

function fromJwk(jwk: webcrypto.JsonWebKey, want: 'private' | 'public'): KeyObject {
  const priv = typeof jwk.d === 'string';
  if (want === 'private' && !priv) throw invalidKey('a JWK without its private part');
  const clean: webcrypto.JsonWebKey = { ...jwk, ext: true };
  for (const m of ['alg', 'key_ops', 'use'] as const) delete clean[m];
  if (!priv) for (const m of PRIVATE_JWK) delete (clean as Record<string, unknown>)[m];
  const algorithm =
    jwk.kty === 'RSA'
      ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
      : jwk.kty === 'EC'
        ? { name: 'ECDSA', namedCurve: jwk.crv }
        : jwk.kty === 'OKP' && (jwk.crv === 'Ed25519' || jwk.crv === 'X25519')
          ? { name: jwk.crv }
          : undefined;
  if (!algorithm) throw invalidKey(`an unsupported JWK (kty ${String(jwk.kty)}, crv ${String(jwk.crv)})`);
  const usages: string[] = jwk.crv === 'X25519' ? (priv ? ['deriveBits'] : []) : [priv ? 'sign' : 'verify'];
  const k = subtle.importKey('jwk', clean, algorithm, true, usages);
  const type = priv ? 'private' : 'public';
  const key = mint(type, new Uint8Array(subtle.exportKey(type === 'private' ? 'pkcs8' : 'spki', k) as ArrayBuffer));
  return want === 'public' && priv ? createPublicKey(key) : key;
}

function parse(input: KeyLike, want: 'private' | 'public'): KeyObject {
  if (input instanceof KeyObject) return input;
  const o: KeyInput = typeof input === 'string' || ArrayBuffer.isView(input) || input instanceof ArrayBuffer ? { key: input } : input;
  if (o.key instanceof KeyObject) return o.key;
  if (o.format === 'jwk') return fromJwk(o.key as webcrypto.JsonWebKey, want);
  // workerd's message for an encrypted key without its passphrase; Node's code.
  const passphrase = () => {
    if (o.passphrase === undefined || o.passphrase === null) throw nodeError('Failed to parse private key', 'ERR_MISSING_PASSPHRASE', TypeError);
    return toBytes(o.passphrase);
  };
  if (o.format === 'der') {
    let der = toBytes(o.key as Input);
    if (o.type === 'pkcs8' && isEncryptedPkcs8(der)) der = decryptPkcs8(der, passphrase());
    if (o.type === 'pkcs1') return want === 'private' ? mint('private', pkcs1ToPkcs8(der)) : mint('public', pkcs1ToSpki(der));
    if (o.type === 'sec1') return mint('private', sec1ToPkcs8(der));
    const isPrivate = o.type === 'pkcs8' || (o.type === undefined && want === 'private');
    return mint(isPrivate ? 'private' : 'public', der);
  }
  const text = typeof o.key === 'string' ? o.key : Buffer.from(toBytes(o.key as Input)).toString(o.encoding ?? 'utf8');
  const pem = fromPem(text);
  const { label } = pem;
  let der = pem.der;
  if (label === 'ENCRYPTED PRIVATE KEY') return mint('private', decryptPkcs8(der, passphrase()));
  if (pem.headers['Proc-Type']?.includes('ENCRYPTED')) der = decryptLegacy(der, pem.headers['DEK-Info'] ?? '', passphrase());
  switch (label) {
    case 'PRIVATE KEY':
      return mint('private', der as Bytes);
    case 'RSA PRIVATE KEY':
      return mint('private', pkcs1ToPkcs8(der));
    case 'EC PRIVATE KEY':
      return mint('private', sec1ToPkcs8(der));
    case 'PUBLIC KEY':
      return mint('public', der as Bytes);
    case 'RSA PUBLIC KEY':
      return mint('public', pkcs1ToSpki(der));
    default:
      throw invalidKey(`unsupported PEM label ${label}`);
  }
}

export function createPrivateKey(key: KeyLike): KeyObject {
  const k = parse(key, 'private');
  if (k.type !== 'private') throw nodeError(`Invalid key object type ${k.type}, expected private.`, 'ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE', TypeError);
  return k;
}

/** A public key, or the public half of a private key (through its JWK: WebCrypto has no other way). */
export function createPublicKey(key: KeyLike): KeyObject {
  const k = parse(key, 'public');
  if (k.type === 'public') return k;
  if (k.type !== 'private') throw nodeError(`Invalid key object type ${k.type}, expected public.`, 'ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE', TypeError);
  const shape = k.shape!;
  if (shape.kind === 'x25519') {
    // X25519 keys cannot sign, so their JWK export is the only way to their public value.
    const jwk = subtle.exportKey('jwk', k.cryptoKey({ name: 'X25519' }, ['deriveBits'], true)) as webcrypto.JsonWebKey;
    const pub = subtle.importKey('jwk', { kty: 'OKP', crv: 'X25519', x: jwk.x, ext: true }, { name: 'X25519' }, true, []);
    return mint('public', new Uint8Array(subtle.exportKey('spki', pub) as ArrayBuffer));
  }
  const jwk = subtle.exportKey('jwk', k.cryptoKey(signAlgorithm(shape), undefined, true)) as Record<string, unknown>;
  for (const m of [...PRIVATE_JWK, 'key_ops']) delete jwk[m];
  const pub = subtle.importKey('jwk', jwk, signAlgorithm(shape), true, ['verify']);
  return mint('public', new Uint8Array(subtle.exportKey('spki', pub) as ArrayBuffer));
}

interface PairOptions {
  modulusLength?: number;
  publicExponent?: number;
  namedCurve?: string;
  publicKeyEncoding?: { format?: string; type?: string };
  privateKeyEncoding?: { format?: string; type?: string };
}

function encoded(k: KeyObject, enc: PairOptions['publicKeyEncoding']): KeyObject | Buffer | string | webcrypto.JsonWebKey {
  return enc ? k.export(enc) : k;
}

export function generateKeyPairSync(type: string, options: PairOptions = {}): { publicKey: unknown; privateKey: unknown } {
  let algorithm: Record<string, unknown>;
  if (type === 'rsa') {
    const e = options.publicExponent ?? 0x10001;
    const exp = Buffer.from(e.toString(16).padStart(6, '0'), 'hex');
    algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: options.modulusLength, publicExponent: new Uint8Array(exp) };
  } else if (type === 'ec') {
    const curve = CURVE_NAMES[String(options.namedCurve).toLowerCase()];
    if (!curve)
      throw nodeError(`Invalid EC curve name ${String(options.namedCurve)} (P-256, P-384 and P-521 are supported)`, 'ERR_CRYPTO_INVALID_CURVE', TypeError);
    algorithm = { name: 'ECDSA', namedCurve: curve };
  } else if (type === 'ed25519') algorithm = { name: 'Ed25519' };
  else if (type === 'x25519') algorithm = { name: 'X25519' };
  else throw nodeError(`The argument 'type' must be one of 'rsa', 'ec', 'ed25519', 'x25519' here. Received '${type}'`, 'ERR_INVALID_ARG_VALUE', TypeError);
  const usages: string[] = type === 'x25519' ? ['deriveBits'] : ['sign', 'verify'];
  const pair = subtle.generateKey(algorithm, true, usages) as webcrypto.CryptoKeyPair;
  const privateKey = mint('private', new Uint8Array(subtle.exportKey('pkcs8', pair.privateKey) as ArrayBuffer));
  const publicKey = mint('public', new Uint8Array(subtle.exportKey('spki', pair.publicKey) as ArrayBuffer));
  return { publicKey: encoded(publicKey, options.publicKeyEncoding), privateKey: encoded(privateKey, options.privateKeyEncoding) };
}

type Callback<T> = (err: Error | null, ...values: T[]) => void;
/** Node's callback form of a synchronous function: the callback runs later, with the error or the results. */
function later<T>(cb: Callback<T> | undefined, f: () => T[]): void {
  if (typeof cb !== 'function') throw nodeError('The "callback" argument must be of type function.', 'ERR_INVALID_ARG_TYPE', TypeError);
  let values: T[];
  try {
    values = f();
  } catch (e) {
    queueMicrotask(() => cb(e as Error));
    return;
  }
  queueMicrotask(() => cb(null, ...values));
}

export function generateKeyPair(type: string, options: PairOptions, cb: Callback<unknown>): void {
  later(cb, () => {
    const { publicKey, privateKey } = generateKeyPairSync(type, options);
    return [publicKey, privateKey];
  });
}

export function generateKeySync(type: 'hmac' | 'aes', options: { length: number }): KeyObject {
  const bits = options?.length;
  const ok = type === 'aes' ? [128, 192, 256].includes(bits) : type === 'hmac' && Number.isInteger(bits) && bits >= 8 && bits <= 2 ** 31 - 1;
  if (!ok) throw nodeError(`Invalid key length or type: ${type} ${String(bits)}`, 'ERR_INVALID_ARG_VALUE', TypeError);
  const bytes = new Uint8Array(bits >> 3);
  for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return mint('secret', bytes);
}
export function generateKey(type: 'hmac' | 'aes', options: { length: number }, cb: Callback<KeyObject>): void {
  later(cb, () => [generateKeySync(type, options)]);
}

// Node's constants for sign/verify and publicEncrypt.
const RSA_PKCS1_PADDING = 1;
const RSA_NO_PADDING = 3;
const RSA_PKCS1_OAEP_PADDING = 4;
const RSA_PKCS1_PSS_PADDING = 6;
const RSA_PSS_SALTLEN_DIGEST = -1;
const RSA_PSS_SALTLEN_MAX_SIGN = -2;
const RSA_PSS_SALTLEN_AUTO = -2;
export const rsaConstants = {
  RSA_PKCS1_PADDING,
  RSA_NO_PADDING,
  RSA_PKCS1_OAEP_PADDING,
  RSA_PKCS1_PSS_PADDING,
  RSA_PSS_SALTLEN_DIGEST,
  RSA_PSS_SALTLEN_MAX_SIGN,
  RSA_PSS_SALTLEN_AUTO,
};

interface SignOptions {
  padding?: number;
  saltLength?: number;
  dsaEncoding?: 'der' | 'ieee-p1363';
}
const HASH_BYTES: Record<string, number> = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };

function signParams(
  algorithm: string | null | undefined,
  k: KeyObject,
  o: SignOptions,
): { alg: Record<string, unknown>; sigAlg: Record<string, unknown>; ec?: number } {
  const shape = k.shape;
  if (!shape || shape.kind === 'x25519')
    throw nodeError(`Invalid key type ${k.asymmetricKeyType ?? k.type} for signing`, 'ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE', TypeError);
  if (shape.kind === 'ed25519') {
    if (algorithm != null) throw nodeError('Ed25519 signs without a digest: pass null as the algorithm', 'ERR_CRYPTO_INVALID_DIGEST', TypeError);
    return { alg: { name: 'Ed25519' }, sigAlg: { name: 'Ed25519' } };
  }
  const hash = webHash(algorithm ?? 'sha256');
  if (shape.kind === 'ec') return { alg: { name: 'ECDSA', namedCurve: shape.curve }, sigAlg: { name: 'ECDSA', hash }, ec: CURVE_BYTES[shape.curve!] };
  const padding = o.padding ?? RSA_PKCS1_PADDING;
  if (padding === RSA_PKCS1_PADDING) return { alg: { name: 'RSASSA-PKCS1-v1_5', hash }, sigAlg: { name: 'RSASSA-PKCS1-v1_5' } };
  if (padding !== RSA_PKCS1_PSS_PADDING) throw nodeError(`Unsupported RSA padding ${padding} for signatures`, 'ERR_INVALID_ARG_VALUE', TypeError);
  const modBytes = Number((k.asymmetricKeyDetails as { modulusLength: number }).modulusLength) >> 3;
  const max = modBytes - HASH_BYTES[hash]! - 2;
  const s = o.saltLength ?? RSA_PSS_SALTLEN_MAX_SIGN;
  const saltLength = s === RSA_PSS_SALTLEN_DIGEST ? HASH_BYTES[hash]! : s === RSA_PSS_SALTLEN_MAX_SIGN ? max : s;
  return { alg: { name: 'RSA-PSS', hash }, sigAlg: { name: 'RSA-PSS', saltLength } };
}

const optionsOf = (key: KeyLike): SignOptions => (key && typeof key === 'object' && !ArrayBuffer.isView(key) && 'key' in key ? (key as SignOptions) : {});

function signBytes(algorithm: string | null | undefined, data: Bytes, key: KeyLike): Buffer {
  const k = createPrivateKey(key);
  const o = optionsOf(key);
  const { alg, sigAlg, ec } = signParams(algorithm, k, o);
  const sig = new Uint8Array(subtle.sign(sigAlg, k.cryptoKey(alg, ['sign']), data));
  return Buffer.from(ec && o.dsaEncoding !== 'ieee-p1363' ? p1363ToDer(sig) : sig);
}

function verifyBytes(algorithm: string | null | undefined, data: Bytes, key: KeyLike, signature: Bytes): boolean {
  const given = parse(key, 'public');
  const k = given.type === 'private' ? createPublicKey(given) : given;
  const o = optionsOf(key);
  const { alg, sigAlg, ec } = signParams(algorithm, k, o);
  const sig = ec && o.dsaEncoding !== 'ieee-p1363' ? derToP1363(signature, ec) : signature;
  if (!sig) return false;
  const pssAuto = sigAlg.name === 'RSA-PSS' && (o.saltLength ?? RSA_PSS_SALTLEN_AUTO) === RSA_PSS_SALTLEN_AUTO;
  // Node's verify recovers any salt length by default; WebCrypto needs one: the usual ones are tried.
  const salts = pssAuto ? [...new Set([sigAlg.saltLength as number, HASH_BYTES[alg.hash as string]!, 0])] : [sigAlg.saltLength];
  const ck = k.cryptoKey(alg, ['verify']);
  return salts.some((saltLength) => subtle.verify({ ...sigAlg, ...(saltLength === undefined ? {} : { saltLength }) }, ck, sig as Bytes, data));
}

export function sign(algorithm: string | null | undefined, data: Input, key: KeyLike, cb?: Callback<Buffer>): Buffer | undefined {
  if (cb) {
    later(cb, () => [signBytes(algorithm, toBytes(data), key)]);
    return undefined;
  }
  return signBytes(algorithm, toBytes(data), key);
}
export function verify(algorithm: string | null | undefined, data: Input, key: KeyLike, signature: Input, cb?: Callback<boolean>): boolean | undefined {
  if (cb) {
    later(cb, () => [verifyBytes(algorithm, toBytes(data), key, toBytes(signature))]);
    return undefined;
  }
  return verifyBytes(algorithm, toBytes(data), key, toBytes(signature));
}

/** createSign/createVerify: the data is gathered (WebCrypto signs in one call), then signed at the end. */
class Gather extends Writable {
  protected readonly algorithm: string;
  #parts: Bytes[] = [];
  constructor(algorithm: string) {
    super();
    webHash(algorithm);
    this.algorithm = algorithm;
  }
  update(data: Input, encoding?: BufferEncoding): this {
    this.#parts.push(toBytes(data, encoding));
    return this;
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.update(chunk);
    cb();
  }
  protected gathered(): Bytes {
    return new Uint8Array(Buffer.concat(this.#parts));
  }
}
export class Sign extends Gather {
  sign(key: KeyLike, encoding?: BufferEncoding): Buffer | string {
    const sig = signBytes(this.algorithm, this.gathered(), key);
    return encoding ? sig.toString(encoding) : sig;
  }
}
export class Verify extends Gather {
  verify(key: KeyLike, signature: Input, encoding?: BufferEncoding): boolean {
    return verifyBytes(this.algorithm, this.gathered(), key, toBytes(signature, encoding));
  }
}
export const createSign = (algorithm: string) => new Sign(algorithm);
export const createVerify = (algorithm: string) => new Verify(algorithm);

interface RsaOptions {
  padding?: number;
  oaepHash?: string;
  oaepLabel?: Input;
}
/**
 * RSA encryption: OAEP (the default of publicEncrypt/privateDecrypt) on crypto.subtle; PKCS#1 v1.5, no
 * padding, and the private-key direction (privateEncrypt/publicDecrypt), which WebCrypto lacks, on the
 * host's node:crypto (crypto-host.ts).
 */
function rsaCrypt(fn: 'publicEncrypt' | 'privateDecrypt' | 'privateEncrypt' | 'publicDecrypt', key: KeyLike, data: Input): Buffer {
  const priv = fn === 'privateDecrypt' || fn === 'privateEncrypt';
  let k: KeyObject;
  if (priv) k = createPrivateKey(key);
  else {
    const given = parse(key, 'public');
    k = given.type === 'private' ? createPublicKey(given) : given;
  }
  const o = optionsOf(key) as RsaOptions;
  const padding = o.padding ?? (fn === 'publicEncrypt' || fn === 'privateDecrypt' ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING);
  const bytes = toBytes(data);
  if (padding === RSA_PKCS1_OAEP_PADDING && (fn === 'publicEncrypt' || fn === 'privateDecrypt')) {
    const alg = { name: 'RSA-OAEP', ...(o.oaepLabel ? { label: toBytes(o.oaepLabel) } : {}) };
    const ck = k.cryptoKey({ name: 'RSA-OAEP', hash: webHash(o.oaepHash ?? 'sha1') }, [fn === 'publicEncrypt' ? 'encrypt' : 'decrypt']);
    return Buffer.from(fn === 'publicEncrypt' ? subtle.encrypt(alg, ck, bytes) : subtle.decrypt(alg, ck, bytes));
  }
  const out = hostCall(
    {
      op: 'node.rsa',
      fn,
      key: buf(k.material),
      padding,
      ...(o.oaepHash ? { oaepHash: String(o.oaepHash) } : {}),
      ...(o.oaepLabel ? { oaepLabel: buf(toBytes(o.oaepLabel)) } : {}),
      data: buf(bytes),
    },
    'bytes',
  );
  return Buffer.from(out);
}
export const publicEncrypt = (key: KeyLike, data: Input) => rsaCrypt('publicEncrypt', key, data);
export const privateDecrypt = (key: KeyLike, data: Input) => rsaCrypt('privateDecrypt', key, data);
export const privateEncrypt = (key: KeyLike, data: Input) => rsaCrypt('privateEncrypt', key, data);
export const publicDecrypt = (key: KeyLike, data: Input) => rsaCrypt('publicDecrypt', key, data);

/** The shared secret of a private key and a peer's public key: ECDH on the same curve, or X25519. */
export function diffieHellman(options: { privateKey: KeyObject; publicKey: KeyObject }): Buffer {
  const { privateKey, publicKey } = options ?? {};
  if (!(privateKey instanceof KeyObject) || !(publicKey instanceof KeyObject) || privateKey.type !== 'private' || publicKey.type !== 'public') {
    throw nodeError('diffieHellman needs { privateKey, publicKey } as KeyObjects', 'ERR_INVALID_ARG_VALUE', TypeError);
  }
  const a = privateKey.shape!;
  const b = publicKey.shape!;
  if (a.kind !== b.kind || a.curve !== b.curve || (a.kind !== 'ec' && a.kind !== 'x25519')) {
    throw nodeError('Incompatible key types for Diffie-Hellman: both ec on one curve, or both x25519', 'ERR_CRYPTO_INCOMPATIBLE_KEY', TypeError);
  }
  const algorithm = a.kind === 'ec' ? { name: 'ECDH', namedCurve: a.curve } : { name: 'X25519' };
  const mine = privateKey.cryptoKey(algorithm, ['deriveBits']);
  const theirs = publicKey.cryptoKey(algorithm, []);
  return Buffer.from(subtle.deriveBits({ ...algorithm, public: theirs }, mine, null));
}
