/**
 * Encrypted private keys, as Node reads and writes them: PKCS#8's EncryptedPrivateKeyInfo with PBES2
 * (PBKDF2, then AES-CBC or Triple DES; what OpenSSL 3 writes: PBKDF2-HMAC-SHA256, 2048 iterations, a 16-byte
 * salt), and the legacy PEM encryption of PKCS#1 and SEC1 keys (`Proc-Type: 4,ENCRYPTED`, `DEK-Info`,
 * OpenSSL's EVP_BytesToKey with MD5). The key derivation runs in the isolate (@noble/hashes: the
 * iteration count is the key file's, so its cost is the worker's own CPU); AES-CBC on crypto.subtle, Triple
 * DES on the host (crypto-host.ts).
 */
import { Buffer } from 'node:buffer';
import { subtle } from 'node-internal:crypto';
import { pbkdf2 } from '@noble/hashes/pbkdf2';
import { md5, sha1 } from '@noble/hashes/legacy';
import { sha224, sha256, sha384, sha512 } from '@noble/hashes/sha2';
import { buf, hostCall } from './crypto-host.ts';
import { children, readTlv, tlv, toPem, type Tlv } from './der.ts';

type Bytes = Uint8Array;

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const OID_PBES2 = '2a864886f70d01050d';
const OID_PBKDF2 = '2a864886f70d01050c';
const PRFS = {
  '2a864886f70d0207': sha1,
  '2a864886f70d0208': sha224,
  '2a864886f70d0209': sha256,
  '2a864886f70d020a': sha384,
  '2a864886f70d020b': sha512,
} as const;
const HMAC_SHA256 = '2a864886f70d0209';
/** The ciphers of PBES2 and of legacy PEM, by OID and by DEK-Info name. */
const CIPHERS: Record<string, { oid: string; dek: string; keyBytes: number; ivBytes: number }> = {
  'aes-128-cbc': { oid: '608648016503040102', dek: 'AES-128-CBC', keyBytes: 16, ivBytes: 16 },
  'aes-192-cbc': { oid: '608648016503040116', dek: 'AES-192-CBC', keyBytes: 24, ivBytes: 16 },
  'aes-256-cbc': { oid: '60864801650304012a', dek: 'AES-256-CBC', keyBytes: 32, ivBytes: 16 },
  'des-ede3-cbc': { oid: '2a864886f70d0307', dek: 'DES-EDE3-CBC', keyBytes: 24, ivBytes: 8 },
};
/** OpenSSL 3's PBES2 defaults. */
const ITERATIONS = 2048;
const SALT_BYTES = 16;

/** workerd's message for a key it cannot decrypt or read. */
const parseFailed = () => Object.assign(new Error('Failed to parse private key'), { code: 'ERR_OSSL_BAD_DECRYPT' });

const oidOf = (der: Bytes, t: Tlv | undefined) => (t?.tag === 6 ? Buffer.from(der.subarray(t.start, t.end)).toString('hex') : '');
const bytesOf = (der: Bytes, t: Tlv | undefined, tag: number) => {
  if (t?.tag !== tag) throw parseFailed();
  return der.slice(t.start, t.end);
};
const intOf = (der: Bytes, t: Tlv | undefined) => bytesOf(der, t, 2).reduce((n, b) => n * 256 + b, 0);

function decipher(name: string, key: Bytes, iv: Bytes, data: Bytes): Bytes {
  if (name === 'des-ede3-cbc')
    return new Uint8Array(
      hostCall({ op: 'node.cipher', name, key: buf(key), iv: buf(iv), data: buf(data), decrypt: true, final: true, padding: true }, 'bytes'),
    );
  const k = subtle.importKey('raw', key, { name: 'AES-CBC' }, false, ['decrypt']);
  return new Uint8Array(subtle.decrypt({ name: 'AES-CBC', iv }, k, data));
}
function encipher(name: string, key: Bytes, iv: Bytes, data: Bytes): Bytes {
  if (name === 'des-ede3-cbc')
    return new Uint8Array(
      hostCall({ op: 'node.cipher', name, key: buf(key), iv: buf(iv), data: buf(data), decrypt: false, final: true, padding: true }, 'bytes'),
    );
  const k = subtle.importKey('raw', key, { name: 'AES-CBC' }, false, ['encrypt']);
  return new Uint8Array(subtle.encrypt({ name: 'AES-CBC', iv }, k, data));
}

/** OpenSSL's EVP_BytesToKey with MD5 and one round: the legacy PEM key from the passphrase and the IV's first 8 bytes. */
function bytesToKey(passphrase: Bytes, salt: Bytes, keyBytes: number): Bytes {
  const out = new Uint8Array(keyBytes + 16);
  let prev: Uint8Array = new Uint8Array(0);
  for (let at = 0; at < keyBytes; at += 16) {
    prev = md5(Buffer.concat([prev, passphrase, salt]));
    out.set(prev, at);
  }
  return out.subarray(0, keyBytes);
}

const cipherByOid = (oid: string) => Object.entries(CIPHERS).find(([, c]) => c.oid === oid);

/** Whether DER is an EncryptedPrivateKeyInfo (its first element an AlgorithmIdentifier, where a pkcs8 key has its version). */
export function isEncryptedPkcs8(der: Bytes): boolean {
  try {
    return children(der, readTlv(der, 0))[0]?.tag === 0x30;
  } catch {
    return false;
  }
}

/** The pkcs8 DER inside a PKCS#8 EncryptedPrivateKeyInfo (PBES2 with PBKDF2). */
export function decryptPkcs8(der: Bytes, passphrase: Bytes): Bytes {
  try {
    const [algId, data] = children(der, readTlv(der, 0));
    const [scheme, params] = children(der, algId!);
    if (oidOf(der, scheme) !== OID_PBES2) throw parseFailed();
    const [kdf, enc] = children(der, params!);
    const [kdfOid, kdfParams] = children(der, kdf!);
    if (oidOf(der, kdfOid) !== OID_PBKDF2) throw parseFailed();
    const p = children(der, kdfParams!);
    const salt = bytesOf(der, p[0], 4);
    const iterations = intOf(der, p[1]);
    const prfId = p.find((t) => t.tag === 0x30);
    const prf = prfId ? PRFS[oidOf(der, children(der, prfId)[0]) as keyof typeof PRFS] : sha1;
    const [encOid, ivT] = children(der, enc!);
    const cipher = cipherByOid(oidOf(der, encOid));
    if (!prf || !cipher || iterations < 1) throw parseFailed();
    const key = pbkdf2(prf, passphrase, salt, { c: iterations, dkLen: cipher[1].keyBytes });
    return decipher(cipher[0], key, bytesOf(der, ivT, 4), bytesOf(der, data, 4));
  } catch {
    throw parseFailed();
  }
}

/** A legacy encrypted PEM body (PKCS#1 or SEC1) decrypted with its DEK-Info. */
export function decryptLegacy(der: Bytes, dekInfo: string, passphrase: Bytes): Bytes {
  const [name, ivHex] = dekInfo.split(',');
  const cipher = Object.entries(CIPHERS).find(([, c]) => c.dek === name?.trim().toUpperCase());
  const iv = hex(ivHex?.trim() ?? '');
  if (!cipher || iv.length !== cipher[1].ivBytes) throw parseFailed();
  try {
    return decipher(cipher[0], bytesToKey(passphrase, iv.subarray(0, 8), cipher[1].keyBytes), iv, der);
  } catch {
    throw parseFailed();
  }
}

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
function cipherSpec(name: string) {
  const spec = CIPHERS[String(name).toLowerCase()];
  if (!spec)
    throw Object.assign(
      new TypeError(`Unknown cipher for key encryption: ${String(name)} (aes-128-cbc, aes-192-cbc, aes-256-cbc and des-ede3-cbc are supported)`),
      {
        code: 'ERR_CRYPTO_UNKNOWN_CIPHER',
      },
    );
  return [String(name).toLowerCase(), spec] as const;
}

/** pkcs8 DER as an EncryptedPrivateKeyInfo (DER), as OpenSSL 3 writes it. */
export function encryptPkcs8(pkcs8: Bytes, cipherName: string, passphrase: Bytes): Bytes {
  const [name, spec] = cipherSpec(cipherName);
  const salt = random(SALT_BYTES);
  const iv = random(spec.ivBytes);
  const key = pbkdf2(sha256, passphrase, salt, { c: ITERATIONS, dkLen: spec.keyBytes });
  const int = (n: number) => tlv(2, n >= 0x80 ? Uint8Array.of(n >> 8, n & 0xff) : Uint8Array.of(n));
  const kdf = tlv(0x30, tlv(6, hex(OID_PBKDF2)), tlv(0x30, tlv(4, salt), int(ITERATIONS), tlv(0x30, tlv(6, hex(HMAC_SHA256)), Uint8Array.of(5, 0))));
  const enc = tlv(0x30, tlv(6, hex(spec.oid)), tlv(4, iv));
  return tlv(0x30, tlv(0x30, tlv(6, hex(OID_PBES2)), tlv(0x30, kdf, enc)), tlv(4, encipher(name, key, iv, pkcs8)));
}

/** PKCS#1 or SEC1 DER as a legacy encrypted PEM block. */
export function encryptLegacyPem(der: Bytes, label: string, cipherName: string, passphrase: Bytes): string {
  const [name, spec] = cipherSpec(cipherName);
  const iv = random(spec.ivBytes);
  const body = encipher(name, bytesToKey(passphrase, iv.subarray(0, 8), spec.keyBytes), iv, der);
  const ivHex = Buffer.from(iv).toString('hex').toUpperCase();
  return toPem(body, label).replace('-----\n', `-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: ${spec.dek},${ivHex}\n\n`);
}
