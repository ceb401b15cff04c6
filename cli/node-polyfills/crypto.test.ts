/**
 * node:crypto's keys, signatures and ciphers, bundled as `deploy` bundles them and run in a real isolate:
 * known-answer vectors (each names its source) and cross-checks with the host's node:crypto both ways
 * (what the worker signs or encrypts, the host verifies or decrypts, and the reverse).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as host from 'node:crypto';
import { runCompatWorker } from './testing.ts';

/** Runs `body` (the inside of a fetch handler, with `crypto` = node:crypto and `V` = the vectors) in a fresh worker. */
async function inWorker(body: string, vectors: unknown = {}): Promise<any> {
  const res = await runCompatWorker(
    `import crypto from 'node:crypto'; import { Buffer } from 'node:buffer';
     const V = ${JSON.stringify(vectors)};
     const fails = (f) => { try { f(); return 'accepted' } catch (e) { return (e.code ?? e.name) + ': ' + e.message } };
     export default { async fetch() { const out = await (async () => { ${body} })(); return Response.json(out) } };`,
  );
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body);
}

const unhex = (h: string) => Buffer.from(h, 'hex');

/** ⌊2^bits·π⌋, by Machin's formula (π = 16·atan(1/5) − 4·atan(1/239)) in fixed point with 64 guard bits. */
function piTimes2To(bits: number): bigint {
  const guard = 64n;
  const one = 1n << (BigInt(bits) + guard);
  const atanInv = (x: bigint) => {
    let sum = 0n;
    let term = one / x;
    for (let n = 1n, sign = 1n; term !== 0n; n += 2n, sign = -sign, term /= x * x) sum += (sign * term) / n;
    return sum;
  };
  return (16n * atanInv(5n) - 4n * atanInv(239n)) >> guard;
}

test('ciphers: NIST SP 800-38A CBC and CTR, the GCM paper test case 3, streamed in odd pieces, and the host decrypts what the worker encrypts', async () => {
  // NIST SP 800-38A, F.2.1 (CBC-AES128.Encrypt) and F.5.1 (CTR-AES128.Encrypt): the same four plaintext blocks.
  const p = '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710';
  const key = '2b7e151628aed2a6abf7158809cf4f3c';
  const cbc = '7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7';
  const ctr = '874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee';
  // McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test case 3 (AES-128, 96-bit IV, no AAD).
  const gcm = {
    key: 'feffe9928665731c6d6a8f9467308308',
    iv: 'cafebabefacedbaddecaf888',
    p: 'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255',
    c: '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985',
    tag: '4d5c2af327cd64a62cf35abd2ba6fab4',
  };
  const msg = 'a message of forty-one bytes, not aligned';
  const out = await inWorker(
    `
    const h = (x) => Buffer.from(x, 'hex');
    // Fed in pieces of 7 bytes: the chain must carry across update() calls.
    const run = (c, data) => { const parts = []; for (let i = 0; i < data.length; i += 7) parts.push(c.update(data.subarray(i, i + 7))); parts.push(c.final()); return Buffer.concat(parts).toString('hex'); };
    const cbc = run(crypto.createCipheriv('aes-128-cbc', h(V.key), h('000102030405060708090a0b0c0d0e0f')).setAutoPadding(false), h(V.p));
    const cbcBack = run(crypto.createDecipheriv('aes-128-cbc', h(V.key), h('000102030405060708090a0b0c0d0e0f')).setAutoPadding(false), h(cbc));
    const ctr = run(crypto.createCipheriv('aes-128-ctr', h(V.key), h('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff')), h(V.p));
    const g = crypto.createCipheriv('aes-128-gcm', h(V.gcm.key), h(V.gcm.iv));
    const gcm = run(g, h(V.gcm.p));
    const gd = crypto.createDecipheriv('aes-128-gcm', h(V.gcm.key), h(V.gcm.iv)).setAuthTag(h(V.gcm.tag));
    const gcmBack = run(gd, h(V.gcm.c));
    const forged = fails(() => crypto.createDecipheriv('aes-128-gcm', h(V.gcm.key), h(V.gcm.iv)).setAuthTag(Buffer.alloc(16)).update(h(V.gcm.c)) && 0 || crypto.createDecipheriv('aes-128-gcm', h(V.gcm.key), h(V.gcm.iv)).setAuthTag(Buffer.alloc(16)).final());
    // Padded CBC and GCM with AAD, of a message not a whole number of blocks, for the host to decrypt.
    const k256 = Buffer.alloc(32, 7), iv = Buffer.alloc(16, 9);
    const padded = crypto.createCipheriv('aes-256-cbc', k256, iv).update(V.msg, 'utf8', 'base64') + crypto.createCipheriv('aes-256-cbc', k256, iv).final('base64');
    const c1 = crypto.createCipheriv('aes-256-cbc', k256, iv);
    const paddedHex = c1.update(V.msg, 'utf8', 'hex') + c1.final('hex');
    const back = crypto.createDecipheriv('aes-256-cbc', k256, iv);
    const paddedBack = back.update(paddedHex, 'hex', 'utf8') + back.final('utf8');
    const g2 = crypto.createCipheriv('aes-256-gcm', k256, iv.subarray(0, 12)).setAAD(Buffer.from('header'));
    const sealed = Buffer.concat([g2.update(V.msg, 'utf8'), g2.final()]).toString('hex');
    const badPad = fails(() => { const d = crypto.createDecipheriv('aes-256-cbc', k256, iv); d.update(Buffer.alloc(16)); return d.final(); });
    return { cbc, cbcBack, ctr, gcm, gcmTag: g.getAuthTag().toString('hex'), gcmBack, forged, paddedHex, paddedBack, sealed, g2Tag: g2.getAuthTag().toString('hex'), badPad,
      badKey: fails(() => crypto.createCipheriv('aes-128-cbc', Buffer.alloc(15), iv)), unknown: fails(() => crypto.createCipheriv('aes-128-cfb', Buffer.alloc(16), iv)) };`,
    { key, p, gcm, msg },
  );
  assert.equal(out.cbc, cbc);
  assert.equal(out.cbcBack, p);
  assert.equal(out.ctr, ctr);
  assert.equal(out.gcm, gcm.c);
  assert.equal(out.gcmTag, gcm.tag);
  assert.equal(out.gcmBack, gcm.p);
  assert.match(out.forged, /unable to authenticate data/);
  const k256 = Buffer.alloc(32, 7);
  const iv = Buffer.alloc(16, 9);
  const hc = host.createCipheriv('aes-256-cbc', k256, iv);
  assert.equal(out.paddedHex, hc.update(msg, 'utf8', 'hex') + hc.final('hex'), 'padded CBC as the host pads');
  assert.equal(out.paddedBack, msg);
  const hd = host.createDecipheriv('aes-256-gcm', k256, iv.subarray(0, 12)).setAAD(Buffer.from('header')).setAuthTag(unhex(out.g2Tag));
  assert.equal(Buffer.concat([hd.update(unhex(out.sealed)), hd.final()]).toString(), msg, 'the host opens what the worker sealed');
  assert.match(out.badPad, /bad decrypt/);
  assert.match(out.badKey, /^ERR_CRYPTO_INVALID_KEYLEN/);
  assert.match(out.unknown, /^ERR_CRYPTO_UNKNOWN_CIPHER/);
});

test('keys and signatures: RFC 8032 Ed25519, RSA PKCS#1 v1.5 equal to the host, PSS and ECDSA verified across, PEM/DER/JWK round trips, diffieHellman', async () => {
  // RFC 8032 section 7.1, TEST 1: the secret key, its public key, the empty message's signature.
  const ed = {
    pkcs8: `302e020100300506032b657004220420${'9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60'}`,
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  };
  const rsa = host.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = host.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const data = 'signed by the host';
  const vectors = {
    ed,
    data,
    rsaPkcs1: rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }),
    rsaPub: rsa.publicKey.export({ format: 'pem', type: 'spki' }),
    ecSec1: ec.privateKey.export({ format: 'pem', type: 'sec1' }),
    ecPub: ec.publicKey.export({ format: 'pem', type: 'spki' }),
    hostEcSig: host.sign('sha384', Buffer.from(data), ec.privateKey).toString('hex'),
    dh: (['x25519', 'ec'] as const).map((type) => {
      const a = host.generateKeyPairSync(type as 'x25519', type === 'ec' ? ({ namedCurve: 'P-256' } as never) : undefined);
      const b = host.generateKeyPairSync(type as 'x25519', type === 'ec' ? ({ namedCurve: 'P-256' } as never) : undefined);
      return {
        a: a.privateKey.export({ format: 'pem', type: 'pkcs8' }),
        b: b.publicKey.export({ format: 'pem', type: 'spki' }),
        shared: host.diffieHellman({ privateKey: b.privateKey, publicKey: a.publicKey }).toString('hex'),
      };
    }),
    hostPssSig: host.sign('sha256', Buffer.from(data), { key: rsa.privateKey, padding: host.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }).toString('hex'),
  };
  const out = await inWorker(
    `
    const edKey = crypto.createPrivateKey({ key: Buffer.from(V.ed.pkcs8, 'hex'), format: 'der', type: 'pkcs8' });
    const edPub = crypto.createPublicKey(edKey);
    const rsaKey = crypto.createPrivateKey(V.rsaPkcs1);
    const ecKey = crypto.createPrivateKey(V.ecSec1);
    const signer = crypto.createSign('RSA-SHA256'); signer.update('signed '); signer.update('by the worker');
    const gen = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const genSig = crypto.sign('sha256', Buffer.from('x'), gen.privateKey);
    const secret = crypto.createSecretKey(Buffer.from('0123456789abcdef'));
    const jwk = rsaKey.export({ format: 'jwk' });
    return {
      edSig: crypto.sign(null, Buffer.alloc(0), edKey).toString('hex'),
      edPub: edPub.export({ format: 'jwk' }).x,
      edType: [edKey.type, edKey.asymmetricKeyType, edPub.type],
      edVerify: crypto.verify(null, Buffer.alloc(0), edPub, Buffer.from(V.ed.sig, 'hex')),
      rsaSig: signer.sign(rsaKey, 'hex'),
      rsaDetails: [rsaKey.asymmetricKeyDetails.modulusLength, String(rsaKey.asymmetricKeyDetails.publicExponent)],
      rsaPkcs8: rsaKey.export({ format: 'pem', type: 'pkcs8' }),
      rsaPubPem: crypto.createPublicKey(rsaKey).export({ format: 'pem', type: 'spki' }),
      rsaFromJwk: crypto.createPrivateKey({ key: jwk, format: 'jwk' }).equals(rsaKey),
      pssSig: crypto.sign('sha256', Buffer.from(V.data), { key: rsaKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }).toString('hex'),
      hostPss: crypto.verify('sha256', Buffer.from(V.data), { key: V.rsaPub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING }, Buffer.from(V.hostPssSig, 'hex')),
      ecSig: crypto.createSign('sha384').update(V.data).sign(ecKey, 'hex'),
      ecDetails: ecKey.asymmetricKeyDetails.namedCurve,
      hostEc: crypto.createVerify('sha384').update(V.data).verify(V.ecPub, V.hostEcSig, 'hex'),
      hostEcTampered: crypto.verify('sha384', Buffer.from(V.data + '!'), V.ecPub, Buffer.from(V.hostEcSig, 'hex')),
      gen: [gen.publicKey, genSig.toString('hex')],
      oaep: crypto.publicEncrypt(V.rsaPub, Buffer.from('for the host')).toString('hex'),
      secret: [secret.type, secret.symmetricKeySize, secret.export().toString(), secret.export({ format: 'jwk' }).k],
      scrypt: crypto.scryptSync('password', 'NaCl', 64, { N: 1024, r: 8, p: 16 }).toString('hex'),
      scryptMem: fails(() => crypto.scryptSync('p', 's', 16, { N: 2 ** 20, r: 8 })),
      encrypted: fails(() => crypto.createPrivateKey('-----BEGIN ENCRYPTED PRIVATE KEY-----\\nAA==\\n-----END ENCRYPTED PRIVATE KEY-----')),
      x25519: crypto.generateKeyPairSync('x25519').publicKey.export({ format: 'der' }).length,
      dh: V.dh.map((d) => crypto.diffieHellman({ privateKey: crypto.createPrivateKey(d.a), publicKey: crypto.createPublicKey(d.b) }).toString('hex')),
      dhMixed: fails(() => crypto.diffieHellman({ privateKey: crypto.createPrivateKey(V.dh[0].a), publicKey: crypto.createPublicKey(V.dh[1].b) })),
    };`,
    vectors,
  );
  assert.equal(out.edSig, ed.sig, 'RFC 8032 TEST 1 signature');
  assert.equal(Buffer.from(out.edPub, 'base64url').toString('hex'), ed.pub, 'RFC 8032 TEST 1 public key');
  assert.deepEqual(out.edType, ['private', 'ed25519', 'public']);
  assert.equal(out.edVerify, true);
  assert.equal(out.rsaSig, host.createSign('RSA-SHA256').update('signed by the worker').sign(rsa.privateKey, 'hex'), 'PKCS#1 v1.5 is deterministic');
  assert.deepEqual(
    out.rsaDetails,
    ['2048', '65537'].map((x, i) => (i === 0 ? Number(x) : x)),
  );
  assert.equal(out.rsaPkcs8, rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }));
  assert.equal(out.rsaPubPem, vectors.rsaPub);
  assert.equal(out.rsaFromJwk, true);
  assert.ok(host.verify('sha256', Buffer.from(data), { key: rsa.publicKey, padding: host.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, unhex(out.pssSig)));
  assert.equal(out.hostPss, true, 'salt length recovered on verify, as Node does');
  assert.ok(host.createVerify('sha384').update(data).verify(ec.publicKey, out.ecSig, 'hex'), 'ECDSA in DER, as Node signs');
  assert.equal(out.ecDetails, 'secp384r1');
  assert.equal(out.hostEc, true);
  assert.equal(out.hostEcTampered, false);
  assert.ok(host.verify('sha256', Buffer.from('x'), out.gen[0], unhex(out.gen[1])), 'a generated key exported as PEM');
  assert.equal(host.privateDecrypt(rsa.privateKey, unhex(out.oaep)).toString(), 'for the host', 'RSA-OAEP (SHA-1), as Node pads by default');
  assert.deepEqual(out.secret, ['secret', 16, '0123456789abcdef', Buffer.from('0123456789abcdef').toString('base64url')]);
  // RFC 7914 section 12, the second vector.
  assert.equal(out.scrypt, 'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640');
  assert.match(out.scryptMem, /^ERR_CRYPTO_INVALID_SCRYPT_PARAMS/);
  assert.match(out.encrypted, /^ERR_MISSING_PASSPHRASE/);
  assert.equal(out.x25519, 44);
  assert.deepEqual(
    out.dh,
    vectors.dh.map((d) => d.shared),
    'X25519 and ECDH P-256 secrets agree with the host',
  );
  assert.match(out.dhMixed, /^ERR_CRYPTO_INCOMPATIBLE_KEY/);
});

test('more ciphers: RFC 8439 ChaCha20-Poly1305, NIST SP 800-38A ECB and OFB, Triple DES equal to the host, streamed in odd pieces', async () => {
  // NIST SP 800-38A, F.1.1 (ECB-AES128.Encrypt) and F.4.1 (OFB-AES128.Encrypt): the four plaintext blocks of F.2.1.
  const p = '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710';
  const key = '2b7e151628aed2a6abf7158809cf4f3c';
  const ecb = '3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4';
  const ofb = '3b3fd92eb72dad20333449f8e83cfb4a7789508d16918f03f53c52dac54ed8259740051e9c5fecf64344f7a82260edcc304c6528f659c77866a510d9c1d6ae5e';
  // RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 example.
  const chacha = {
    key: '808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f',
    iv: '070000004041424344454647',
    aad: '50515253c0c1c2c3c4c5c6c7',
    p: "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
    c: 'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116',
    tag: '1ae10b594f09e26a7e902ecbd0600691',
  };
  const msg = 'a message of forty-one bytes, not aligned';
  const out = await inWorker(
    `
    const h = (x) => Buffer.from(x, 'hex');
    const run = (c, data) => { const parts = []; for (let i = 0; i < data.length; i += 7) parts.push(c.update(data.subarray(i, i + 7))); parts.push(c.final()); return Buffer.concat(parts).toString('hex'); };
    const ecb = run(crypto.createCipheriv('aes-128-ecb', h(V.key), null).setAutoPadding(false), h(V.p));
    const ecbBack = run(crypto.createDecipheriv('aes-128-ecb', h(V.key), null).setAutoPadding(false), h(ecb));
    const o = crypto.createCipheriv('aes-128-ofb', h(V.key), h('000102030405060708090a0b0c0d0e0f'));
    const first = o.update(h(V.p).subarray(0, 5));
    const ofbFirst = first.length;
    const ofb = Buffer.concat([first, o.update(h(V.p).subarray(5)), o.final()]).toString('hex');
    const ofbBack = run(crypto.createDecipheriv('aes-128-ofb', h(V.key), h('000102030405060708090a0b0c0d0e0f')), h(ofb));
    const ch = crypto.createCipheriv('chacha20-poly1305', h(V.chacha.key), h(V.chacha.iv), { authTagLength: 16 });
    ch.setAAD(h(V.chacha.aad));
    const chacha = run(ch, Buffer.from(V.chacha.p));
    const cd = crypto.createDecipheriv('chacha20-poly1305', h(V.chacha.key), h(V.chacha.iv)).setAAD(h(V.chacha.aad)).setAuthTag(h(V.chacha.tag));
    const chachaBack = Buffer.from(run(cd, h(V.chacha.c)), 'hex').toString();
    const forged = fails(() => { const d = crypto.createDecipheriv('chacha20-poly1305', h(V.chacha.key), h(V.chacha.iv)).setAuthTag(Buffer.alloc(16)); d.update(h(V.chacha.c)); return d.final(); });
    const t8 = crypto.createCipheriv('chacha20-poly1305', Buffer.alloc(32, 1), Buffer.alloc(12, 2), { authTagLength: 8 });
    const short = Buffer.concat([t8.update(Buffer.from(V.msg)), t8.final()]).toString('hex');
    const des = {};
    for (const [name, k, iv] of [['des-ede3-cbc', 24, 8], ['des-ede-cbc', 16, 8], ['des-ede', 16, 0], ['aes-256-ecb', 32, 0]]) {
      const c = crypto.createCipheriv(name, Buffer.alloc(k, 5), iv ? Buffer.alloc(iv, 6) : null);
      const enc = run(c, Buffer.from(V.msg));
      const back = Buffer.from(run(crypto.createDecipheriv(name, Buffer.alloc(k, 5), iv ? Buffer.alloc(iv, 6) : null), h(enc)), 'hex').toString();
      des[name] = [enc, back];
    }
    const badPad = fails(() => { const d = crypto.createDecipheriv('des-ede3-cbc', Buffer.alloc(24, 5), Buffer.alloc(8, 6)); d.update(Buffer.alloc(16)); return d.final(); });
    return { ecb, ecbBack, ofbFirst, ofb, ofbBack, chacha, chachaTag: ch.getAuthTag().toString('hex'), chachaBack, forged, short, shortTag: t8.getAuthTag().toString('hex'), des, badPad,
      info: [crypto.getCipherInfo('aes-128-ecb'), crypto.getCipherInfo('chacha20-poly1305'), crypto.getCipherInfo('aes-128-cfb') ?? null],
      lists: [crypto.getCiphers().length, crypto.getCurves(), crypto.getHashes().length],
      hashes: ['md5-sha1', 'RSA-MD5', 'RSA-SHA224', 'DSA-SHA', 'DSA-SHA1', 'ecdsa-with-SHA1', 'sha512-256'].map((n) => crypto.createHash(n).update('abc').digest('hex')),
      md4: fails(() => crypto.createHash('md4')),
      rc4: fails(() => crypto.createCipheriv('rc4', Buffer.alloc(16), null)), unknown: fails(() => crypto.createCipheriv('nope', Buffer.alloc(16), null)) };`,
    { key, p, chacha, msg },
  );
  assert.equal(out.ecb, ecb);
  assert.equal(out.ecbBack, p);
  assert.equal(out.ofbFirst, 5, 'OFB gives every byte at update(), as Node does');
  assert.equal(out.ofb, ofb);
  assert.equal(out.ofbBack, p);
  assert.equal(out.chacha, chacha.c);
  assert.equal(out.chachaTag, chacha.tag);
  assert.equal(out.chachaBack, chacha.p);
  assert.match(out.forged, /unable to authenticate data/);
  const h8 = host.createCipheriv('chacha20-poly1305', Buffer.alloc(32, 1), Buffer.alloc(12, 2), { authTagLength: 8 });
  assert.equal(out.short, Buffer.concat([h8.update(msg), h8.final()]).toString('hex'));
  assert.equal(out.shortTag, h8.getAuthTag().toString('hex'));
  for (const [name, [enc, back]] of Object.entries(out.des as Record<string, [string, string]>)) {
    const info = host.getCipherInfo(name)!;
    const hc = host.createCipheriv(name, Buffer.alloc(info.keyLength, 5), info.ivLength ? Buffer.alloc(info.ivLength, 6) : null);
    assert.equal(enc, Buffer.concat([hc.update(msg), hc.final()]).toString('hex'), `${name} as the host encrypts`);
    assert.equal(back, msg);
  }
  assert.match(out.badPad, /bad decrypt/);
  assert.deepEqual(out.info, [
    { name: 'AES-128-ECB', nid: 418, blockSize: 16, ivLength: 0, keyLength: 16, mode: 'ecb' },
    { name: 'chacha20-poly1305', nid: 950, blockSize: 1, ivLength: 12, keyLength: 32, mode: 'stream' },
    null,
  ]);
  assert.deepEqual(out.lists, [60, ['secp224r1', 'prime256v1', 'secp384r1', 'secp521r1'], 17]);
  const d = (n: string) => host.createHash(n).update('abc').digest('hex');
  assert.deepEqual(
    out.hashes,
    [d('md5') + d('sha1'), d('md5'), d('sha224'), d('sha1'), d('sha1'), d('sha1'), d('sha512-256')],
    "OpenSSL's names, as workerd takes them",
  );
  assert.match(out.md4, /^ERR_CRYPTO_INVALID_DIGEST/);
  assert.match(out.rc4, /^ERR_CRYPTO_UNKNOWN_CIPHER: Unsupported cipher here: rc4/);
  assert.match(out.unknown, /^ERR_CRYPTO_UNKNOWN_CIPHER: Unknown or unsupported cipher: nope/);
});

test('encrypted private keys: PBES2 and legacy PEM read from the host and written for it, wrong or missing passphrases refused', async () => {
  const rsa = host.generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = host.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const vectors = {
    pkcs8Aes: ec.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }),
    pkcs8Des: rsa.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'des-ede3-cbc', passphrase: 'pw' }),
    pkcs8Der: Buffer.from(ec.privateKey.export({ format: 'der', type: 'pkcs8', cipher: 'aes-128-cbc', passphrase: 'pw' })).toString('hex'),
    pkcs1Des: rsa.privateKey.export({ format: 'pem', type: 'pkcs1', cipher: 'des-ede3-cbc', passphrase: 'pw' }),
    sec1Aes: ec.privateKey.export({ format: 'pem', type: 'sec1', cipher: 'aes-128-cbc', passphrase: 'pw' }),
    ecPub: ec.publicKey.export({ format: 'pem', type: 'spki' }),
    rsaPub: rsa.publicKey.export({ format: 'pem', type: 'spki' }),
    ecPlain: ec.privateKey.export({ format: 'pem', type: 'pkcs8' }),
  };
  const out = await inWorker(
    `
    const pub = (k) => crypto.createPublicKey(k).export({ format: 'pem', type: 'spki' });
    const mine = crypto.createPrivateKey(V.ecPlain);
    return {
      pubs: [pub({ key: V.pkcs8Aes, passphrase: 'pw' }), pub({ key: V.pkcs8Des, passphrase: Buffer.from('pw') }), pub({ key: Buffer.from(V.pkcs8Der, 'hex'), format: 'der', type: 'pkcs8', passphrase: 'pw' }), pub({ key: V.pkcs1Des, passphrase: 'pw' }), pub({ key: V.sec1Aes, passphrase: 'pw' })],
      signed: crypto.sign('sha256', Buffer.from('m'), { key: V.pkcs1Des, passphrase: 'pw' }).toString('hex'),
      wrong: fails(() => crypto.createPrivateKey({ key: V.pkcs8Aes, passphrase: 'nope' })),
      wrongLegacy: fails(() => crypto.createPrivateKey({ key: V.pkcs1Des, passphrase: 'nope' })),
      missing: fails(() => crypto.createPrivateKey(V.pkcs8Aes)),
      written: ['aes-128-cbc', 'aes-256-cbc', 'des-ede3-cbc'].map((cipher) => mine.export({ format: 'pem', type: 'pkcs8', cipher, passphrase: 'secret' })),
      writtenDer: mine.export({ format: 'der', type: 'pkcs8', cipher: 'aes-192-cbc', passphrase: 'secret' }).toString('hex'),
      writtenSec1: mine.export({ format: 'pem', type: 'sec1', cipher: 'aes-256-cbc', passphrase: 'secret' }),
      writtenPkcs1: crypto.createPrivateKey({ key: V.pkcs1Des, passphrase: 'pw' }).export({ format: 'pem', type: 'pkcs1', cipher: 'des-ede3-cbc', passphrase: 'secret' }),
      plainSec1: mine.export({ format: 'pem', type: 'sec1' }),
      generated: crypto.generateKeyPairSync('ec', { namedCurve: 'P-384', privateKeyEncoding: { format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'g' } }).privateKey,
      noPassphrase: fails(() => mine.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc' })),
      derSec1: fails(() => mine.export({ format: 'der', type: 'sec1', cipher: 'aes-256-cbc', passphrase: 'x' })),
    };`,
    vectors,
  );
  assert.deepEqual(out.pubs, [vectors.ecPub, vectors.rsaPub, vectors.ecPub, vectors.rsaPub, vectors.ecPub]);
  assert.ok(host.verify('sha256', Buffer.from('m'), rsa.publicKey, unhex(out.signed)));
  assert.match(out.wrong, /^ERR_OSSL_BAD_DECRYPT: Failed to parse private key/);
  assert.match(out.wrongLegacy, /Failed to parse private key/);
  assert.match(out.missing, /^ERR_MISSING_PASSPHRASE/);
  for (const pem of out.written) {
    assert.match(pem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.ok(host.createPrivateKey({ key: pem, passphrase: 'secret' }).equals(ec.privateKey), 'the host opens what the worker encrypted');
  }
  assert.ok(host.createPrivateKey({ key: unhex(out.writtenDer), format: 'der', type: 'pkcs8', passphrase: 'secret' }).equals(ec.privateKey));
  assert.match(out.writtenSec1, /^-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,[0-9A-F]{32}\n\n/);
  assert.ok(host.createPrivateKey({ key: out.writtenSec1, passphrase: 'secret' }).equals(ec.privateKey));
  assert.ok(host.createPrivateKey({ key: out.writtenPkcs1, passphrase: 'secret' }).equals(rsa.privateKey));
  assert.equal(out.plainSec1, ec.privateKey.export({ format: 'pem', type: 'sec1' }), 'SEC1 as the host writes it');
  assert.equal(host.createPrivateKey({ key: out.generated, passphrase: 'g' }).asymmetricKeyType, 'ec');
  assert.match(out.noPassphrase, /^ERR_INVALID_ARG_VALUE/);
  assert.match(out.derSec1, /^ERR_CRYPTO_INCOMPATIBLE_KEY_OPTIONS/);
});

test('ECDH, RFC 3526 groups and DH, primes, RSA paddings and X509Certificate equal to the host; the host-side caps answer as errors', async () => {
  const rsa = host.generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ecdh = host.createECDH('secp384r1');
  ecdh.generateKeys();
  const dh = host.getDiffieHellman('modp15');
  dh.generateKeys();
  const { readFileSync } = await import('node:fs');
  const cert = readFileSync(new URL('../../test/node-crypto.e2e.test.ts', import.meta.url), 'utf8').match(
    /-----BEGIN CERTIFICATE-----[^`]+-----END CERTIFICATE-----\n/,
  )![0];
  const ecKey = host.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const vectors = {
    ecdhPriv: ecdh.getPrivateKey('hex'),
    ecdhPub: ecdh.getPublicKey('hex'),
    dhPub: dh.getPublicKey('hex'),
    rsaPriv: rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }),
    rsaPub: rsa.publicKey.export({ format: 'pem', type: 'spki' }),
    hostSigned: host.privateEncrypt(rsa.privateKey, Buffer.from('from the host')).toString('hex'),
    cert,
    otherKey: ecKey.privateKey.export({ format: 'pem', type: 'pkcs8' }),
  };
  const out = await inWorker(
    `
    const e = crypto.createECDH('secp384r1');
    e.setPrivateKey(V.ecdhPriv, 'hex');
    const mine = crypto.createECDH('secp384r1');
    mine.generateKeys();
    const d = crypto.getDiffieHellman('modp15');
    d.generateKeys();
    const c = new crypto.X509Certificate(V.cert);
    return {
      ecdh: [e.getPublicKey('hex'), e.getPublicKey('hex', 'compressed'), e.getPublicKey('hex', 'hybrid'), crypto.ECDH.convertKey(e.getPublicKey('hex', 'compressed'), 'secp384r1', 'hex', 'hex', 'hybrid')],
      ecdhMine: [mine.getPrivateKey('hex'), mine.getPublicKey('hex', 'compressed')],
      groups: ['modp14', 'modp15', 'modp16', 'modp17', 'modp18'].map((g) => crypto.getDiffieHellman(g).getPrime('hex')),
      dh: [d.getPrivateKey('hex'), d.getPublicKey('hex'), d.computeSecret(V.dhPub, 'hex', 'hex')],
      rsa: [crypto.publicEncrypt({ key: V.rsaPub, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.from('pkcs1')).toString('hex'), crypto.privateEncrypt(V.rsaPriv, Buffer.from('from the worker')).toString('hex'), crypto.publicDecrypt(V.rsaPub, Buffer.from(V.hostSigned, 'hex')).toString()],
      x509: [c.subject, c.fingerprint256, c.serialNumber, c.validTo, c.checkPrivateKey(crypto.createPrivateKey(V.otherKey)), c.keyUsage, c.toLegacyObject().serialNumber],
      caps: [
        fails(() => crypto.generatePrimeSync(4096)),
        fails(() => crypto.generatePrimeSync(1024, { safe: true })),
        fails(() => crypto.checkPrimeSync(2n ** 9000n + 1n)),
        fails(() => crypto.createDiffieHellman(2048)),
        fails(() => crypto.createDiffieHellman(Buffer.alloc(1100, 0xff))),
        fails(() => crypto.createECDH('secp256k1')),
        fails(() => crypto.publicEncrypt({ key: V.rsaPub, padding: 7 }, Buffer.from('x'))),
        fails(() => crypto.createDiffieHellman(Buffer.from('ffffffffffffffc5', 'hex')).generateKeys()),
      ],
    };`,
    vectors,
  );
  const p = host.createECDH('secp384r1');
  p.setPrivateKey(vectors.ecdhPriv, 'hex');
  assert.deepEqual(out.ecdh, [p.getPublicKey('hex'), p.getPublicKey('hex', 'compressed'), p.getPublicKey('hex', 'hybrid'), p.getPublicKey('hex', 'hybrid')]);
  const check = host.createECDH('secp384r1');
  check.setPrivateKey(out.ecdhMine[0], 'hex');
  assert.equal(check.getPublicKey('hex', 'compressed'), out.ecdhMine[1], 'a generated key pair agrees with the host');
  // RFC 3526 sections 3–7: each prime is 2^n − 2^(n−64) − 1 + 2^64·(⌊2^(n−130)·π⌋ + k), k as the RFC gives it.
  const rfc3526 = (
    [
      [2048n, 124476n],
      [3072n, 1690314n],
      [4096n, 240904n],
      [6144n, 929484n],
      [8192n, 4743158n],
    ] as const
  ).map(([n, k]) => (2n ** n - 2n ** (n - 64n) - 1n + 2n ** 64n * (piTimes2To(Number(n) - 130) + k)).toString(16));
  assert.deepEqual(out.groups, rfc3526);
  assert.deepEqual(
    out.groups,
    ['modp14', 'modp15', 'modp16', 'modp17', 'modp18'].map((g) => host.getDiffieHellman(g).getPrime('hex')),
  );
  assert.equal(out.dh[2], dh.computeSecret(out.dh[1], 'hex', 'hex'), 'the worker and the host agree on a modp15 secret');
  assert.equal(host.privateDecrypt({ key: rsa.privateKey, padding: host.constants.RSA_PKCS1_PADDING }, unhex(out.rsa[0])).toString(), 'pkcs1');
  assert.equal(out.rsa[1], host.privateEncrypt(rsa.privateKey, Buffer.from('from the worker')).toString('hex'), 'PKCS#1 v1.5 type 1 is deterministic');
  assert.equal(out.rsa[2], 'from the host');
  const x = new host.X509Certificate(cert);
  assert.deepEqual(out.x509, [x.subject, x.fingerprint256, x.serialNumber, x.validTo, false, x.keyUsage, x.serialNumber]);
  assert.match(out.caps[0], /^ERR_OUT_OF_RANGE: generatePrime size exceeds this runtime's maximum \(2048 bits\)/);
  assert.match(out.caps[1], /^ERR_OUT_OF_RANGE: .*512 bits for a safe prime/);
  assert.match(out.caps[2], /^ERR_OUT_OF_RANGE: checkPrime candidate exceeds maximum size/);
  assert.match(out.caps[3], /512 bits for a safe prime/);
  assert.match(out.caps[4], /DiffieHellman init failed: key is too large/);
  assert.match(out.caps[5], /Invalid curve/);
  assert.match(out.caps[6], /^ERR_INVALID_ARG_VALUE: Unsupported RSA padding 7/);
  assert.match(out.caps[7], /modulus too small/, "the host's OpenSSL 3 makes no keys for DH primes under 512 bits");
});
