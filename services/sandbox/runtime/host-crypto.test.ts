/**
 * The host half of crypto.subtle called directly, as a compromised isolate could call it: whatever
 * arrives, the answer is an error value (never a throw, never a host stack), and the limits hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { webcrypto } from 'node:crypto';
import { createHostCrypto, MAX_CRYPTO_IN_FLIGHT } from './host-crypto.ts';
import { MAX_CRYPTO_DATA } from './bootstrap/subtle-wire.ts';

const errorOf = (r: unknown) => (r as { error?: { name: string; message: string } }).error;

test('malformed calls are answered with a TypeError value, not thrown', async () => {
  const host = createHostCrypto();
  const nested: Record<string, unknown> = {};
  let at = nested;
  for (let i = 0; i < 10_000; i++) at = (at.hash = {}) as Record<string, unknown>;
  for (const call of [
    undefined,
    null,
    'digest',
    { op: 'digest' },
    { op: 'eval', algorithm: { name: 'SHA-256' } },
    { op: 'digest', algorithm: { name: 'SHA-256' }, data: 'not bytes' },
    { op: 'digest', algorithm: { name: 'SHA-256' }, data: new ArrayBuffer(MAX_CRYPTO_DATA + 1) },
    { op: 'digest', algorithm: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`m${i}`, 1])), data: new ArrayBuffer(1) },
    { op: 'digest', algorithm: { name: 'SHA-256', ...nested }, data: new ArrayBuffer(1) },
    {
      op: 'sign',
      algorithm: { name: 'HMAC' },
      key: { type: 'secret', algorithm: { name: 'HMAC', hash: { name: 'SHA-256' } }, extractable: false, usages: ['sign'], data: new ArrayBuffer(100_000) },
      data: new ArrayBuffer(1),
    },
    { op: 'importKey', format: 'jwk', keyData: { kty: 'RSA', oth: [{ r: 'x' }] }, algorithm: { name: 'RSA-OAEP', hash: 'SHA-256' }, usages: ['encrypt'] },
  ]) {
    const r = await host(call);
    assert.equal(errorOf(r)?.name, 'TypeError', String((call as { op?: unknown } | null | undefined)?.op ?? call));
    assert.doesNotMatch(errorOf(r)!.message, /\/work\/|node:internal|at /);
  }
});

test('a key the isolate forged is only ever its own bytes: garbage is refused, other algorithms are refused', async () => {
  const host = createHostCrypto();
  const garbage = {
    type: 'private',
    algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
    extractable: true,
    usages: ['sign'],
    data: new Uint8Array(64).fill(7).buffer,
  };
  assert.equal(errorOf(await host({ op: 'sign', algorithm: { name: 'ECDSA', hash: 'SHA-256' }, key: garbage, data: new ArrayBuffer(1) }))?.name, 'DataError');
  const mldsa = { ...garbage, algorithm: { name: 'ML-DSA-65' } };
  assert.equal(errorOf(await host({ op: 'sign', algorithm: { name: 'ML-DSA-65' }, key: mldsa, data: new ArrayBuffer(1) }))?.name, 'NotSupportedError');
  // A real key whose attributes lie: Node checks the usage against what the isolate claims, and the claim is only about its own key.
  const { privateKey } = (await webcrypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as unknown as webcrypto.CryptoKeyPair;
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', privateKey);
  const asVerify = { type: 'private', algorithm: { name: 'Ed25519' }, extractable: false, usages: ['verify'], data: pkcs8 };
  assert.equal(errorOf(await host({ op: 'sign', algorithm: { name: 'Ed25519' }, key: asVerify, data: new ArrayBuffer(1) }))?.name, 'SyntaxError');
  const nonExtractable = { ...asVerify, usages: ['sign'] };
  assert.equal(errorOf(await host({ op: 'exportKey', format: 'pkcs8', key: nonExtractable }))?.name, 'InvalidAccessError');
});

test('expensive parameters are refused before any work: PBKDF2 iterations and length, RSA sizes and exponents, big imported RSA keys', async () => {
  const host = createHostCrypto();
  const pbkdf2Key = { type: 'secret', algorithm: { name: 'PBKDF2' }, extractable: false, usages: ['deriveBits'], data: new ArrayBuffer(8) };
  const derive = (iterations: number, length: number) =>
    host({ op: 'deriveBits', algorithm: { name: 'PBKDF2', hash: 'SHA-256', salt: new ArrayBuffer(8), iterations }, key: pbkdf2Key, length });
  assert.match(errorOf(await derive(100_001, 256))!.message, /iteration counts above 100000/);
  assert.match(errorOf(await derive(100_000, 256 * 5))!.message, /PBKDF2 output above 4 hash lengths/);
  assert.equal(((await derive(1000, 256 * 4)) as { bytes: ArrayBuffer }).bytes.byteLength, 128);
  const deriveKey = await host({
    op: 'deriveKey',
    algorithm: { name: 'PBKDF2', hash: 'SHA-1', salt: new ArrayBuffer(8), iterations: 100_000 },
    key: pbkdf2Key,
    keyAlgorithm: { name: 'HMAC', hash: 'SHA-256', length: 1_000_000 },
    usages: ['sign'],
  });
  assert.match(errorOf(deriveKey)!.message, /PBKDF2 output above/);
  assert.match(
    errorOf(await host({ op: 'generateKey', algorithm: { name: 'HMAC', hash: 'SHA-256', length: 1 << 24 }, usages: ['sign'] }))!.message,
    /HMAC keys are limited to 131072 bits/,
  );
  const rsa = (modulusLength: number, e: number[]) =>
    host({
      op: 'generateKey',
      algorithm: { name: 'RSA-OAEP', hash: 'SHA-256', modulusLength, publicExponent: new Uint8Array(e).buffer },
      usages: ['encrypt', 'decrypt'],
    });
  assert.match(errorOf(await rsa(16384, [1, 0, 1]))!.message, /limited to 4096-bit/);
  assert.match(errorOf(await rsa(2048, [0xff, 0xff, 0xff, 0xff]))!.message, /3 or 65537/);
  // An 8200-bit public key (its modulus need not be a product of primes for a public key to import).
  const publicKey = await webcrypto.subtle.importKey(
    'jwk',
    { kty: 'RSA', n: Buffer.alloc(1025, 0xff).toString('base64url'), e: 'AQAB' },
    { name: 'RSA-PSS', hash: 'SHA-256' },
    true,
    ['verify'],
  );
  const spki = await webcrypto.subtle.exportKey('spki', publicKey);
  assert.match(
    errorOf(await host({ op: 'importKey', format: 'spki', keyData: spki, algorithm: { name: 'RSA-PSS', hash: 'SHA-256' }, usages: ['verify'] }))!.message,
    /above 8192 bits/,
  );
});

test(`at most ${MAX_CRYPTO_IN_FLIGHT} jobs per isolate at once; another isolate's host is not affected`, async () => {
  const host = createHostCrypto();
  const other = createHostCrypto();
  const job = () => host({ op: 'digest', algorithm: { name: 'SHA-256' }, data: new ArrayBuffer(1024) });
  const results = await Promise.all(Array.from({ length: MAX_CRYPTO_IN_FLIGHT + 3 }, job));
  assert.equal(results.filter((r) => errorOf(r)?.message === `more than ${MAX_CRYPTO_IN_FLIGHT} crypto operations at once`).length, 3);
  assert.equal(errorOf(await other({ op: 'digest', algorithm: { name: 'SHA-256' }, data: new ArrayBuffer(1) })), undefined);
  assert.equal(errorOf(await job()), undefined, 'slots are given back');
});
