/**
 * node:crypto's X509Certificate: the certificate is read by the host's node:crypto (crypto-host.ts), once,
 * into the fields workerd's class has; each check (checkHost, checkEmail, checkIP, checkIssued, verify,
 * checkPrivateKey) is one more host call with the certificate's DER. The isolate keeps only the DER and
 * the fields.
 */
import { Buffer } from 'node:buffer';
import type { X509Fields } from '../../services/sandbox/runtime/bootstrap/node-crypto-wire.ts';
import { buf, hostCall } from './crypto-host.ts';
import { createPublicKey, KeyObject, toBytes } from './crypto-keys.ts';
import { fromPem } from './der.ts';

type Input = string | ArrayBufferView | ArrayBuffer;
interface CheckOptions {
  subject?: 'default' | 'always' | 'never';
  wildcards?: boolean;
  partialWildcards?: boolean;
  multiLabelWildcards?: boolean;
  singleLabelSubdomains?: boolean;
}

/** Node's ERR_INVALID_ARG_VALUE, with the input shown as Node's inspect shows a Buffer (its first 50 bytes). */
function invalid(b: Uint8Array): Error {
  const shown = Array.from(b.subarray(0, 50), (x) => x.toString(16).padStart(2, '0')).join(' ');
  const more = b.length > 50 ? ` ... ${b.length - 50} more bytes` : '';
  return Object.assign(new TypeError(`The argument 'buffer' is not a valid certificate. Received <Buffer ${shown}${more}>`), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
}

export class X509Certificate {
  readonly #der: Uint8Array;
  readonly #f: X509Fields;
  #publicKey: KeyObject | undefined;
  constructor(buffer: Input) {
    const bytes = toBytes(buffer);
    const text = Buffer.from(bytes).toString('latin1');
    let der = bytes;
    if (text.includes('-----BEGIN')) {
      try {
        der = fromPem(text).der;
      } catch {
        throw invalid(bytes);
      }
    }
    this.#der = der;
    try {
      this.#f = hostCall({ op: 'node.x509', der: buf(der) }, 'x509');
    } catch {
      throw invalid(bytes);
    }
  }
  get subject(): string {
    return this.#f.subject;
  }
  get subjectAltName(): string | undefined {
    return this.#f.subjectAltName;
  }
  get issuer(): string {
    return this.#f.issuer;
  }
  get issuerCertificate(): undefined {
    return undefined;
  }
  /** workerd ends each access description with a newline (OpenSSL's text form); the host's Node trims it. */
  get infoAccess(): string | undefined {
    return this.#f.infoAccess === undefined ? undefined : `${this.#f.infoAccess}\n`;
  }
  get validFrom(): string {
    return this.#f.validFrom;
  }
  get validTo(): string {
    return this.#f.validTo;
  }
  get fingerprint(): string {
    return this.#f.fingerprint;
  }
  get fingerprint256(): string {
    return this.#f.fingerprint256;
  }
  get fingerprint512(): string {
    return this.#f.fingerprint512;
  }
  get keyUsage(): string[] | undefined {
    return this.#f.keyUsage && [...this.#f.keyUsage];
  }
  get serialNumber(): string {
    return this.#f.serialNumber;
  }
  get raw(): Buffer {
    return Buffer.from(this.#der);
  }
  get publicKey(): KeyObject {
    this.#publicKey ??= createPublicKey({ key: Buffer.from(this.#f.publicKey), format: 'der', type: 'spki' });
    return this.#publicKey;
  }
  get ca(): boolean {
    return this.#f.ca;
  }
  toString(): string {
    return this.#f.pem;
  }
  toJSON(): string {
    return this.#f.pem;
  }
  /** Node's legacy object, with workerd's members in workerd's order (Node names one `subjectaltname`). */
  toLegacyObject(): Record<string, unknown> {
    const l = this.#f.legacy;
    const b = (v: unknown) => (v instanceof ArrayBuffer ? Buffer.from(v) : undefined);
    return {
      subject: l.subject,
      // workerd gives these as empty, where Node leaves them out.
      subjectAltName: l.subjectaltname ?? '',
      infoAccess: l.infoAccess ?? {},
      issuer: l.issuer,
      ca: l.ca,
      modulus: l.modulus,
      bits: l.bits,
      exponent: l.exponent,
      pubkey: b(l.pubkey),
      asn1Curve: l.asn1Curve,
      nistCurve: l.nistCurve,
      valid_from: l.valid_from,
      valid_to: l.valid_to,
      fingerprint: l.fingerprint,
      fingerprint256: l.fingerprint256,
      fingerprint512: l.fingerprint512,
      serialNumber: l.serialNumber,
      ext_key_usage: l.ext_key_usage,
      raw: Buffer.from(this.#der),
    };
  }
  #check(fn: 'checkHost' | 'checkEmail' | 'checkIP', name: string, options: CheckOptions = {}): string | undefined {
    if (typeof name !== 'string') throw Object.assign(new TypeError(`The "name" argument must be of type string.`), { code: 'ERR_INVALID_ARG_TYPE' });
    const { subject, wildcards, partialWildcards, multiLabelWildcards, singleLabelSubdomains } = options ?? {};
    const text = hostCall(
      { op: 'node.x509Check', der: buf(this.#der), fn, name, subject, wildcards, partialWildcards, multiLabelWildcards, singleLabelSubdomains },
      'text',
    );
    return text ?? undefined;
  }
  checkHost(name: string, options?: CheckOptions): string | undefined {
    return this.#check('checkHost', name, options);
  }
  checkEmail(email: string, options?: CheckOptions): string | undefined {
    return this.#check('checkEmail', email, options);
  }
  checkIP(ip: string): string | undefined {
    return this.#check('checkIP', ip);
  }
  checkIssued(other: X509Certificate): boolean {
    if (!(other instanceof X509Certificate))
      throw Object.assign(new TypeError('The "otherCert" argument must be an instance of X509Certificate.'), { code: 'ERR_INVALID_ARG_TYPE' });
    return hostCall({ op: 'node.x509Check', der: buf(this.#der), fn: 'checkIssued', other: buf(other.#der) }, 'ok');
  }
  verify(publicKey: KeyObject): boolean {
    if (!(publicKey instanceof KeyObject) || publicKey.type !== 'public')
      throw Object.assign(new TypeError('The "publicKey" argument must be a public KeyObject.'), { code: 'ERR_INVALID_ARG_TYPE' });
    return hostCall({ op: 'node.x509Check', der: buf(this.#der), fn: 'verify', other: buf(publicKey.material) }, 'ok');
  }
  checkPrivateKey(privateKey: KeyObject): boolean {
    if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private')
      throw Object.assign(new TypeError('The "privateKey" argument must be a private KeyObject.'), { code: 'ERR_INVALID_ARG_TYPE' });
    return hostCall({ op: 'node.x509Check', der: buf(this.#der), fn: 'checkPrivateKey', other: buf(privateKey.material) }, 'ok');
  }
}
