/**
 * The host's half of node:crypto beyond WebCrypto (the ciphers, ECDH, finite-field Diffie-Hellman, primes,
 * RSA's other paddings and X.509 that workerd offers): Node's own node:crypto, run on copies of what the
 * isolate sent after checking them here (the isolate is tenant code). Stateless, like host-crypto.ts: the
 * isolate holds keys and cipher chains and sends them with each call.
 *
 * Host time is bounded, as host-crypto.ts bounds it: one call in flight per isolate (shared with
 * crypto.subtle), inputs capped, and the slow parameters capped: prime sizes (generation is seconds at
 * 4096 bits and minutes for safe primes of 1024), Diffie-Hellman primes (RFC 3526's largest), RSA moduli.
 * The jobs whose cost grows fastest (prime generation and tests, Diffie-Hellman) run on libuv's thread
 * pool, not the event loop; cipher input is processed in slices with a turn of the event loop between.
 */
import {
  checkPrime,
  constants,
  createCipheriv,
  createDecipheriv,
  createECDH,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  ECDH,
  generateKeyPair,
  generatePrime,
  type KeyObject,
  privateDecrypt,
  privateEncrypt,
  publicDecrypt,
  publicEncrypt,
  X509Certificate,
} from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { z } from 'zod';
import { CordonError } from '../../../lib/errors.ts';
import { MAX_CRYPTO_DATA } from './bootstrap/subtle-wire.ts';
import type { NodeCryptoCall, NodeCryptoResult, X509Fields } from './bootstrap/node-crypto-wire.ts';

/** The ciphers run here (the polyfill runs AES CBC/CTR/GCM/OFB on crypto.subtle). The host's OpenSSL 3 has DES, RC2 and RC4 only in its legacy provider. */
export const HOST_CIPHERS = new Set(['aes-128-ecb', 'aes-192-ecb', 'aes-256-ecb', 'des-ede3-cbc', 'des-ede-cbc', 'des-ede', 'chacha20-poly1305']);
/** The curves workerd's createECDH accepts. */
export const ECDH_CURVES = new Set(['secp224r1', 'prime256v1', 'secp384r1', 'secp521r1']);
/** Cipher input per event-loop turn: 3DES runs at ~25 MB/s, so a slice holds the loop ~10 ms. */
const CIPHER_SLICE = 256 * 1024;
/** Generation of plain and of safe primes (each doubling of size costs ~8x; a safe 1024-bit prime took ~10 s here). */
export const MAX_PRIME_BITS = 2048;
export const MAX_SAFE_PRIME_BITS = 512;
/** checkPrime: candidates and rounds (Miller-Rabin at 8192 bits is ~25 ms a round). */
export const MAX_CHECK_PRIME_BITS = 8192;
const MAX_PRIME_CHECKS = 64;
/** Diffie-Hellman primes: the largest RFC 3526 group (modp18); a key pair in DER then stays under 2.5 KiB. */
export const MAX_DH_BITS = 8192;
const MAX_DH_DER = 2560;
/** RSA outside WebCrypto runs on the event loop: a private-key operation takes ~8 ms at 4096 bits, ~100 ms at 8192. */
export const MAX_RSA_PRIVATE_BITS = 4096;
const MAX_RSA_BITS = 8192;
const MAX_KEY = 16 * 1024;
const MAX_CERT = 64 * 1024;

const Bytes = (max: number) => z.instanceof(ArrayBuffer).refine((b) => b.byteLength <= max, `more than ${max} bytes`);
const Format = z.enum(['compressed', 'uncompressed', 'hybrid']);
const Call = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('node.cipher'),
      name: z.string().max(32),
      key: Bytes(64),
      iv: Bytes(64).nullable(),
      data: Bytes(MAX_CRYPTO_DATA),
      decrypt: z.boolean(),
      final: z.boolean(),
      padding: z.boolean(),
      aad: Bytes(MAX_CRYPTO_DATA).optional(),
      tag: Bytes(16).optional(),
      tagLength: z.number().int().min(1).max(16).optional(),
    })
    .strict(),
  z.object({ op: z.literal('node.ecdh'), curve: z.string().max(32), privateKey: Bytes(66).optional(), peer: Bytes(133).optional(), format: Format }).strict(),
  z.object({ op: z.literal('node.ecdhConvert'), curve: z.string().max(32), key: Bytes(133), format: Format }).strict(),
  z
    .object({
      op: z.literal('node.dhGenerate'),
      prime: Bytes(MAX_DH_BITS / 8 + 1),
      generator: z
        .number()
        .int()
        .min(2)
        .max(2 ** 31 - 1),
    })
    .strict(),
  z.object({ op: z.literal('node.dhSecret'), privateKey: Bytes(MAX_DH_DER), publicKey: Bytes(MAX_DH_DER) }).strict(),
  z
    .object({
      op: z.literal('node.generatePrime'),
      bits: z.number().int().min(1),
      safe: z.boolean(),
      add: Bytes(MAX_PRIME_BITS / 8 + 1).optional(),
      rem: Bytes(MAX_PRIME_BITS / 8 + 1).optional(),
    })
    .strict(),
  z
    .object({ op: z.literal('node.checkPrime'), candidate: Bytes(MAX_CHECK_PRIME_BITS / 8 + 64), checks: z.number().int().min(0).max(MAX_PRIME_CHECKS) })
    .strict(),
  z
    .object({
      op: z.literal('node.rsa'),
      fn: z.enum(['publicEncrypt', 'privateDecrypt', 'privateEncrypt', 'publicDecrypt']),
      key: Bytes(MAX_KEY),
      padding: z.number().int(),
      oaepHash: z.string().max(16).optional(),
      oaepLabel: Bytes(MAX_KEY).optional(),
      data: Bytes(MAX_RSA_BITS / 8),
    })
    .strict(),
  z.object({ op: z.literal('node.x509'), der: Bytes(MAX_CERT) }).strict(),
  z
    .object({
      op: z.literal('node.x509Check'),
      der: Bytes(MAX_CERT),
      fn: z.enum(['checkHost', 'checkEmail', 'checkIP', 'checkIssued', 'verify', 'checkPrivateKey']),
      name: z.string().max(1024).optional(),
      subject: z.enum(['default', 'always', 'never']).optional(),
      wildcards: z.boolean().optional(),
      partialWildcards: z.boolean().optional(),
      multiLabelWildcards: z.boolean().optional(),
      singleLabelSubdomains: z.boolean().optional(),
      other: Bytes(MAX_CERT).optional(),
    })
    .strict(),
]);

/** A parameter we refuse (a size, a name), with Node's error code for the tenant; not a misbehaviour to audit. */
class Refused extends CordonError {
  readonly code: string;
  readonly errorName: string;
  constructor(message: string, code: string, errorName = 'RangeError') {
    super(message, { status: 400 });
    this.code = code;
    this.errorName = errorName;
  }
}

const u8 = (b: ArrayBuffer) => new Uint8Array(b);
const out = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const bitsOf = (b: Uint8Array) => {
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return i === b.length ? 0 : (b.length - i - 1) * 8 + (32 - Math.clz32(b[i]!));
};
const toBig = (b: ArrayBuffer) => (b.byteLength ? BigInt(`0x${Buffer.from(b).toString('hex')}`) : 0n);

/** createCipheriv and createDecipheriv as one shape (Node's types split them by mode and direction). */
type CipherFactory = (
  name: string,
  key: Uint8Array,
  iv: Uint8Array | null,
  options?: { authTagLength: number },
) => {
  update(data: Uint8Array): Buffer;
  final(): Buffer;
  setAutoPadding(padding: boolean): unknown;
  setAAD(aad: Uint8Array, options: { plaintextLength: number }): unknown;
  setAuthTag(tag: Uint8Array): unknown;
  getAuthTag(): Buffer;
};

async function cipher(c: Extract<NodeCryptoCall, { op: 'node.cipher' }>): Promise<NodeCryptoResult> {
  if (!HOST_CIPHERS.has(c.name)) throw new Refused(`Unknown or unsupported cipher: ${c.name}`, 'ERR_CRYPTO_UNKNOWN_CIPHER', 'Error');
  const aead = c.name === 'chacha20-poly1305';
  if (aead && !c.final) throw new Refused('chacha20-poly1305 is run whole, at final()', 'ERR_CRYPTO_INVALID_STATE', 'Error');
  const options = aead ? { authTagLength: c.tagLength ?? 16 } : undefined;
  const iv = c.iv === null ? null : u8(c.iv);
  const job = ((c.decrypt ? createDecipheriv : createCipheriv) as unknown as CipherFactory)(c.name, u8(c.key), iv, options);
  job.setAutoPadding(c.final && c.padding);
  if (c.aad) job.setAAD(u8(c.aad), { plaintextLength: c.data.byteLength });
  if (c.decrypt && aead) job.setAuthTag(u8(need(c.tag, 'tag')));
  const parts: Uint8Array[] = [];
  for (let at = 0; at < c.data.byteLength; at += CIPHER_SLICE) {
    parts.push(job.update(new Uint8Array(c.data, at, Math.min(CIPHER_SLICE, c.data.byteLength - at))));
    if (at + CIPHER_SLICE < c.data.byteLength) await nextTurn();
  }
  if (c.final) parts.push(job.final());
  const result = Buffer.concat(parts);
  if (aead && !c.decrypt) return { bytes: out(Buffer.concat([result, job.getAuthTag()])) };
  return { bytes: out(result) };
}

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new TypeError(`${what} is required`);
  return v;
}

function curve(name: string): string {
  if (!ECDH_CURVES.has(name)) throw new Refused('Invalid curve', 'ERR_CRYPTO_INVALID_CURVE', 'Error');
  return name;
}

function ecdh(c: Extract<NodeCryptoCall, { op: 'node.ecdh' }>): NodeCryptoResult {
  const e = createECDH(curve(c.curve));
  if (c.privateKey) e.setPrivateKey(u8(c.privateKey));
  else e.generateKeys();
  if (c.peer) return { bytes: out(e.computeSecret(u8(c.peer))) };
  return { pair: { privateKey: out(e.getPrivateKey()), publicKey: out(e.getPublicKey(null, c.format)) } };
}

// Node's callback forms (run on the thread pool), as promises; promisify does not pick their overloads.
const dhPair = (prime: Buffer, generator: number) =>
  new Promise<{ privateKey: KeyObject; publicKey: KeyObject }>((resolve, reject) =>
    (generateKeyPair as unknown as (t: 'dh', o: object, cb: (e: Error | null, pub: KeyObject, priv: KeyObject) => void) => void)(
      'dh',
      { prime, generator },
      (e, publicKey, privateKey) => (e ? reject(e) : resolve({ privateKey, publicKey })),
    ),
  );
const diffieHellmanAsync = (keys: { privateKey: KeyObject; publicKey: KeyObject }) =>
  new Promise<Buffer>((resolve, reject) =>
    (diffieHellman as unknown as (o: typeof keys, cb: (e: Error | null, s: Buffer) => void) => void)(keys, (e, s) => (e ? reject(e) : resolve(s))),
  );
const generatePrimeAsync = (bits: number, options: { safe: boolean; add?: bigint; rem?: bigint }) =>
  new Promise<bigint>((resolve, reject) => generatePrime(bits, { ...options, bigint: true }, (e, p) => (e ? reject(e) : resolve(p))));
const checkPrimeAsync = (candidate: Buffer, checks: number) =>
  new Promise<boolean>((resolve, reject) => checkPrime(candidate, { checks }, (e, ok) => (e ? reject(e) : resolve(ok))));

async function dhGenerate(c: Extract<NodeCryptoCall, { op: 'node.dhGenerate' }>): Promise<NodeCryptoResult> {
  const bits = bitsOf(u8(c.prime));
  if (bits > MAX_DH_BITS) throw new Refused(`DiffieHellman init failed: key is too large (more than ${MAX_DH_BITS} bits)`, 'ERR_OUT_OF_RANGE');
  const pair = await dhPair(Buffer.from(c.prime), c.generator);
  return {
    pair: { privateKey: out(pair.privateKey.export({ format: 'der', type: 'pkcs8' })), publicKey: out(pair.publicKey.export({ format: 'der', type: 'spki' })) },
  };
}

async function dhSecret(c: Extract<NodeCryptoCall, { op: 'node.dhSecret' }>): Promise<NodeCryptoResult> {
  const privateKey = createPrivateKey({ key: Buffer.from(c.privateKey), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey({ key: Buffer.from(c.publicKey), format: 'der', type: 'spki' });
  if (privateKey.asymmetricKeyType !== 'dh' || publicKey.asymmetricKeyType !== 'dh') throw new TypeError('Diffie-Hellman keys are required');
  return { bytes: out(await diffieHellmanAsync({ privateKey, publicKey })) };
}

async function prime(c: Extract<NodeCryptoCall, { op: 'node.generatePrime' }>): Promise<NodeCryptoResult> {
  const max = c.safe ? MAX_SAFE_PRIME_BITS : MAX_PRIME_BITS;
  if (c.bits > max)
    throw new Refused(`generatePrime size exceeds this runtime's maximum (${max} bits${c.safe ? ' for a safe prime' : ''})`, 'ERR_OUT_OF_RANGE');
  const p = await generatePrimeAsync(c.bits, { safe: c.safe, ...(c.add ? { add: toBig(c.add) } : {}), ...(c.rem ? { rem: toBig(c.rem) } : {}) });
  return { bytes: out(Buffer.from(p.toString(16).padStart(Math.ceil(c.bits / 8) * 2, '0'), 'hex')) };
}

async function check(c: Extract<NodeCryptoCall, { op: 'node.checkPrime' }>): Promise<NodeCryptoResult> {
  if (bitsOf(u8(c.candidate)) > MAX_CHECK_PRIME_BITS) throw new Refused('checkPrime candidate exceeds maximum size', 'ERR_OUT_OF_RANGE');
  return { ok: await checkPrimeAsync(Buffer.from(c.candidate), c.checks) };
}

const RSA_FNS = { publicEncrypt, privateDecrypt, privateEncrypt, publicDecrypt };

function rsa(c: Extract<NodeCryptoCall, { op: 'node.rsa' }>): NodeCryptoResult {
  if (![constants.RSA_PKCS1_PADDING, constants.RSA_NO_PADDING, constants.RSA_PKCS1_OAEP_PADDING].includes(c.padding))
    throw new Refused(`Unsupported RSA padding ${c.padding}`, 'ERR_INVALID_ARG_VALUE', 'TypeError');
  const priv = c.fn === 'privateDecrypt' || c.fn === 'privateEncrypt';
  const key = priv
    ? createPrivateKey({ key: Buffer.from(c.key), format: 'der', type: 'pkcs8' })
    : createPublicKey({ key: Buffer.from(c.key), format: 'der', type: 'spki' });
  const bits = key.asymmetricKeyType === 'rsa' ? Number(key.asymmetricKeyDetails?.modulusLength) : 0;
  if (!bits) throw new Refused('RSA keys are required', 'ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE', 'TypeError');
  const max = priv ? MAX_RSA_PRIVATE_BITS : MAX_RSA_BITS;
  if (bits > max)
    throw new Refused(
      `RSA ${priv ? 'private ' : ''}keys above ${max} bits are not supported for ${c.fn} with this padding (this one has ${bits})`,
      'ERR_OUT_OF_RANGE',
    );
  const options = { key, padding: c.padding, ...(c.oaepHash ? { oaepHash: c.oaepHash } : {}), ...(c.oaepLabel ? { oaepLabel: u8(c.oaepLabel) } : {}) };
  return { bytes: out(RSA_FNS[c.fn](options, u8(c.data))) };
}

function x509(c: Extract<NodeCryptoCall, { op: 'node.x509' }>): NodeCryptoResult {
  const x = new X509Certificate(Buffer.from(c.der));
  // Node's legacy object has null-prototype objects and Buffers: sent as plain objects and ArrayBuffers.
  const plain = (v: unknown): X509Fields['legacy'][string] => {
    if (Buffer.isBuffer(v)) return out(v);
    if (Array.isArray(v)) return v.map(String);
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, Array.isArray(x) ? x.map(String) : String(x)]));
    return v as string | number | boolean | undefined;
  };
  const legacy = Object.fromEntries(Object.entries(x.toLegacyObject()).map(([k, v]) => [k, plain(v)]));
  return {
    x509: {
      subject: x.subject,
      subjectAltName: x.subjectAltName,
      issuer: x.issuer,
      infoAccess: x.infoAccess,
      validFrom: x.validFrom,
      validTo: x.validTo,
      fingerprint: x.fingerprint,
      fingerprint256: x.fingerprint256,
      fingerprint512: x.fingerprint512,
      keyUsage: x.keyUsage,
      serialNumber: x.serialNumber,
      ca: x.ca,
      publicKey: out(x.publicKey.export({ format: 'der', type: 'spki' })),
      pem: x.toString(),
      legacy,
    },
  };
}

function x509Check(c: Extract<NodeCryptoCall, { op: 'node.x509Check' }>): NodeCryptoResult {
  const x = new X509Certificate(Buffer.from(c.der));
  const other = () => Buffer.from(need(c.other, 'other'));
  const name = () => need(c.name, 'name');
  const options = {
    ...(c.subject ? { subject: c.subject } : {}),
    ...(c.wildcards !== undefined ? { wildcards: c.wildcards } : {}),
    ...(c.partialWildcards !== undefined ? { partialWildcards: c.partialWildcards } : {}),
    ...(c.multiLabelWildcards !== undefined ? { multiLabelWildcards: c.multiLabelWildcards } : {}),
    ...(c.singleLabelSubdomains !== undefined ? { singleLabelSubdomains: c.singleLabelSubdomains } : {}),
  };
  switch (c.fn) {
    case 'checkHost':
      return { text: x.checkHost(name(), options) ?? null };
    case 'checkEmail':
      return { text: x.checkEmail(name(), options) ?? null };
    case 'checkIP':
      return { text: x.checkIP(name()) ?? null };
    case 'checkIssued':
      return { ok: x.checkIssued(new X509Certificate(other())) };
    case 'verify':
      return { ok: x.verify(createPublicKey({ key: other(), format: 'der', type: 'spki' })) };
    case 'checkPrivateKey':
      return { ok: x.checkPrivateKey(createPrivateKey({ key: other(), format: 'der', type: 'pkcs8' })) };
  }
}

async function perform(c: NodeCryptoCall): Promise<NodeCryptoResult> {
  switch (c.op) {
    case 'node.cipher':
      return cipher(c);
    case 'node.ecdh':
      return ecdh(c);
    case 'node.ecdhConvert':
      return { bytes: out(ECDH.convertKey(u8(c.key), curve(c.curve), undefined, undefined, c.format) as Buffer) };
    case 'node.dhGenerate':
      return dhGenerate(c);
    case 'node.dhSecret':
      return dhSecret(c);
    case 'node.generatePrime':
      return prime(c);
    case 'node.checkPrime':
      return check(c);
    case 'node.rsa':
      return rsa(c);
    case 'node.x509':
      return x509(c);
    case 'node.x509Check':
      return x509Check(c);
  }
}

/** Whether a call is for this module (its op is `node.*`). */
export const isNodeCryptoCall = (raw: unknown): boolean =>
  typeof raw === 'object' && raw !== null && typeof (raw as { op?: unknown }).op === 'string' && (raw as { op: string }).op.startsWith('node.');

/** One call from the isolate: checked, run, and answered with a result or Node's error (never a host stack, never a throw). */
export async function nodeCrypto(raw: unknown): Promise<NodeCryptoResult> {
  const parsed = Call.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: { name: 'TypeError', message: `node:crypto: invalid ${issue?.path.join('.') || 'call'}: ${issue?.message ?? 'malformed'}` } };
  }
  try {
    return await perform(parsed.data as NodeCryptoCall);
  } catch (e) {
    if (e instanceof Refused) return { error: { name: e.errorName, message: e.message, code: e.code } };
    const err = e as { name?: unknown; message?: unknown; code?: unknown };
    return {
      error: {
        name: e instanceof TypeError ? 'TypeError' : e instanceof RangeError ? 'RangeError' : 'Error',
        message: typeof err.message === 'string' ? err.message : 'the operation failed',
        ...(typeof err.code === 'string' ? { code: err.code } : {}),
      },
    };
  }
}
