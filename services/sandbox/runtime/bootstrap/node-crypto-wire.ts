/**
 * The calls node:crypto's polyfill makes to the host for what WebCrypto does not have (host-node-crypto.ts
 * checks and runs them; cli/node-polyfills/crypto-*.ts sends them through the worker's synchronous
 * crypto host, `subtle.node`). Shared by both halves so a mismatch fails `tsc`. Each call is stateless:
 * the isolate holds the keys and a cipher's chain between calls, as it does for crypto.subtle.
 */

export type NodeCryptoCall =
  /** One piece of a cipher (whole blocks, or everything at final for AEADs); padding applies only when `final`. */
  | {
      op: 'node.cipher';
      name: string;
      key: ArrayBuffer;
      iv: ArrayBuffer | null;
      data: ArrayBuffer;
      decrypt: boolean;
      final: boolean;
      padding: boolean;
      aad?: ArrayBuffer;
      tag?: ArrayBuffer;
      tagLength?: number;
    }
  /** createECDH: the key pair from a private key (or a new one), the public key in `format`, and the secret with `peer`. */
  | { op: 'node.ecdh'; curve: string; privateKey?: ArrayBuffer; peer?: ArrayBuffer; format: 'compressed' | 'uncompressed' | 'hybrid' }
  /** ECDH.convertKey. */
  | { op: 'node.ecdhConvert'; curve: string; key: ArrayBuffer; format: 'compressed' | 'uncompressed' | 'hybrid' }
  /** A finite-field Diffie-Hellman key pair for these parameters (pkcs8 and spki DER). */
  | { op: 'node.dhGenerate'; prime: ArrayBuffer; generator: number }
  /** The secret of a DH private key (pkcs8 DER) and a peer's public key (spki DER). */
  | { op: 'node.dhSecret'; privateKey: ArrayBuffer; publicKey: ArrayBuffer }
  | { op: 'node.generatePrime'; bits: number; safe: boolean; add?: ArrayBuffer; rem?: ArrayBuffer }
  | { op: 'node.checkPrime'; candidate: ArrayBuffer; checks: number }
  /** RSA encryption outside WebCrypto (PKCS#1 v1.5, no padding, and the private-key direction); keys as pkcs8/spki DER. */
  | {
      op: 'node.rsa';
      fn: 'publicEncrypt' | 'privateDecrypt' | 'privateEncrypt' | 'publicDecrypt';
      key: ArrayBuffer;
      padding: number;
      oaepHash?: string;
      oaepLabel?: ArrayBuffer;
      data: ArrayBuffer;
    }
  /** An X.509 certificate (DER) read, or one of its checks run. */
  | { op: 'node.x509'; der: ArrayBuffer }
  | {
      op: 'node.x509Check';
      der: ArrayBuffer;
      fn: 'checkHost' | 'checkEmail' | 'checkIP' | 'checkIssued' | 'verify' | 'checkPrivateKey';
      name?: string;
      subject?: 'default' | 'always' | 'never';
      wildcards?: boolean;
      partialWildcards?: boolean;
      multiLabelWildcards?: boolean;
      singleLabelSubdomains?: boolean;
      /** checkIssued's other certificate (DER); verify's public key (spki DER); checkPrivateKey's key (pkcs8 DER). */
      other?: ArrayBuffer;
    };

export type NodeCryptoOp = NodeCryptoCall['op'];

/** What node:crypto reads of a certificate (the fields workerd's X509Certificate has). */
export interface X509Fields {
  subject: string;
  subjectAltName: string | undefined;
  issuer: string;
  infoAccess: string | undefined;
  validFrom: string;
  validTo: string;
  fingerprint: string;
  fingerprint256: string;
  fingerprint512: string;
  keyUsage: string[] | undefined;
  serialNumber: string;
  ca: boolean;
  /** spki DER. */
  publicKey: ArrayBuffer;
  pem: string;
  /** Node's toLegacyObject(), its Buffers as ArrayBuffers and its name objects as plain ones. */
  legacy: Record<string, string | boolean | number | string[] | ArrayBuffer | Record<string, string | string[]> | undefined>;
}

export type NodeCryptoResult =
  | { bytes: ArrayBuffer }
  | { ok: boolean }
  | { text: string | null }
  | { pair: { privateKey: ArrayBuffer; publicKey: ArrayBuffer } }
  | { x509: X509Fields }
  /** `code` is Node's error code, when Node gave one. */
  | { error: { name: string; message: string; code?: string } };
