/**
 * crypto.subtle for the isolate: the WebCrypto surface, the CryptoKey objects and the argument
 * conversion. The algorithms run on the host (host-crypto.ts, Node's WebCrypto), which checks every
 * call again; one host call per method (bootstrap/subtle-wire.ts). Also Workers' non-standard
 * `timingSafeEqual` and MD5 digests.
 */
import { DOMException } from './encoding.ts';
import { MAX_CRYPTO_DATA, type WireCall, type WireDict, type WireKey, type WireResult } from './subtle-wire.ts';

/** The host call: synchronous for this isolate (it waits, the host's event loop does not). */
export type CryptoHostCall = (call: WireCall) => WireResult;

// A key's material and attributes live in a WeakMap in this closure, not on the object: a property
// (even symbol-keyed) would be reachable, making non-extractable keys extractable. A CryptoKey is only
// ever minted here from what the host returned; anything else passed as a key is refused.
const WIRE = new WeakMap<object, WireKey>();
const MINT = Symbol('mint');

function frozenCopy<T>(v: T): T {
  if (v instanceof Uint8Array) return new Uint8Array(v) as T;
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = frozenCopy((v as Record<string, unknown>)[k]);
  return Object.freeze(out) as T;
}

export class CryptoKey {
  readonly #algorithm: object;
  readonly #usages: readonly string[];
  constructor(mint: symbol, wire: WireKey) {
    if (mint !== MINT) throw new TypeError('Illegal constructor');
    WIRE.set(this, wire);
    this.#algorithm = frozenCopy(wire.algorithm);
    this.#usages = Object.freeze([...wire.usages]);
  }
  get type(): string {
    return WIRE.get(this)!.type;
  }
  get extractable(): boolean {
    return WIRE.get(this)!.extractable;
  }
  get algorithm(): object {
    return this.#algorithm;
  }
  get usages(): readonly string[] {
    return this.#usages;
  }
}
Object.defineProperty(CryptoKey.prototype, Symbol.toStringTag, { value: 'CryptoKey', configurable: true });

/** Whether `v` is a CryptoKey made here (structuredClone refuses them). */
export function isCryptoKey(v: object): boolean {
  return WIRE.has(v);
}

function wireOf(key: unknown, what: string): WireKey {
  const w = typeof key === 'object' && key !== null ? WIRE.get(key) : undefined;
  if (!w) throw new TypeError(`${what} must be a CryptoKey made by this worker's crypto.subtle`);
  return w;
}

function buffer(data: unknown, what: string): ArrayBuffer {
  const view =
    data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
  if (!view) throw new TypeError(`${what} must be an ArrayBuffer or ArrayBufferView`);
  if (view.byteLength > MAX_CRYPTO_DATA) {
    throw new DOMException(
      `${what} is ${view.byteLength} bytes, over this runtime's limit of ${MAX_CRYPTO_DATA} bytes per crypto.subtle call; process it in parts`,
      'QuotaExceededError',
    );
  }
  return view.slice().buffer;
}

// The members of every WebCrypto algorithm dictionary; others are not read (as WebIDL dictionaries are not).
const MEMBERS = [
  'name',
  'hash',
  'length',
  'iv',
  'counter',
  'additionalData',
  'tagLength',
  'salt',
  'info',
  'iterations',
  'label',
  'saltLength',
  'namedCurve',
  'modulusLength',
  'publicExponent',
  'public',
];

function dict(a: unknown, what: string): WireDict {
  if (typeof a === 'string') return { name: a };
  if (a === null || typeof a !== 'object') throw new TypeError(`${what} must be an object or an algorithm name`);
  const out: WireDict = {};
  for (const m of MEMBERS) {
    const v = (a as Record<string, unknown>)[m];
    if (v === undefined) continue;
    if (m === 'public') out[m] = wireOf(v, `${what}.public`);
    else if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) out[m] = buffer(v, `${what}.${m}`);
    else if (typeof v === 'object' && v !== null)
      out[m] = { name: String((v as { name?: unknown }).name) }; // hash: { name }
    else if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[m] = v;
    else throw new TypeError(`${what}.${m} has an invalid type`);
  }
  return out;
}

const JWK_MEMBERS = ['kty', 'use', 'key_ops', 'alg', 'ext', 'crv', 'x', 'y', 'd', 'n', 'e', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

function jwk(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) throw new TypeError('a jwk key must be a JsonWebKey object');
  const out: Record<string, unknown> = {};
  for (const m of JWK_MEMBERS) {
    const x = (v as Record<string, unknown>)[m];
    if (x === undefined) continue;
    out[m] = m === 'key_ops' ? Array.from(x as Iterable<unknown>, String) : m === 'ext' ? Boolean(x) : String(x);
  }
  return out;
}

const KEY_USAGES = ['encrypt', 'decrypt', 'sign', 'verify', 'deriveKey', 'deriveBits', 'wrapKey', 'unwrapKey'];
/** WebIDL's sequence<KeyUsage>: each an enum value (else a TypeError), repeats dropped (a key's usages are a set). */
function usageList(u: unknown): string[] {
  const out: string[] = [];
  for (const v of Array.from(u as Iterable<unknown>, String)) {
    if (!KEY_USAGES.includes(v)) throw new TypeError(`'${v.slice(0, 40)}' is not a valid value for enumeration KeyUsage.`);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

function result(r: WireResult): WireResult {
  if ('error' in r) throw r.error.name === 'TypeError' ? new TypeError(r.error.message) : new DOMException(r.error.message, r.error.name);
  return r;
}

const mint = (w: WireKey) => new CryptoKey(MINT, w);

/** crypto.subtle's methods run synchronously: what node:crypto's synchronous API is built on (node-internal:crypto). */
export type SyncSubtle = Record<string, (...args: unknown[]) => unknown>;

/**
 * crypto.subtle and its synchronous twin: the host call blocks this isolate until answered, so each
 * method is a synchronous function; crypto.subtle wraps each in a promise (a throw becomes a rejection).
 */
export function makeSubtle(host: CryptoHostCall): { subtle: object; sync: SyncSubtle } {
  const call = (c: WireCall): WireResult => result(host(c));
  const bytes = (c: WireCall) => (call(c) as { bytes: ArrayBuffer }).bytes;
  const key = (c: WireCall) => mint((call(c) as { key: WireKey }).key);
  const sync = Object.freeze({
    digest(algorithm: unknown, data: unknown): ArrayBuffer {
      return bytes({ op: 'digest', algorithm: dict(algorithm, 'algorithm'), data: buffer(data, 'data') });
    },
    generateKey(algorithm: unknown, extractable: unknown, usages: unknown): CryptoKey | { publicKey: CryptoKey; privateKey: CryptoKey } {
      const r = call({ op: 'generateKey', algorithm: dict(algorithm, 'algorithm'), extractable: Boolean(extractable), usages: usageList(usages) });
      if ('publicKey' in r) return { publicKey: mint(r.publicKey), privateKey: mint(r.privateKey) };
      return mint((r as { key: WireKey }).key);
    },
    importKey(format: unknown, keyData: unknown, algorithm: unknown, extractable: unknown, usages: unknown): CryptoKey {
      const f = String(format);
      const data = f === 'jwk' ? jwk(keyData) : buffer(keyData, 'keyData');
      return key({
        op: 'importKey',
        format: f,
        keyData: data,
        algorithm: dict(algorithm, 'algorithm'),
        extractable: Boolean(extractable),
        usages: usageList(usages),
      });
    },
    exportKey(format: unknown, key: unknown): ArrayBuffer | object {
      const w = wireOf(key, 'key');
      if (!w.extractable) throw new DOMException(`Attempt to export non-extractable ${String(w.algorithm.name)} key.`, 'InvalidAccessError');
      const r = call({ op: 'exportKey', format: String(format), key: w });
      return 'jwk' in r ? r.jwk : (r as { bytes: ArrayBuffer }).bytes;
    },
    sign(algorithm: unknown, key: unknown, data: unknown): ArrayBuffer {
      return bytes({ op: 'sign', algorithm: dict(algorithm, 'algorithm'), key: wireOf(key, 'key'), data: buffer(data, 'data') });
    },
    verify(algorithm: unknown, key: unknown, signature: unknown, data: unknown): boolean {
      const r = call({
        op: 'verify',
        algorithm: dict(algorithm, 'algorithm'),
        key: wireOf(key, 'key'),
        signature: buffer(signature, 'signature'),
        data: buffer(data, 'data'),
      });
      return (r as { ok: boolean }).ok;
    },
    encrypt(algorithm: unknown, key: unknown, data: unknown): ArrayBuffer {
      return bytes({ op: 'encrypt', algorithm: dict(algorithm, 'algorithm'), key: wireOf(key, 'key'), data: buffer(data, 'data') });
    },
    decrypt(algorithm: unknown, key: unknown, data: unknown): ArrayBuffer {
      return bytes({ op: 'decrypt', algorithm: dict(algorithm, 'algorithm'), key: wireOf(key, 'key'), data: buffer(data, 'data') });
    },
    deriveBits(algorithm: unknown, baseKey: unknown, length: unknown = null): ArrayBuffer {
      return bytes({
        op: 'deriveBits',
        algorithm: dict(algorithm, 'algorithm'),
        key: wireOf(baseKey, 'baseKey'),
        length: length === null ? null : Number(length),
      });
    },
    deriveKey(algorithm: unknown, baseKey: unknown, derivedKeyType: unknown, extractable: unknown, usages: unknown): CryptoKey {
      return key({
        op: 'deriveKey',
        algorithm: dict(algorithm, 'algorithm'),
        key: wireOf(baseKey, 'baseKey'),
        keyAlgorithm: dict(derivedKeyType, 'derivedKeyType'),
        extractable: Boolean(extractable),
        usages: usageList(usages),
      });
    },
    wrapKey(format: unknown, key: unknown, wrappingKey: unknown, wrapAlgorithm: unknown): ArrayBuffer {
      return bytes({
        op: 'wrapKey',
        format: String(format),
        key: wireOf(key, 'key'),
        wrappingKey: wireOf(wrappingKey, 'wrappingKey'),
        algorithm: dict(wrapAlgorithm, 'wrapAlgorithm'),
      });
    },
    unwrapKey(
      format: unknown,
      wrappedKey: unknown,
      unwrappingKey: unknown,
      unwrapAlgorithm: unknown,
      unwrappedKeyAlgorithm: unknown,
      extractable: unknown,
      usages: unknown,
    ): CryptoKey {
      return key({
        op: 'unwrapKey',
        format: String(format),
        data: buffer(wrappedKey, 'wrappedKey'),
        wrappingKey: wireOf(unwrappingKey, 'unwrappingKey'),
        algorithm: dict(unwrapAlgorithm, 'unwrapAlgorithm'),
        keyAlgorithm: dict(unwrappedKeyAlgorithm, 'unwrappedKeyAlgorithm'),
        extractable: Boolean(extractable),
        usages: usageList(usages),
      });
    },
    /** Workers' extension: compares without an early exit, so the time taken does not tell where two secrets differ. */
    timingSafeEqual(a: unknown, b: unknown): boolean {
      const x = new Uint8Array(buffer(a, 'a'));
      const y = new Uint8Array(buffer(b, 'b'));
      if (x.byteLength !== y.byteLength) throw new TypeError('Input buffers must have the same byte length.');
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
      return diff === 0;
    },
  }) as SyncSubtle;
  const subtle: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(sync)) {
    if (name === 'timingSafeEqual') subtle[name] = f;
    else {
      const m = async (...args: unknown[]) => f(...args);
      Object.defineProperties(m, { name: { value: name }, length: { value: f.length } });
      subtle[name] = m;
    }
  }
  return { subtle: Object.freeze(subtle), sync };
}
