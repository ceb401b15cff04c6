/**
 * The little DER that node:crypto's key formats need around WebCrypto's (pkcs8, spki): reading a key's
 * algorithm, wrapping PKCS#1 and SEC1 keys into pkcs8/spki and back, PEM armour, and ECDSA signatures
 * between DER (Node's default) and IEEE P1363 (WebCrypto's).
 */
import { Buffer } from 'node:buffer';

export interface Tlv {
  tag: number;
  /** The contents' start and end in the input. */
  start: number;
  end: number;
}

export function invalidKey(what: string): Error {
  return Object.assign(new TypeError(`Invalid key: ${what}`), { code: 'ERR_INVALID_ARG_VALUE' });
}

export function readTlv(b: Uint8Array, at: number): Tlv {
  if (at + 2 > b.length) throw invalidKey('truncated DER');
  const tag = b[at]!;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4 || start + n > b.length) throw invalidKey('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  if (start + len > b.length) throw invalidKey('truncated DER');
  return { tag, start, end: start + len };
}

/** The elements of a constructed value. */
export function children(b: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = t.start; at < t.end; ) {
    const c = readTlv(b, at);
    out.push(c);
    at = c.end;
    if (out.length > 64) throw invalidKey('too many DER elements');
  }
  return out;
}

export function tlv(tag: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const head =
    len < 0x80
      ? [tag, len]
      : len < 0x100
        ? [tag, 0x81, len]
        : len < 0x10000
          ? [tag, 0x82, len >> 8, len & 0xff]
          : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  return Buffer.concat([Uint8Array.from(head), ...parts]);
}

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
export const OID = {
  rsa: '2a864886f70d010101',
  ec: '2a8648ce3d0201',
  ed25519: '2b6570',
  x25519: '2b656e',
  'P-256': '2a8648ce3d030107',
  'P-384': '2b81040022',
  'P-521': '2b81040023',
} as const;
const NULL = Uint8Array.of(5, 0);
const oid = (o: string) => tlv(6, hex(o));

export type Kind = 'rsa' | 'ec' | 'ed25519' | 'x25519';
export interface KeyShape {
  kind: Kind;
  curve?: 'P-256' | 'P-384' | 'P-521';
}

/** What a pkcs8 or spki key is, from its AlgorithmIdentifier. */
export function shapeOf(der: Uint8Array, type: 'private' | 'public'): KeyShape {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30 || top.end !== der.length) throw invalidKey('not a DER sequence');
  const parts = children(der, top);
  const algId = parts[type === 'private' ? 1 : 0];
  if (!algId || algId.tag !== 0x30) throw invalidKey(`not a ${type === 'private' ? 'pkcs8' : 'spki'} key`);
  const [o, params] = children(der, algId);
  if (!o || o.tag !== 6) throw invalidKey('no algorithm identifier');
  const name = Buffer.from(der.subarray(o.start, o.end)).toString('hex');
  if (name === OID.rsa) return { kind: 'rsa' };
  if (name === OID.ed25519) return { kind: 'ed25519' };
  if (name === OID.x25519) return { kind: 'x25519' };
  if (name === OID.ec && params?.tag === 6) {
    const c = Buffer.from(der.subarray(params.start, params.end)).toString('hex');
    for (const curve of ['P-256', 'P-384', 'P-521'] as const) if (OID[curve] === c) return { kind: 'ec', curve };
    throw Object.assign(new Error('Unsupported EC curve (P-256, P-384 and P-521 are)'), { code: 'ERR_CRYPTO_INVALID_CURVE' });
  }
  throw Object.assign(new Error('Unsupported key type: RSA, EC (P-256, P-384, P-521), Ed25519 and X25519 keys are'), {
    code: 'ERR_CRYPTO_UNSUPPORTED_OPERATION',
  });
}

export const pkcs1ToPkcs8 = (pkcs1: Uint8Array) => tlv(0x30, Uint8Array.of(2, 1, 0), tlv(0x30, oid(OID.rsa), NULL), tlv(4, pkcs1));
export const pkcs1ToSpki = (pkcs1: Uint8Array) => tlv(0x30, tlv(0x30, oid(OID.rsa), NULL), tlv(3, Uint8Array.of(0), pkcs1));

/** SEC1's ECPrivateKey names its curve in `[0] parameters`; pkcs8 names it in the AlgorithmIdentifier. */
export function sec1ToPkcs8(sec1: Uint8Array): Uint8Array {
  const top = readTlv(sec1, 0);
  const params = children(sec1, top).find((c) => c.tag === 0xa0);
  const curve = params && readTlv(sec1, params.start);
  if (!curve || curve.tag !== 6) throw invalidKey('an EC PRIVATE KEY without its curve');
  return tlv(0x30, Uint8Array.of(2, 1, 0), tlv(0x30, oid(OID.ec), sec1.subarray(params!.start, params!.end)), tlv(4, sec1));
}

/** The key inside a pkcs8 (its OCTET STRING) or an spki (its BIT STRING): PKCS#1 for RSA, SEC1 for EC. */
export function innerKey(der: Uint8Array, type: 'private' | 'public'): Uint8Array {
  const parts = children(der, readTlv(der, 0));
  const inner = parts[type === 'private' ? 2 : 1]!;
  return der.slice(inner.start + (type === 'public' ? 1 : 0), inner.end);
}

export function toPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

/** A PEM block: its label, its RFC 1421 headers (Proc-Type, DEK-Info of a legacy encrypted key) and its DER. */
export function fromPem(pem: string): { label: string; der: Uint8Array; headers: Record<string, string> } {
  const m = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n?((?:[A-Za-z-]{1,32}: ?[^\r\n]{0,200}\r?\n)*)\s*([A-Za-z0-9+/=\s]*)-----END \1-----/.exec(pem);
  if (!m) throw invalidKey('not a PEM key');
  const headers: Record<string, string> = {};
  for (const line of m[2]!.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) headers[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return { label: m[1]!, der: Uint8Array.from(Buffer.from(m[3]!.replace(/\s+/g, ''), 'base64')), headers };
}

/** An unsigned big-endian integer as a DER INTEGER. */
export function derInt(b: Uint8Array): Uint8Array {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(2, ...(v[0]! & 0x80 ? [Uint8Array.of(0), v] : [v]));
}

export const p1363ToDer = (sig: Uint8Array) => tlv(0x30, derInt(sig.subarray(0, sig.length / 2)), derInt(sig.subarray(sig.length / 2)));

/** A DER ECDSA signature as r‖s of `n` bytes each; undefined if it is not one (it then fails to verify). */
export function derToP1363(sig: Uint8Array, n: number): Uint8Array | undefined {
  try {
    const top = readTlv(sig, 0);
    const ints = children(sig, top);
    if (top.tag !== 0x30 || top.end !== sig.length || ints.length !== 2) return undefined;
    const out = new Uint8Array(2 * n);
    for (const [i, t] of ints.entries()) {
      let v = sig.subarray(t.start, t.end);
      while (v.length > n && v[0] === 0) v = v.subarray(1);
      if (t.tag !== 2 || v.length > n) return undefined;
      out.set(v, (i + 1) * n - v.length);
    }
    return out;
  } catch {
    return undefined;
  }
}

/** The SEC1 ECPrivateKey of a pkcs8 EC key, with its curve named in `[0] parameters` as Node writes it. */
export function pkcs8ToSec1(pkcs8: Uint8Array, curve: 'P-256' | 'P-384' | 'P-521'): Uint8Array {
  const inner = innerKey(pkcs8, 'private');
  const top = readTlv(inner, 0);
  const kids = children(inner, top);
  if (kids.some((k) => k.tag === 0xa0) || kids.length < 2) return inner;
  const pieces = kids.map((k, i) => inner.subarray(i === 0 ? top.start : kids[i - 1]!.end, k.end));
  return tlv(0x30, pieces[0]!, pieces[1]!, tlv(0xa0, oid(OID[curve])), ...pieces.slice(2));
}
