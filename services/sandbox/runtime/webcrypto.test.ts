/**
 * crypto.subtle in the isolate, algorithm by algorithm: known-answer vectors (each names its source),
 * round trips, results checked against Node's own WebCrypto, and the hostile cases: wrong usages,
 * non-extractable keys, forged keys, oversized and unbounded parameters.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

const HELPERS = `
  const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
  const unhex = (h) => new Uint8Array(h.match(/../g).map((x) => parseInt(x, 16)));
  const enc = new TextEncoder();
  const b64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
  const fails = async (f) => { try { await f(); return 'accepted' } catch (e) { return e.name + ': ' + e.message } };
`;

/** Runs `body` (the inside of an async fetch handler returning a JSON-able value) in a fresh worker. */
async function inWorker(body: string, vars: Record<string, string> = {}): Promise<any> {
  const res = await rt.handle(
    worker(`${HELPERS}\nexport default { async fetch(req, env) { const out = await (async () => { ${body} })(); return Response.json(out) } }`, {
      vars,
      limits: { cpuMs: 2000, wallMs: 20_000, memoryMb: 128 },
    }),
    GET,
    { log: () => {} },
  );
  assert.equal(res.status, 200, text(res.body));
  return JSON.parse(text(res.body));
}

test('PBKDF2: RFC 6070 vectors (SHA-1), deriveKey to AES, and iteration counts above 100000 refused as Workers does', async () => {
  const out = await inWorker(`
    const k = await crypto.subtle.importKey('raw', enc.encode('password'), 'PBKDF2', false, ['deriveBits', 'deriveKey']);
    const bits = (c) => crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-1', salt: enc.encode('salt'), iterations: c }, k, 160).then(hex);
    const aes = await crypto.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode('salt'), iterations: 1 }, k, { name: 'AES-GCM', length: 128 }, true, ['encrypt']);
    return {
      c1: await bits(1), c2: await bits(2), c4096: await bits(4096),
      aes: [aes.algorithm.name, aes.algorithm.length, hex(await crypto.subtle.exportKey('raw', aes))],
      exportBase: await fails(() => crypto.subtle.exportKey('raw', k)),
      extractableBase: await fails(() => crypto.subtle.importKey('raw', enc.encode('p'), 'PBKDF2', true, ['deriveBits'])),
      tooMany: await fails(() => bits(1e9)),
      tooLong: await fails(() => crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: enc.encode('s'), iterations: 100000 }, k, 8 * 1024)),
    };`);
  // RFC 6070 section 2.
  assert.equal(out.c1, '0c60c80f961f0e71f3a9b524af6012062fe037a6');
  assert.equal(out.c2, 'ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957');
  assert.equal(out.c4096, '4b007901b765489abead49d926f721d065a429c1');
  const node = await webcrypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: Buffer.from('salt'), iterations: 1 },
    await webcrypto.subtle.importKey('raw', Buffer.from('password'), 'PBKDF2', false, ['deriveBits']),
    128,
  );
  assert.deepEqual(out.aes, ['AES-GCM', 128, Buffer.from(node).toString('hex')]);
  assert.match(out.exportBase, /^InvalidAccessError/);
  assert.match(out.extractableBase, /^SyntaxError/);
  assert.equal(out.tooMany, 'NotSupportedError: PBKDF2 iteration counts above 100000 are not supported (requested 1000000000)');
  assert.match(out.tooLong, /^NotSupportedError: PBKDF2 output above 4 hash lengths/);
});

test('HKDF: RFC 5869 test cases 1 and 3 (SHA-256)', async () => {
  const out = await inWorker(`
    const ikm = await crypto.subtle.importKey('raw', unhex('0b'.repeat(22)), 'HKDF', false, ['deriveBits']);
    return [
      hex(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: unhex('000102030405060708090a0b0c'), info: unhex('f0f1f2f3f4f5f6f7f8f9') }, ikm, 42 * 8)),
      hex(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new Uint8Array(0) }, ikm, 42 * 8)),
      await fails(() => crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: new Uint8Array(0) }, ikm, 256 * 32 * 8)),
    ];`);
  assert.deepEqual(out.slice(0, 2), [
    '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
  ]);
  assert.match(out[2], /^OperationError/);
});

test('X25519: RFC 7748 section 6.1 shared secret, both ways; ECDH P-256 agrees with Node', async () => {
  const out = await inWorker(`
    const pk = (seed) => unhex('302e020100300506032b656e04220420' + seed);
    const alice = await crypto.subtle.importKey('pkcs8', pk('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'), 'X25519', false, ['deriveBits']);
    const bob = await crypto.subtle.importKey('pkcs8', pk('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'), 'X25519', false, ['deriveBits']);
    const alicePub = await crypto.subtle.importKey('raw', unhex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a'), 'X25519', true, []);
    const bobPub = await crypto.subtle.importKey('raw', unhex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f'), 'X25519', true, []);
    const a = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
    const b = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']);
    return {
      ab: hex(await crypto.subtle.deriveBits({ name: 'X25519', public: bobPub }, alice, 256)),
      ba: hex(await crypto.subtle.deriveBits({ name: 'X25519', public: alicePub }, bob, 256)),
      rawPub: hex(await crypto.subtle.exportKey('raw', alicePub)),
      ecdh: hex(await crypto.subtle.deriveBits({ name: 'ECDH', public: b.publicKey }, a.privateKey, 256)),
      ecdhBack: hex(await crypto.subtle.deriveBits({ name: 'ECDH', public: a.publicKey }, b.privateKey, 256)),
      aPkcs8: hex(await crypto.subtle.exportKey('pkcs8', a.privateKey)),
      bJwk: await crypto.subtle.exportKey('jwk', b.publicKey),
      fakePeer: await fails(() => crypto.subtle.deriveBits({ name: 'ECDH', public: { type: 'public', algorithm: { name: 'ECDH', namedCurve: 'P-256' } } }, a.privateKey, 256)),
    };`);
  assert.equal(out.ab, '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742');
  assert.equal(out.ba, out.ab);
  assert.equal(out.rawPub, '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(out.ecdh, out.ecdhBack);
  const priv = await webcrypto.subtle.importKey('pkcs8', Buffer.from(out.aPkcs8, 'hex'), { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  const pub = await webcrypto.subtle.importKey('jwk', out.bJwk, { name: 'ECDH', namedCurve: 'P-256' }, false, []);
  assert.equal(Buffer.from(await webcrypto.subtle.deriveBits({ name: 'ECDH', public: pub }, priv, 256)).toString('hex'), out.ecdh);
  assert.match(out.fakePeer, /^TypeError: algorithm.public must be a CryptoKey/);
});

test('AES-CBC, AES-CTR (NIST SP 800-38A F.2.1, F.5.1) and AES-KW (RFC 3394 4.1, 4.6): vectors, round trips, wrap/unwrap', async () => {
  const out = await inWorker(`
    const key = (alg, use) => crypto.subtle.importKey('raw', unhex('2b7e151628aed2a6abf7158809cf4f3c'), alg, true, use);
    const pt = unhex('6bc1bee22e409f96e93d7e117393172a');
    const cbcKey = await key('AES-CBC', ['encrypt', 'decrypt']);
    const cbc = await crypto.subtle.encrypt({ name: 'AES-CBC', iv: unhex('000102030405060708090a0b0c0d0e0f') }, cbcKey, pt);
    const ctrKey = await key({ name: 'AES-CTR' }, ['encrypt', 'decrypt']);
    const ctr = await crypto.subtle.encrypt({ name: 'AES-CTR', counter: unhex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'), length: 64 }, ctrKey, pt);
    const kek = await crypto.subtle.importKey('raw', unhex('000102030405060708090a0b0c0d0e0f'), 'AES-KW', false, ['wrapKey', 'unwrapKey']);
    const data = await crypto.subtle.importKey('raw', unhex('00112233445566778899aabbccddeeff'), 'AES-GCM', true, ['encrypt']);
    const wrapped = await crypto.subtle.wrapKey('raw', data, kek, 'AES-KW');
    const kek256 = await crypto.subtle.importKey('raw', unhex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'), 'AES-KW', false, ['wrapKey']);
    const data256 = await crypto.subtle.importKey('raw', unhex('00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f'), 'AES-CBC', true, ['encrypt']);
    const unwrapped = await crypto.subtle.unwrapKey('raw', wrapped, kek, 'AES-KW', 'AES-GCM', false, ['encrypt', 'decrypt']);
    const hmac = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
    const cbcWrap = await key('AES-CBC', ['wrapKey', 'unwrapKey']);
    const wrappedJwk = await crypto.subtle.wrapKey('jwk', hmac, cbcWrap, { name: 'AES-CBC', iv: new Uint8Array(16) });
    const hmacBack = await crypto.subtle.unwrapKey('jwk', wrappedJwk, cbcWrap, { name: 'AES-CBC', iv: new Uint8Array(16) }, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']);
    return {
      cbc: hex(cbc).slice(0, 32), cbcLength: cbc.byteLength,
      cbcBack: hex(await crypto.subtle.decrypt({ name: 'AES-CBC', iv: unhex('000102030405060708090a0b0c0d0e0f') }, cbcKey, cbc)),
      ctr: hex(ctr),
      ctrBack: hex(await crypto.subtle.decrypt({ name: 'AES-CTR', counter: unhex('f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'), length: 64 }, ctrKey, ctr)),
      kw: hex(wrapped),
      kw256: hex(await crypto.subtle.wrapKey('raw', data256, kek256, 'AES-KW')),
      unwrapped: [unwrapped.type, unwrapped.extractable, unwrapped.algorithm.name, [...unwrapped.usages].sort().join()],
      unwrappedExport: await fails(() => crypto.subtle.exportKey('raw', unwrapped)),
      tampered: await fails(() => crypto.subtle.unwrapKey('raw', unhex('00'.repeat(24)), kek, 'AES-KW', 'AES-GCM', true, ['encrypt'])),
      jwkRoundTrip: hex(await crypto.subtle.exportKey('raw', hmacBack)) === hex(await crypto.subtle.exportKey('raw', hmac)),
      wrapNonExtractable: await fails(() => crypto.subtle.wrapKey('raw', unwrapped, kek, 'AES-KW')),
      badIv: await fails(() => crypto.subtle.encrypt({ name: 'AES-CBC', iv: new Uint8Array(3) }, cbcKey, pt)),
      noIv: await fails(() => crypto.subtle.encrypt({ name: 'AES-CBC' }, cbcKey, pt)),
    };`);
  assert.equal(out.cbc, '7649abac8119b246cee98e9b12e9197d');
  assert.equal(out.cbcLength, 32); // one block of PKCS#7 padding
  assert.equal(out.cbcBack, '6bc1bee22e409f96e93d7e117393172a');
  assert.equal(out.ctr, '874d6191b620e3261bef6864990db6ce');
  assert.equal(out.ctrBack, '6bc1bee22e409f96e93d7e117393172a');
  assert.equal(out.kw, '1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5');
  assert.equal(out.kw256, '28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21');
  assert.deepEqual(out.unwrapped, ['secret', false, 'AES-GCM', 'decrypt,encrypt']);
  assert.match(out.unwrappedExport, /^InvalidAccessError/);
  assert.match(out.tampered, /^OperationError/);
  assert.equal(out.jwkRoundTrip, true);
  assert.match(out.wrapNonExtractable, /^InvalidAccessError/);
  assert.match(out.badIv, /^OperationError/);
  assert.match(out.noIv, /^TypeError/);
});

// RFC 7515 appendix A.2: an RS256 JWS and the public JWK that verifies it.
const RFC7515_JWS =
  'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw';
const RFC7515_N =
  'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ';
/** How an OAuth library (jose's jwtVerify, in essence) checks an RS256 token against a JWKS entry. */
export const VERIFY_RS256 = `
  const verifyJwt = async (token, jwk) => {
    const [h, p, s] = token.split('.');
    const key = await crypto.subtle.importKey('jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
    return crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, b64u(s), enc.encode(h + '.' + p));
  };`;

test("RSASSA-PKCS1-v1_5: the RFC 7515 A.2 RS256 token verifies with its public JWK; signatures match Node's", async () => {
  const out = await inWorker(
    `${VERIFY_RS256}
    const jwk = { kty: 'RSA', n: env.N, e: 'AQAB', alg: 'RS256', use: 'sig', kid: 'ignored' };
    const [fh, fp, fs] = env.JWS.split('.');
    const forged = fh + '.' + fp + '.' + (fs[0] === 'c' ? 'd' : 'c') + fs.slice(1);
    const { publicKey, privateKey } = await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign', 'verify']);
    const data = enc.encode('signed in the isolate');
    const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, data);
    const pub = await crypto.subtle.importKey('jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, true, ['verify']);
    return {
      ok: await verifyJwt(env.JWS, jwk),
      forged: await verifyJwt(forged, jwk),
      otherPayload: await verifyJwt(env.JWS.replace('.eyJ', '.eyK'), jwk),
      algorithm: pub.algorithm.name + ' ' + pub.algorithm.modulusLength + ' ' + pub.algorithm.hash.name + ' ' + hex(pub.algorithm.publicExponent),
      tag: Object.prototype.toString.call(pub),
      spki: hex(await crypto.subtle.exportKey('spki', publicKey)),
      pkcs8: hex(await crypto.subtle.exportKey('pkcs8', privateKey)),
      jwkOut: await crypto.subtle.exportKey('jwk', pub),
      sig: hex(sig), data: hex(data),
      signWithPublic: await fails(() => crypto.subtle.sign('RSASSA-PKCS1-v1_5', publicKey, data)),
      bigGenerate: await fails(() => crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 8192, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign'])),
      oddExponent: await fails(() => crypto.subtle.generateKey({ name: 'RSA-PSS', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 0, 1]), hash: 'SHA-256' }, true, ['sign'])),
    };`,
    { N: RFC7515_N, JWS: RFC7515_JWS },
  );
  assert.equal(out.ok, true);
  assert.equal(out.forged, false);
  assert.equal(out.otherPayload, false);
  assert.equal(out.algorithm, 'RSASSA-PKCS1-v1_5 2048 SHA-256 010001');
  assert.equal(out.tag, '[object CryptoKey]');
  assert.deepEqual(
    [out.jwkOut.kty, out.jwkOut.n, out.jwkOut.e, out.jwkOut.alg, out.jwkOut.ext, out.jwkOut.key_ops],
    ['RSA', RFC7515_N, 'AQAB', 'RS256', true, ['verify']],
  );
  // PKCS#1 v1.5 signatures are deterministic: Node signs the same bytes with the exported key.
  const nodeKey = await webcrypto.subtle.importKey('pkcs8', Buffer.from(out.pkcs8, 'hex'), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  assert.equal(Buffer.from(await webcrypto.subtle.sign('RSASSA-PKCS1-v1_5', nodeKey, Buffer.from(out.data, 'hex'))).toString('hex'), out.sig);
  assert.match(out.signWithPublic, /^InvalidAccessError/);
  assert.match(out.bigGenerate, /^NotSupportedError: RSA key generation is limited to 4096-bit moduli/);
  assert.match(out.oddExponent, /^OperationError: RSA publicExponent must be 3 or 65537/);
});

test('RSA-PSS and RSA-OAEP: Node signs and encrypts to keys the isolate made, and the isolate verifies and decrypts', async () => {
  const pss = await webcrypto.subtle.generateKey({ name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, [
    'sign',
    'verify',
  ]);
  const msg = Buffer.from('from the host');
  const pssSig = Buffer.from(await webcrypto.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, pss.privateKey, msg)).toString('hex');
  const pssSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', pss.publicKey)).toString('hex');
  const out = await inWorker(
    `
    const pub = await crypto.subtle.importKey('spki', unhex(env.SPKI), { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['verify']);
    const oaep = await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']);
    const ct = await crypto.subtle.encrypt({ name: 'RSA-OAEP', label: enc.encode('l') }, oaep.publicKey, enc.encode('round trip'));
    const aes = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt']);
    const wrapped = await crypto.subtle.wrapKey('raw', aes, oaep.publicKey, { name: 'RSA-OAEP' });
    const back = await crypto.subtle.unwrapKey('raw', wrapped, oaep.privateKey, { name: 'RSA-OAEP' }, 'AES-GCM', true, ['encrypt']);
    return {
      pss: await crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, pub, unhex(env.SIG), enc.encode('from the host')),
      pssWrongSalt: await crypto.subtle.verify({ name: 'RSA-PSS', saltLength: 20 }, pub, unhex(env.SIG), enc.encode('from the host')),
      oaep: new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'RSA-OAEP', label: enc.encode('l') }, oaep.privateKey, ct)),
      oaepWrongLabel: await fails(() => crypto.subtle.decrypt({ name: 'RSA-OAEP', label: enc.encode('m') }, oaep.privateKey, ct)),
      unwrapped: hex(await crypto.subtle.exportKey('raw', back)) === hex(await crypto.subtle.exportKey('raw', aes)),
      oaepPkcs8: hex(await crypto.subtle.exportKey('pkcs8', oaep.privateKey)),
      ct: hex(ct),
    };`,
    { SPKI: pssSpki, SIG: pssSig },
  );
  assert.equal(out.pss, true);
  assert.equal(out.pssWrongSalt, false);
  assert.equal(out.oaep, 'round trip');
  assert.match(out.oaepWrongLabel, /^OperationError/);
  assert.equal(out.unwrapped, true);
  const priv = await webcrypto.subtle.importKey('pkcs8', Buffer.from(out.oaepPkcs8, 'hex'), { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt']);
  assert.equal(
    Buffer.from(await webcrypto.subtle.decrypt({ name: 'RSA-OAEP', label: Buffer.from('l') }, priv, Buffer.from(out.ct, 'hex'))).toString(),
    'round trip',
  );
});

test('HMAC JWK export carries alg; P-521 ECDSA; timingSafeEqual as Workers has it', async () => {
  const out = await inWorker(`
    const h = await crypto.subtle.importKey('raw', enc.encode('Jefe'), { name: 'HMAC', hash: 'SHA-512' }, true, ['sign']);
    const p521 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, false, ['sign', 'verify']);
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-512' }, p521.privateKey, enc.encode('x'));
    const t = crypto.subtle.timingSafeEqual;
    return {
      jwk: await crypto.subtle.exportKey('jwk', h),
      p521: [sig.byteLength, await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-512' }, p521.publicKey, sig, enc.encode('x'))],
      tse: [t(enc.encode('abc'), enc.encode('abc')), t(new Uint8Array([1, 2]).buffer, new Uint8Array([1, 3])), t(new Uint8Array(0), new Uint8Array(0))],
      tseLength: await fails(() => t(new Uint8Array(1), new Uint8Array(2))),
      tseType: await fails(() => t('abc', 'abc')),
    };`);
  assert.deepEqual(out.jwk, { kty: 'oct', k: 'SmVmZQ', alg: 'HS512', ext: true, key_ops: ['sign'] });
  assert.deepEqual(out.p521, [132, true]);
  assert.deepEqual(out.tse, [true, false, true]);
  assert.match(out.tseLength, /^TypeError/);
  assert.match(out.tseType, /^TypeError/);
});

test('hostile use: wrong usages, non-extractable export, forged and cloned keys, algorithms Workers lacks, oversized input', async () => {
  const out = await inWorker(`
    const k = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const forged = Object.create(CryptoKey.prototype);
    const lookalike = { type: 'secret', extractable: true, algorithm: k.algorithm, usages: ['sign'] };
    let cloned; try { cloned = structuredClone({ k }) } catch (e) { cloned = e.name + ': ' + e.message }
    const big = new Uint8Array(64 * 1024 * 1024 + 1);
    return {
      signWithVerifyKey: await fails(() => crypto.subtle.sign('HMAC', k, enc.encode('x'))),
      badUsage: await fails(() => crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, true, ['sign'])),
      export: await fails(() => crypto.subtle.exportKey('jwk', k)),
      exportPrivate: await fails(() => crypto.subtle.exportKey('pkcs8', pair.privateKey)),
      forged: await fails(() => crypto.subtle.sign('HMAC', forged, enc.encode('x'))),
      forgedGetter: await fails(() => forged.type),
      lookalike: await fails(() => crypto.subtle.exportKey('raw', lookalike)),
      cloned,
      digestStream: await (async () => {
        const d = new crypto.DigestStream('SHA-256');
        const w = d.getWriter();
        await w.write(enc.encode('a'));
        await w.write('bc');
        await w.close();
        const m = new crypto.DigestStream({ name: 'md5' });
        await new Response('abc').body.pipeTo(m);
        return [hex(await d.digest), hex(await m.digest), d instanceof WritableStream, await fails(() => new crypto.DigestStream('SHA-3'))];
      })(),
      construct: await fails(() => new CryptoKey()),
      argon2: await fails(() => crypto.subtle.importKey('raw', enc.encode('p'), 'Argon2id', false, ['deriveBits'])),
      chacha: await fails(() => crypto.subtle.generateKey({ name: 'ChaCha20-Poly1305' }, true, ['encrypt'])),
      sha3: await fails(() => crypto.subtle.digest('SHA3-256', enc.encode('x'))),
      oversized: await fails(() => crypto.subtle.digest('SHA-256', big)),
      stillWorks: hex(await crypto.subtle.digest('SHA-256', enc.encode('abc'))).slice(0, 8),
      parallel: (await Promise.all(Array.from({ length: 20 }, (_, i) => crypto.subtle.digest('SHA-1', enc.encode(String(i)))))).length,
    };`);
  assert.match(out.signWithVerifyKey, /^InvalidAccessError/);
  assert.match(out.badUsage, /^SyntaxError/);
  assert.equal(out.export, 'InvalidAccessError: Attempt to export non-extractable HMAC key.');
  assert.equal(out.exportPrivate, 'InvalidAccessError: Attempt to export non-extractable Ed25519 key.');
  assert.match(out.forged, /^TypeError: key must be a CryptoKey made by this worker's crypto.subtle/);
  assert.match(out.forgedGetter, /^TypeError/);
  assert.match(out.lookalike, /^TypeError: key must be a CryptoKey/);
  // As workerd (measured): keys are not serializable.
  assert.equal(out.cloned, 'DataCloneError: Could not serialize object of type "CryptoKey". This type does not support serialization.');
  // FIPS 180-2 / RFC 1321 vectors for "abc", written in two chunks (one a string, as workerd accepts).
  assert.deepEqual(out.digestStream, [
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    '900150983cd24fb0d6963f7d28e17f72',
    true,
    'NotSupportedError: Unrecognized or unimplemented digest algorithm requested.',
  ]);
  assert.match(out.construct, /^TypeError: Illegal constructor/);
  assert.match(out.argon2, /^NotSupportedError: algorithm: unrecognized or unsupported algorithm Argon2id/);
  assert.match(out.chacha, /^NotSupportedError/);
  assert.match(out.sha3, /^NotSupportedError/);
  assert.match(out.oversized, /^QuotaExceededError: data is 67108865 bytes, over this runtime's limit of 67108864 bytes/);
  assert.equal(out.stillWorks, 'ba7816bf');
  assert.equal(out.parallel, 20);
});

test('crypto.subtle in global scope, as in Workers: a key imported with top-level await', async () => {
  const res = await rt.handle(
    worker(`const key = await crypto.subtle.importKey('raw', new TextEncoder().encode('Jefe'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      export default { async fetch() {
        const mac = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode('what do ya want for nothing?'));
        return new Response([...new Uint8Array(mac)].map((x) => x.toString(16).padStart(2, '0')).join('')) } }`),
    GET,
    { log: () => {} },
  );
  // RFC 4231 test case 2.
  assert.equal(text(res.body), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
});
