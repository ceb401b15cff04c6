/**
 * The host's half of crypto.subtle: every algorithm is Node's WebCrypto (`webcrypto.subtle`), run on
 * copies of what the isolate sent, after checking them again here (the isolate is tenant code).
 *
 * Keys live in the isolate, as bytes (raw, pkcs8 or spki) beside their attributes, and come back with
 * each call; the host keeps nothing between calls. A host-side key table would keep secrets out of the
 * isolate, but the isolate already holds them (it imported or generated them), and a table is state the
 * host must bound, count against the right isolate, release on every path and guard against forged or
 * stale handles. Bytes per call keep the interface one stateless function with one schema, the key's
 * memory counted in the isolate's heap limit, and nothing for one isolate to name in another's keys.
 * Re-importing a key per call costs microseconds.
 *
 * Host time is bounded rather than metered (the isolate's CPU limit does not see it): Node runs these
 * jobs on libuv's thread pool, not on the event loop; the isolate waits for each answer (its wall-time
 * limit runs meanwhile), so it has one job at a time, and the host refuses a second; inputs are capped;
 * and the slow parameters are capped as Workers caps them (PBKDF2 iterations) or tighter (RSA moduli).
 */
import { createHash, webcrypto } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { z } from 'zod';
import { CordonError } from '../../../lib/errors.ts';
import type { NodeCryptoResult } from './bootstrap/node-crypto-wire.ts';
import { isNodeCryptoCall, nodeCrypto } from './host-node-crypto.ts';
import { MAX_CRYPTO_DATA, type WireDict, type WireKey, type WireResult } from './bootstrap/subtle-wire.ts';

const { subtle } = webcrypto;
type Key = webcrypto.CryptoKey;

/** Key material and JWK members: an 8192-bit RSA private key in pkcs8 is under 5 KiB. */
const MAX_KEY = 16 * 1024;
/** Workers refuses PBKDF2 above this; each iteration is two hash compressions per output block. */
const MAX_PBKDF2_ITERATIONS = 100_000;
/** PBKDF2 output blocks (hash lengths) at most: the cost is iterations × blocks. */
const MAX_PBKDF2_BLOCKS = 4;
/** RSA key generation is seconds at 8192 bits; operations on larger keys are slow for everyone on the pool. */
const MAX_RSA_GENERATE_BITS = 4096;
const MAX_RSA_BITS = 8192;
const HASH_BYTES: Record<string, number> = { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 };
/** MD5 is not in Node's WebCrypto; hashed here in slices so a large input never holds the event loop long. */
const MD5_SLICE = 1024 * 1024;
/** Jobs one isolate may have with the host at once: its calls block it until answered, so one. */
export const MAX_CRYPTO_IN_FLIGHT = 1;

const Bytes = (max: number) => z.instanceof(ArrayBuffer).refine((b) => b.byteLength <= max, `more than ${max} bytes`);
const Name = z.string().max(64);
const Usages = z.array(z.string().max(16)).max(8);
const Member = z.union([
  z.string().max(256),
  z.number(),
  z.boolean(),
  Bytes(MAX_KEY),
  z.instanceof(Uint8Array).refine((b) => b.byteLength <= MAX_KEY),
  z.object({ name: Name }).strict(),
]);
const small = <T extends z.ZodTypeAny>(r: z.ZodRecord<z.ZodString, T>) => r.refine((d) => Object.keys(d).length <= 16, 'too many members');
const KeyAlgorithm = small(z.record(Name, Member));
const WireKeySchema = z
  .object({ type: z.enum(['secret', 'public', 'private']), algorithm: KeyAlgorithm, extractable: z.boolean(), usages: Usages, data: Bytes(MAX_KEY) })
  .strict();
const Dict = small(z.record(Name, z.union([WireKeySchema, Member])));
const Jwk = small(z.record(Name, z.union([z.string().max(MAX_KEY), z.boolean(), z.array(z.string().max(16)).max(8)])));
const Call = z
  .object({
    op: z.enum(['digest', 'generateKey', 'importKey', 'exportKey', 'sign', 'verify', 'encrypt', 'decrypt', 'deriveBits', 'deriveKey', 'wrapKey', 'unwrapKey']),
    algorithm: Dict.optional(),
    keyAlgorithm: Dict.optional(),
    format: z.enum(['raw', 'spki', 'pkcs8', 'jwk']).optional(),
    keyData: z.union([Bytes(MAX_KEY), Jwk]).optional(),
    key: WireKeySchema.optional(),
    wrappingKey: WireKeySchema.optional(),
    data: Bytes(MAX_CRYPTO_DATA).optional(),
    signature: Bytes(MAX_KEY).optional(),
    extractable: z.boolean().optional(),
    usages: Usages.optional(),
    length: z
      .number()
      .int()
      .min(0)
      .max(MAX_KEY * 8)
      .nullable()
      .optional(),
  })
  .strict();
type Call = z.infer<typeof Call>;

/** What we do not do (an algorithm, a size), with the DOMException name the tenant sees; not a misbehaviour to audit. */
class Refused extends CordonError {
  readonly domName: string;
  constructor(message: string, domName: string) {
    super(message, { status: 400 });
    this.domName = domName;
  }
}

const nameOf = (d: WireDict | undefined) => String(d?.name ?? '').toUpperCase();
const hashName = (d: WireDict | undefined) => {
  const h = d?.hash as string | { name: string } | undefined;
  return String(typeof h === 'string' ? h : (h?.name ?? '')).toUpperCase();
};

/**
 * Workers' algorithms, and no others: Node has more (Argon2 with a tenant-chosen memory size, ML-KEM,
 * ChaCha20-Poly1305…) that Workers does not offer and whose costs are not bounded here.
 */
const ALGORITHMS = new Set([
  'SHA-1',
  'SHA-256',
  'SHA-384',
  'SHA-512',
  'MD5',
  'HMAC',
  'AES-GCM',
  'AES-CBC',
  'AES-CTR',
  'AES-KW',
  'RSASSA-PKCS1-V1_5',
  'RSA-PSS',
  'RSA-OAEP',
  'ECDSA',
  'ECDH',
  'ED25519',
  'X25519',
  'PBKDF2',
  'HKDF',
]);

function offered(d: WireDict | undefined, what: string): void {
  if (!d) return;
  if (!ALGORITHMS.has(nameOf(d))) throw new Refused(`${what}: unrecognized or unsupported algorithm ${String(d.name).slice(0, 64)}`, 'NotSupportedError');
  if (d.hash !== undefined && !HASH_BYTES[hashName(d)]) throw new Refused(`${what}: unsupported hash ${hashName(d).slice(0, 64)}`, 'NotSupportedError');
  const peer = d.public as WireKey | undefined;
  if (peer && typeof peer === 'object' && 'algorithm' in peer) offered(peer.algorithm, `${what}.public`);
}

/** Refuses what Workers does not offer, and the parameters whose cost grows without bound, before any work is queued. */
function bound(call: Call): void {
  const alg = call.algorithm;
  offered(alg, 'algorithm');
  offered(call.keyAlgorithm, call.op === 'deriveKey' ? 'derivedKeyType' : 'unwrappedKeyAlgorithm');
  offered(call.key?.algorithm, 'key');
  offered(call.wrappingKey?.algorithm, 'wrapping key');
  if (nameOf(alg) === 'PBKDF2' && (call.op === 'deriveBits' || call.op === 'deriveKey')) {
    const iterations = Number(alg!.iterations);
    if (iterations > MAX_PBKDF2_ITERATIONS)
      throw new Refused(`PBKDF2 iteration counts above ${MAX_PBKDF2_ITERATIONS} are not supported (requested ${iterations})`, 'NotSupportedError');
    const bits = call.op === 'deriveBits' ? (call.length ?? 0) : Number(call.keyAlgorithm?.length ?? 0);
    const max = MAX_PBKDF2_BLOCKS * (HASH_BYTES[hashName(alg)] ?? 0) * 8;
    if (bits > max)
      throw new Refused(
        `PBKDF2 output above ${MAX_PBKDF2_BLOCKS} hash lengths (${max} bits with ${hashName(alg)}) is not supported (requested ${bits})`,
        'NotSupportedError',
      );
  }
  for (const d of [alg, call.keyAlgorithm]) {
    if (nameOf(d) === 'HMAC' && Number(d!.length ?? 0) > MAX_KEY * 8)
      throw new Refused(`HMAC keys are limited to ${MAX_KEY * 8} bits here (requested ${Number(d!.length)})`, 'NotSupportedError');
  }
  if (call.op === 'generateKey' && nameOf(alg).startsWith('RSA')) {
    const bits = Number(alg!.modulusLength);
    if (bits > MAX_RSA_GENERATE_BITS)
      throw new Refused(
        `RSA key generation is limited to ${MAX_RSA_GENERATE_BITS}-bit moduli (requested ${bits}); import larger keys instead`,
        'NotSupportedError',
      );
    const e = alg!.publicExponent;
    const exponent = e instanceof ArrayBuffer || e instanceof Uint8Array ? new Uint8Array(e).reduce((n, b) => n * 256 + b, 0) : 0;
    if (exponent !== 3 && exponent !== 65537) throw new Refused('RSA publicExponent must be 3 or 65537', 'OperationError');
  }
}

function checkKey(key: Key): Key {
  const bits = (key.algorithm as { modulusLength?: number }).modulusLength ?? 0;
  if (bits > MAX_RSA_BITS) throw new Refused(`RSA keys above ${MAX_RSA_BITS} bits are not supported (this one has ${bits})`, 'NotSupportedError');
  return key;
}

const MATERIAL = { secret: 'raw', private: 'pkcs8', public: 'spki' } as const;
const NOT_EXPORTABLE = new Set(['PBKDF2', 'HKDF']);

/** A key the isolate sent back, as a CryptoKey with its own attributes (so Node checks usages and extractable). */
async function load(w: WireKey): Promise<Key> {
  return checkKey(
    await subtle.importKey(MATERIAL[w.type], w.data, w.algorithm as unknown as webcrypto.Algorithm, w.extractable, w.usages as webcrypto.KeyUsage[]),
  );
}

/** A new key for the isolate to hold; the host's copy is extractable so its bytes can be read. */
async function store(key: Key, extractable: boolean): Promise<WireKey> {
  const a = key.algorithm as unknown as Record<string, unknown> & { hash?: { name: string } };
  const algorithm = { ...a, ...(a.hash ? { hash: { name: a.hash.name } } : {}) } as WireDict;
  const data = (await subtle.exportKey(MATERIAL[key.type], key)) as ArrayBuffer;
  return { type: key.type, algorithm, extractable, usages: [...key.usages], data };
}

/** ECDH and X25519 name the peer's public key in the algorithm; RSA's publicExponent is a Uint8Array. */
async function withKeys(d: WireDict | undefined): Promise<webcrypto.Algorithm> {
  const out: Record<string, unknown> = { ...d };
  if (d?.publicExponent instanceof ArrayBuffer) out.publicExponent = new Uint8Array(d.publicExponent);
  const peer = d?.public;
  if (peer && typeof peer === 'object' && 'data' in peer) out.public = await load(peer as WireKey);
  return out as unknown as webcrypto.Algorithm;
}

async function md5(data: ArrayBuffer): Promise<ArrayBuffer> {
  const hash = createHash('md5');
  for (let at = 0; at < data.byteLength; at += MD5_SLICE) {
    hash.update(new Uint8Array(data, at, Math.min(MD5_SLICE, data.byteLength - at)));
    if (at + MD5_SLICE < data.byteLength) await nextTurn();
  }
  const d = hash.digest();
  return d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength) as ArrayBuffer;
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new TypeError(`${what} is required`);
  return v;
};

async function perform(call: Call): Promise<WireResult> {
  bound(call);
  // Node converts and checks each dictionary for its algorithm (its types are per algorithm, hence `never`).
  const alg = async () => (await withKeys(call.algorithm)) as never;
  const usages = (call.usages ?? []) as webcrypto.KeyUsage[];
  const extractable = call.extractable ?? false;
  const format = () => need(call.format, 'format');
  const data = () => need(call.data, 'data');
  switch (call.op) {
    case 'digest':
      if (nameOf(call.algorithm) === 'MD5') return { bytes: await md5(data()) };
      return { bytes: await subtle.digest(await alg(), data()) };
    case 'generateKey': {
      const k = await subtle.generateKey(await alg(), true, usages);
      if ('privateKey' in k) return { publicKey: await store(k.publicKey, true), privateKey: await store(k.privateKey, extractable) };
      return { key: await store(k, extractable) };
    }
    case 'importKey': {
      const keyData = need(call.keyData, 'keyData');
      if (NOT_EXPORTABLE.has(nameOf(call.algorithm))) {
        const k = await subtle.importKey(format() as 'raw', keyData as ArrayBuffer, await alg(), extractable, usages);
        return {
          key: {
            type: 'secret',
            algorithm: { ...(k.algorithm as unknown as WireDict) },
            extractable: false,
            usages: [...k.usages],
            data: keyData as ArrayBuffer,
          },
        };
      }
      // Imported extractable so its bytes can be read; a JWK's `ext: false` then only matters if the tenant asked for extractable.
      let material = keyData;
      if (format() === 'jwk' && !extractable && !(keyData instanceof ArrayBuffer)) material = { ...keyData, ext: true };
      const k = await subtle.importKey(format() as 'raw', material as ArrayBuffer, await alg(), true, usages);
      return { key: await store(checkKey(k), extractable) };
    }
    case 'exportKey': {
      const out = await subtle.exportKey(format() as 'raw', await load(need(call.key, 'key')));
      return out instanceof ArrayBuffer ? { bytes: out } : { jwk: out as Record<string, unknown> };
    }
    case 'sign':
      return { bytes: await subtle.sign(await alg(), await load(need(call.key, 'key')), data()) };
    case 'verify':
      return { ok: await subtle.verify(await alg(), await load(need(call.key, 'key')), need(call.signature, 'signature'), data()) };
    case 'encrypt':
      return { bytes: await subtle.encrypt(await alg(), await load(need(call.key, 'key')), data()) };
    case 'decrypt':
      return { bytes: await subtle.decrypt(await alg(), await load(need(call.key, 'key')), data()) };
    case 'deriveBits':
      return { bytes: await subtle.deriveBits(await alg(), await load(need(call.key, 'key')), call.length ?? null) };
    case 'deriveKey': {
      const k = await subtle.deriveKey(
        await alg(),
        await load(need(call.key, 'key')),
        need(call.keyAlgorithm, 'derivedKeyType') as unknown as webcrypto.Algorithm,
        true,
        usages,
      );
      return { key: await store(k, extractable) };
    }
    case 'wrapKey':
      return { bytes: await subtle.wrapKey(format(), await load(need(call.key, 'key')), await load(need(call.wrappingKey, 'wrappingKey')), await alg()) };
    case 'unwrapKey': {
      const unwrap = async (x: boolean) =>
        subtle.unwrapKey(
          format(),
          data(),
          await load(need(call.wrappingKey, 'unwrappingKey')),
          await alg(),
          need(call.keyAlgorithm, 'unwrappedKeyAlgorithm') as unknown as webcrypto.Algorithm,
          x,
          usages,
        );
      // With the tenant's own flag first, so a wrapped JWK's `ext` is judged as the spec says.
      const k = await unwrap(extractable);
      if (extractable) return { key: await store(checkKey(k), true) };
      if (NOT_EXPORTABLE.has(nameOf(call.keyAlgorithm))) throw new Refused('unwrapping PBKDF2 or HKDF keys is not supported', 'NotSupportedError');
      const again = await unwrap(true).catch(() => {
        throw new Refused('unwrapping a JWK marked ext: false is not supported; unwrap it as extractable or wrap it without ext', 'NotSupportedError');
      });
      return { key: await store(checkKey(again), false) };
    }
  }
}

/** What reaches the tenant: a DOMException's name and message, a TypeError's message, never a host stack. */
function failure(e: unknown): WireResult {
  if (e instanceof Refused) return { error: { name: e.domName, message: e.message } };
  if (e instanceof DOMException) return { error: { name: e.name, message: e.message } };
  if (e instanceof TypeError) return { error: { name: 'TypeError', message: e.message } };
  return { error: { name: 'OperationError', message: e instanceof Error ? e.message : 'the operation failed' } };
}

/**
 * One isolate's crypto.subtle host: a function from a copied call to a copied result (never a throw).
 * It holds only the count of that isolate's jobs in flight, so it is created per isolate.
 */
export function createHostCrypto(): (call: unknown) => Promise<WireResult | NodeCryptoResult> {
  let inFlight = 0;
  return async (raw) => {
    // node:crypto's calls beyond WebCrypto (host-node-crypto.ts) share the one job in flight.
    if (isNodeCryptoCall(raw)) {
      if (inFlight >= MAX_CRYPTO_IN_FLIGHT) return { error: { name: 'Error', message: `more than ${MAX_CRYPTO_IN_FLIGHT} crypto operations at once` } };
      inFlight++;
      try {
        return await nodeCrypto(raw);
      } finally {
        inFlight--;
      }
    }
    const parsed = Call.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return { error: { name: 'TypeError', message: `crypto.subtle: invalid ${issue?.path.join('.') || 'call'}: ${issue?.message ?? 'malformed'}` } };
    }
    if (inFlight >= MAX_CRYPTO_IN_FLIGHT) return { error: { name: 'OperationError', message: `more than ${MAX_CRYPTO_IN_FLIGHT} crypto operations at once` } };
    inFlight++;
    try {
      return await perform(parsed.data);
    } catch (e) {
      return failure(e);
    } finally {
      inFlight--;
    }
  };
}
