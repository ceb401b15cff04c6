/**
 * The one call crypto.subtle makes to the host, shared by both halves (bootstrap/subtle.ts sends it,
 * host-crypto.ts checks and runs it) so a mismatch fails `tsc`. Everything crosses as a structured
 * copy: plain objects, strings, numbers and ArrayBuffers, never a reference.
 */

/** A key as the isolate holds it: its WebCrypto attributes and its material (raw, pkcs8 or spki). */
export interface WireKey {
  type: 'secret' | 'public' | 'private';
  algorithm: WireDict;
  extractable: boolean;
  usages: string[];
  data: ArrayBuffer;
}

/** An algorithm dictionary with its BufferSources copied and its CryptoKeys (ECDH `public`) as WireKeys. */
export interface WireDict {
  [member: string]: string | number | boolean | ArrayBuffer | Uint8Array | WireDict | WireKey;
}

export type WireOp =
  | 'digest'
  | 'generateKey'
  | 'importKey'
  | 'exportKey'
  | 'sign'
  | 'verify'
  | 'encrypt'
  | 'decrypt'
  | 'deriveBits'
  | 'deriveKey'
  | 'wrapKey'
  | 'unwrapKey';

export interface WireCall {
  op: WireOp;
  algorithm?: WireDict;
  /** deriveKey's derivedKeyType, unwrapKey's unwrappedKeyAlgorithm. */
  keyAlgorithm?: WireDict;
  format?: string;
  /** importKey's key data: bytes, or a JWK as a plain object. */
  keyData?: ArrayBuffer | Record<string, unknown>;
  key?: WireKey;
  /** wrapKey's wrapping key, unwrapKey's unwrapping key. */
  wrappingKey?: WireKey;
  data?: ArrayBuffer;
  signature?: ArrayBuffer;
  extractable?: boolean;
  usages?: string[];
  length?: number | null;
}

export type WireResult =
  | { bytes: ArrayBuffer }
  | { jwk: Record<string, unknown> }
  | { ok: boolean }
  | { key: WireKey }
  | { publicKey: WireKey; privateKey: WireKey }
  | { error: { name: string; message: string } };

/** Bytes in one argument (data, signature): more is refused on both sides. */
export const MAX_CRYPTO_DATA = 64 * 1024 * 1024;
