/**
 * node:crypto's APIs beyond WebCrypto (issue 13): one worker, deployed through the CLI to a real mesh,
 * answers exactly what the same source answers on the real workerd —
 * ciphers (RFC 8439 ChaCha20-Poly1305, NIST SP 800-38A ECB/OFB, Triple DES), createECDH, the RFC 3526
 * groups and createDiffieHellman, primes, RSA PKCS#1 v1.5 and privateEncrypt/publicDecrypt, X509Certificate,
 * encrypted private keys, and the lists (getCiphers, getHashes, getCurves). Inputs are fixed, so the answers are too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { answerOnWorkerd, workerdMissing } from './helpers/workerd.ts';

// A self-signed P-256 certificate for example.com with SANs (DNS, wildcard, IP, email), key usage and OCSP access (made with openssl req -x509).
const CERT = `-----BEGIN CERTIFICATE-----
MIICTTCCAfKgAwIBAgIUX37Ui7/BusljtvQMo6zEgtJd9pgwCgYIKoZIzj0EAwIw
LDEUMBIGA1UEAwwLZXhhbXBsZS5jb20xFDASBgNVBAoMC0NvcmRvbiBUZXN0MB4X
DTI2MTIwNjExMTkwMVoXDTI3MDEwNTExMTkwMVowLDEUMBIGA1UEAwwLZXhhbXBs
ZS5jb20xFDASBgNVBAoMC0NvcmRvbiBUZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEMeT9kbxGQlzJmklz83ijXWCycEfPrzI3SVLbZNbBgESPKDQr4SV7Rz2g
SXxKc2z27ucmv+OGndeKerHQiklTAaOB8TCB7jAdBgNVHQ4EFgQUf1493NnsA9/J
S7mY1YLXp61CBnYwHwYDVR0jBBgwFoAUf1493NnsA9/JS7mY1YLXp61CBnYwDwYD
VR0TAQH/BAUwAwEB/zA6BgNVHREEMzAxggtleGFtcGxlLmNvbYINKi5leGFtcGxl
Lm9yZ4cEfwAAAYENYUBleGFtcGxlLmNvbTALBgNVHQ8EBAMCB4AwHQYDVR0lBBYw
FAYIKwYBBQUHAwEGCCsGAQUFBwMCMDMGCCsGAQUFBwEBBCcwJTAjBggrBgEFBQcw
AYYXaHR0cDovL29jc3AuZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSQAwRgIhAP8j
aPK3x1cvGhCxU7FugaZtpfOFf2EBkzeJAtyRpHP6AiEAwVUP9EkhH+qqRdn+j2Aw
GOwzKXHoGKykEHblr+q3FPQ=
-----END CERTIFICATE-----
`;

// A self-signed RSA-1024 CA certificate (openssl req -x509 -newkey rsa:1024, basicConstraints CA:TRUE).
const CA_CERT = `-----BEGIN CERTIFICATE-----
MIICTjCCAbegAwIBAgIUP3KiZFHFdU0d+Oo4uBouuFJCVlowDQYJKoZIhvcNAQEL
BQAwOTELMAkGA1UEBhMCREUxFDASBgNVBAMMC3JzYS5leGFtcGxlMRQwEgYDVQQK
DAtDb3Jkb24gVGVzdDAeFw0yNjEyMDYxMjA0MjVaFw0yNzAxMDUxMjA0MjVaMDkx
CzAJBgNVBAYTAkRFMRQwEgYDVQQDDAtyc2EuZXhhbXBsZTEUMBIGA1UECgwLQ29y
ZG9uIFRlc3QwgZ8wDQYJKoZIhvcNAQEBBQADgY0AMIGJAoGBAN9mIhV8GkUy2Wxh
r8L4YdBu7wHpBKynUvWnutHTvhDs/NUteUDZdq4/cdslYImn/8q5bbyP1AJEsvuf
nBEhFi0Lcib41tei9D0Qe50BJDQ9Tpkxzu9ERwOTztl2/jJnSIPWIvgwFkd1AP8n
/XyUHCabOm7vzT35lVlNHWM04slJAgMBAAGjUzBRMB0GA1UdDgQWBBSSbSCKeo1z
RcXBzQUEeffMByQJOzAfBgNVHSMEGDAWgBSSbSCKeo1zRcXBzQUEeffMByQJOzAP
BgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4GBANglYBBKLtR4SrGQSSXQ
ltF2qazW535m9t+evYXGy/eaIxFYa+Q3G5e8EDa9bHoWMQI2V5e38nI92K4VfYir
neDQuHp8FI67XRIMikE3ZeSh6d76GHGZMCHMv0+um6CXu57ArfmEbJsn8+9Trvi8
6uIfBG6JTy9FPLGaNSrmsStt
-----END CERTIFICATE-----
`;

const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
const V = {
  cert: CERT,
  caCert: CA_CERT,
  rsaPriv: rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }),
  rsaPub: rsa.publicKey.export({ format: 'pem', type: 'spki' }),
  pkcs8Enc: rsa.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }),
  pkcs1Enc: rsa.privateKey.export({ format: 'pem', type: 'pkcs1', cipher: 'des-ede3-cbc', passphrase: 'pw' }),
};

const SOURCE = `import crypto from 'node:crypto';
import { Buffer } from 'node:buffer';
const V = ${JSON.stringify(V)};
const h = (x) => Buffer.from(x, 'hex');
const t = (f) => { try { const v = f(); return typeof v === 'bigint' ? String(v) + 'n' : v instanceof ArrayBuffer ? Buffer.from(v).toString('hex') : v; } catch (e) { return 'threw ' + e.message; } };
const hex = (c, data) => Buffer.concat([c.update(data), c.final()]).toString('hex');
export default { async fetch() {
  const o = {};
  // workerd's getCiphers() gives its last (BoringSSL AEAD) names in an order that changes between runs.
  o.lists = [crypto.getCiphers().sort(), crypto.getHashes(), crypto.getCurves()];
  o.hashes = ['md5-sha1', 'RSA-MD5', 'RSA-SHA224', 'DSA-SHA', 'DSA-SHA1', 'ecdsa-with-SHA1', 'sha512-256'].map((n) => t(() => crypto.createHash(n).update('abc').digest('hex')));
  o.chacha = t(() => { const c = crypto.createCipheriv('chacha20-poly1305', h('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'), h('070000004041424344454647'), { authTagLength: 16 }); c.setAAD(h('50515253c0c1c2c3c4c5c6c7')); return [hex(c, Buffer.from('sunscreen')), c.getAuthTag().toString('hex')]; });
  o.chachaOpen = t(() => { const k = Buffer.alloc(32, 1), iv = Buffer.alloc(12, 2); const c = crypto.createCipheriv('chacha20-poly1305', k, iv); const ct = Buffer.concat([c.update(Buffer.from('hello')), c.final()]); const d = crypto.createDecipheriv('chacha20-poly1305', k, iv); d.setAuthTag(c.getAuthTag()); return Buffer.concat([d.update(ct), d.final()]).toString(); });
  o.ecb = t(() => hex(crypto.createCipheriv('aes-192-ecb', Buffer.alloc(24, 1), Buffer.alloc(0)), Buffer.from('seventeen bytes!!')));
  o.ofb = t(() => hex(crypto.createCipheriv('aes-256-ofb', Buffer.alloc(32, 1), Buffer.alloc(16, 2)), Buffer.from('seventeen bytes!!')));
  o.des = ['des-ede3-cbc', 'des-ede-cbc'].map((n) => t(() => hex(crypto.createCipheriv(n, Buffer.alloc(n === 'des-ede3-cbc' ? 24 : 16, 3), Buffer.alloc(8, 4)), Buffer.from('seventeen bytes!!'))));
  o.desBack = t(() => { const d = crypto.createDecipheriv('des-ede3-cbc', Buffer.alloc(24, 3), Buffer.alloc(8, 4)); return Buffer.concat([d.update(h(o.des[0])), d.final()]).toString(); });
  o.cipherInfo = ['aes-128-ecb', 'aes-256-ofb', 'des-ede3-cbc', 'chacha20-poly1305', 'aes-128-gcm'].map((n) => t(() => crypto.getCipherInfo(n)));
  o.badIv = t(() => crypto.createCipheriv('aes-128-ecb', Buffer.alloc(16, 1), Buffer.alloc(16)));
  o.ecdh = ['secp224r1', 'prime256v1', 'secp384r1', 'secp521r1'].map((curve) => t(() => {
    const size = { secp224r1: 28, prime256v1: 32, secp384r1: 48, secp521r1: 66 }[curve];
    const a = crypto.createECDH(curve), b = crypto.createECDH(curve);
    a.setPrivateKey(Buffer.alloc(size, 1)); b.setPrivateKey(Buffer.alloc(size, 2));
    // workerd fails on compressed and hybrid output ("Failed to get public key length"): those are checked against the host in crypto.test.ts.
    return [a.getPublicKey('hex'), a.getPrivateKey('hex'), a.computeSecret(b.getPublicKey()).toString('hex'), b.computeSecret(a.getPublicKey('hex'), 'hex', 'hex')];
  }));
  o.ecdhGen = t(() => { const a = crypto.createECDH('secp384r1'); const pub = a.generateKeys(); const b = crypto.createECDH('secp384r1'); b.generateKeys(); return [pub.length, a.computeSecret(b.getPublicKey()).equals(b.computeSecret(a.getPublicKey()))]; });
  o.ecdhConvert = t(() => crypto.ECDH.convertKey('036b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296', 'prime256v1', 'hex', 'hex', 'uncompressed'));
  o.ecdhErrors = [t(() => crypto.createECDH('nope')), t(() => crypto.createECDH('prime256v1').getPublicKey())];
  // workerd checks its larger groups' primes again (seconds each): modp16–18 are compared with the host's RFC 3526 copies in crypto.test.ts.
  o.groups = ['modp1', 'modp5', 'modp14', 'modp15'].map((g) => t(() => { const d = crypto.getDiffieHellman(g); return [crypto.createHash('sha256').update(d.getPrime()).digest('hex'), d.getGenerator('hex'), d.verifyError]; }));
  o.dh = t(() => {
    const p = crypto.getDiffieHellman('modp14').getPrime();
    const a = crypto.createDiffieHellman(p, 2), b = crypto.createDiffieHellman(p.toString('hex'), 'hex', Buffer.from([2]));
    a.setPrivateKey(Buffer.alloc(32, 7)); b.setPrivateKey(Buffer.alloc(32, 9));
    const pa = a.generateKeys('hex'); b.generateKeys();
    return [pa, a.computeSecret(b.getPublicKey()).toString('hex'), b.computeSecret(pa, 'hex', 'base64'), a.verifyError, b.getPrivateKey('hex')];
  });
  o.dhGroupKeys = t(() => { const a = crypto.createDiffieHellmanGroup('modp14'), b = crypto.getDiffieHellman('modp14'); a.generateKeys(); b.generateKeys(); return [a.computeSecret(b.getPublicKey()).equals(b.computeSecret(a.getPublicKey())), a.getPublicKey().length <= 256, typeof a.setPrivateKey]; });
  o.dhSmall = [['17', 2], ['ffffffffffffffc5', 2], ['ffffffffffffffc5', 5]].map(([p, g]) => t(() => { const d = crypto.createDiffieHellman(h(p), g); return [d.getGenerator('hex'), d.verifyError]; }));
  o.dhLen = t(() => { const d = crypto.createDiffieHellman(64); return [d.getPrime().length, d.verifyError, d.getGenerator('hex')]; });
  o.dhHuge = t(() => crypto.createDiffieHellman(Buffer.alloc(1300, 0xff)));
  o.primes = [t(() => crypto.generatePrimeSync(64, { bigint: true }).toString(2).length), t(() => crypto.generatePrimeSync(32).byteLength), t(() => crypto.generatePrimeSync(64, { safe: true, bigint: true }) % 4n), t(() => crypto.generatePrimeSync(64, { add: 12n, rem: 11n, bigint: true }) % 12n), t(() => crypto.generatePrimeSync(0))];
  o.checks = [7n, 8n, Buffer.from([13]), 2n ** 127n - 1n, 2n ** 127n + 1n, -5n].map((c) => t(() => crypto.checkPrimeSync(c)));
  o.primeAsync = await new Promise((r) => crypto.generatePrime(48, { bigint: true }, (e, p) => r(e ? e.message : crypto.checkPrimeSync(p))));
  o.rsa = t(() => [crypto.privateEncrypt(V.rsaPriv, Buffer.from('signed')).toString('hex'), crypto.publicDecrypt(V.rsaPub, crypto.privateEncrypt(V.rsaPriv, Buffer.from('signed'))).toString()]);
  o.rsaPkcs1 = t(() => crypto.privateDecrypt({ key: V.rsaPriv, padding: crypto.constants.RSA_PKCS1_PADDING }, crypto.publicEncrypt({ key: V.rsaPub, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.from('pkcs1'))).toString());
  o.rsaNoPad = t(() => crypto.publicDecrypt({ key: V.rsaPub, padding: crypto.constants.RSA_NO_PADDING }, crypto.privateEncrypt({ key: V.rsaPriv, padding: crypto.constants.RSA_NO_PADDING }, Buffer.alloc(128, 1))).toString('hex'));
  o.rsaOaep = t(() => crypto.privateDecrypt(V.rsaPriv, crypto.publicEncrypt(V.rsaPub, Buffer.from('oaep'))).toString());
  // workerd cannot read back an encrypted SEC1 key (nor its own): PKCS#8 and PKCS#1 are compared here, SEC1 with the host in crypto.test.ts.
  o.encrypted = [V.pkcs8Enc, V.pkcs1Enc].map((key) => t(() => crypto.createPublicKey(crypto.createPrivateKey({ key, passphrase: 'pw' })).export({ format: 'pem', type: 'spki' }) === V.rsaPub));
  o.encryptedWrong = [t(() => crypto.createPrivateKey({ key: V.pkcs8Enc, passphrase: 'nope' })), t(() => crypto.createPrivateKey(V.pkcs8Enc))];
  o.encryptedBack = t(() => { const k = crypto.createPrivateKey(V.rsaPriv); return ['aes-128-cbc', 'des-ede3-cbc'].map((cipher) => crypto.createPrivateKey({ key: k.export({ format: 'pem', type: 'pkcs8', cipher, passphrase: 'x' }), passphrase: 'x' }).equals(k)); });
  const c = new crypto.X509Certificate(V.cert);
  o.x509 = ['subject', 'subjectAltName', 'issuer', 'infoAccess', 'validFrom', 'validTo', 'fingerprint', 'fingerprint256', 'fingerprint512', 'keyUsage', 'serialNumber', 'ca', 'issuerCertificate'].map((k) => t(() => c[k]));
  o.x509More = [t(() => c.raw.length), t(() => [c.publicKey.type, c.publicKey.asymmetricKeyType, c.publicKey.export({ format: 'pem', type: 'spki' })]), t(() => c.toString() === V.cert), t(() => c.toJSON() === c.toString()), t(() => new crypto.X509Certificate(c.raw).fingerprint256)];
  o.x509Legacy = t(() => JSON.stringify(c.toLegacyObject(), (k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)));
  const ca = new crypto.X509Certificate(V.caCert);
  o.caCert = ['subject', 'issuer', 'ca', 'subjectAltName', 'infoAccess', 'keyUsage', 'serialNumber'].map((k) => t(() => ca[k])).concat([t(() => ca.publicKey.asymmetricKeyDetails.modulusLength), t(() => ca.verify(ca.publicKey)), t(() => ca.checkIssued(ca)), t(() => c.checkIssued(ca))]);
  o.caLegacy = t(() => JSON.stringify(ca.toLegacyObject(), (k, v) => (v && v.type === 'Buffer' ? Buffer.from(v.data).toString('hex') : v)));
  o.x509Checks = [t(() => c.checkHost('example.com')), t(() => c.checkHost('foo.example.org')), t(() => c.checkHost('a.b.example.org')), t(() => c.checkHost('other.com')), t(() => c.checkHost('EXAMPLE.COM')), t(() => c.checkHost('example.com', { subject: 'never' })), t(() => c.checkEmail('a@example.com')), t(() => c.checkEmail('b@example.com')), t(() => c.checkIP('127.0.0.1')), t(() => c.checkIP('127.0.0.2')), t(() => c.verify(c.publicKey)), t(() => c.verify(crypto.createPublicKey(V.rsaPub))), t(() => c.checkIssued(c))];
  o.x509Bad = t(() => new crypto.X509Certificate('not a certificate') && 'accepted');
  return new Response(JSON.stringify(o));
} };`;

describe('node:crypto beyond WebCrypto', { skip: workerdMissing() }, () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-nodecrypto-e2e-'));
  before(async () => {
    writeFileSync(join(dir, 'index.js'), SOURCE);
    const config = { name: 'nc', main: 'index.js', compatibility_date: '2025-06-01', compatibility_flags: ['nodejs_compat'], route: '*/nc*' };
    writeFileSync(join(dir, 'wrangler.json'), JSON.stringify({ ...config, limits: { cpu_ms: 20_000 } }));
    mesh = await startTestMesh();
    const r = await mesh.cli(['deploy'], dir);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers as on workerd', async () => {
    const ours = await waitFor('the worker', async () => {
      const res = await fetch(`${mesh.httpUrl}/nc`);
      return res.status === 200 ? res.text() : undefined;
    });
    const theirs = await answerOnWorkerd(SOURCE, '2025-06-01');
    const a = JSON.parse(ours) as Record<string, unknown>;
    const b = JSON.parse(theirs) as Record<string, unknown>;
    const differ = Object.keys(b).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
    assert.deepEqual(Object.fromEntries(differ.map((k) => [k, a[k]])), Object.fromEntries(differ.map((k) => [k, b[k]])));
  });
});
