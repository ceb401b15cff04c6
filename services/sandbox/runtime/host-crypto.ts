/**
 * The host's half of crypto.subtle for asymmetric keys (ECDSA P-256/P-384, Ed25519), with Node's
 * KeyObjects. Everything from the isolate is checked again here: the isolate is tenant code.
 * Keys cross as DER (pkcs8 for private, spki for public); signatures as WebCrypto's raw r||s.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

const HASH: Record<string, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512', 'SHA-1': 'sha1' };
const CURVE: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };
const JWK_CURVE: Record<string, string> = { 'P-256': 'P-256', 'P-384': 'P-384' };
const MAX_KEY = 16 * 1024;
const MAX_DATA = 64 * 1024 * 1024;

const Params = z.object({
  name: z.enum(['ECDSA', 'Ed25519']),
  namedCurve: z.enum(['P-256', 'P-384']).optional(),
  format: z.enum(['raw', 'spki', 'pkcs8', 'jwk']).optional(),
  type: z.enum(['public', 'private']).optional(),
  hash: z.enum(['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']).nullable().optional(),
  dataLength: z.number().int().min(0).optional(),
});

const ab = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const b64url = (b: Buffer) => b.toString('base64url');

function checkAlgorithm(key: KeyObject, p: z.infer<typeof Params>): void {
  const t = key.asymmetricKeyType;
  if (p.name === 'Ed25519' ? t !== 'ed25519' : t !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== CURVE[p.namedCurve ?? '']) {
    throw new Error(`the key is not a ${p.name}${p.namedCurve ? ` ${p.namedCurve}` : ''} key`);
  }
}

function der(key: KeyObject): string {
  return b64url(key.type === 'private' ? key.export({ format: 'der', type: 'pkcs8' }) : key.export({ format: 'der', type: 'spki' }));
}

/** One asymmetric operation; errors are plain messages (they reach the tenant as DOMExceptions). */
export function asymmetric(op: string, paramsJson: string, a: ArrayBuffer | null, b: ArrayBuffer | null): ArrayBuffer | string | boolean {
  if (typeof paramsJson !== 'string' || paramsJson.length > 1024) throw new Error('bad parameters');
  const p = Params.parse(JSON.parse(paramsJson));
  const bytesOf = (x: ArrayBuffer | null, max: number, what: string) => {
    if (!(x instanceof ArrayBuffer) || x.byteLength > max) throw new Error(`bad ${what}`);
    return Buffer.from(x);
  };
  const privateKey = (x: ArrayBuffer | null) => createPrivateKey({ key: bytesOf(x, MAX_KEY, 'key'), format: 'der', type: 'pkcs8' });
  const publicKey = (x: ArrayBuffer | null) => createPublicKey({ key: bytesOf(x, MAX_KEY, 'key'), format: 'der', type: 'spki' });
  switch (op) {
    case 'generate': {
      const pair = p.name === 'Ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: CURVE[p.namedCurve!]! });
      return JSON.stringify({ publicKey: der(pair.publicKey), privateKey: der(pair.privateKey) });
    }
    case 'import': {
      const data = bytesOf(a, MAX_KEY, 'key data');
      let key: KeyObject;
      if (p.format === 'pkcs8') key = createPrivateKey({ key: data, format: 'der', type: 'pkcs8' });
      else if (p.format === 'spki') key = createPublicKey({ key: data, format: 'der', type: 'spki' });
      else if (p.format === 'jwk') {
        const jwk = JSON.parse(data.toString('utf8')) as Record<string, string>;
        key = jwk.d ? createPrivateKey({ key: jwk, format: 'jwk' }) : createPublicKey({ key: jwk, format: 'jwk' });
      } else if (p.name === 'Ed25519') {
        if (data.length !== 32) throw new Error('a raw Ed25519 public key is 32 bytes');
        key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(data) }, format: 'jwk' });
      } else {
        const size = p.namedCurve === 'P-256' ? 32 : 48;
        if (data.length !== 1 + 2 * size || data[0] !== 4) throw new Error(`a raw ${p.namedCurve} public key is an uncompressed point of ${1 + 2 * size} bytes`);
        key = createPublicKey({ key: { kty: 'EC', crv: JWK_CURVE[p.namedCurve!]!, x: b64url(data.subarray(1, 1 + size)), y: b64url(data.subarray(1 + size)) }, format: 'jwk' });
      }
      checkAlgorithm(key, p);
      return JSON.stringify({ type: key.type, der: der(key) });
    }
    case 'export': {
      const key = p.type === 'private' ? privateKey(a) : publicKey(a);
      checkAlgorithm(key, p);
      const jwk = key.export({ format: 'jwk' }) as Record<string, string>;
      if (p.format === 'jwk') return JSON.stringify(jwk);
      if (p.name === 'Ed25519') return ab(Buffer.from(jwk.x!, 'base64url'));
      return ab(Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]));
    }
    case 'sign': {
      const key = privateKey(a);
      checkAlgorithm(key, p);
      const data = bytesOf(b, MAX_DATA, 'data');
      return ab(p.name === 'Ed25519' ? sign(null, data, key) : sign(HASH[p.hash ?? '']!, data, { key, dsaEncoding: 'ieee-p1363' }));
    }
    case 'verify': {
      const key = publicKey(a);
      checkAlgorithm(key, p);
      const both = bytesOf(b, MAX_DATA + 1024, 'data');
      const n = p.dataLength ?? -1;
      if (n < 0 || n > both.length) throw new Error('bad data length');
      const [data, signature] = [both.subarray(0, n), both.subarray(n)];
      return p.name === 'Ed25519' ? verify(null, data, key, signature) : verify(HASH[p.hash ?? '']!, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    }
    default:
      throw new Error(`unknown operation ${op}`);
  }
}
