/**
 * The host half of node:crypto beyond WebCrypto called directly, as a compromised isolate could call it:
 * whatever arrives, the answer is a value (never a throw, never a host stack); the size caps refuse before
 * any work; it shares crypto.subtle's one job in flight; a long cipher job lets the event loop turn.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, generateKeyPairSync } from 'node:crypto';
import { createHostCrypto, MAX_CRYPTO_IN_FLIGHT } from './host-crypto.ts';
import { MAX_CHECK_PRIME_BITS, MAX_DH_BITS, MAX_PRIME_BITS, MAX_RSA_PRIVATE_BITS, MAX_SAFE_PRIME_BITS } from './host-node-crypto.ts';

const errorOf = (r: unknown) => (r as { error?: { name: string; message: string; code?: string } }).error;
const ab = (n: number, fill = 0) => new Uint8Array(n).fill(fill).buffer;

test('malformed node:crypto calls are answered with a TypeError value, not thrown', async () => {
  const host = createHostCrypto();
  for (const call of [
    { op: 'node.nope' },
    { op: 'node.cipher', name: 'aes-128-ecb' },
    { op: 'node.cipher', name: 'aes-128-ecb', key: 'k', iv: null, data: ab(16), decrypt: false, final: true, padding: true },
    { op: 'node.cipher', name: 'aes-128-ecb', key: ab(16), iv: null, data: ab(16), decrypt: false, final: true, padding: true, extra: 1 },
    { op: 'node.generatePrime', bits: 1.5, safe: false },
    { op: 'node.checkPrime', candidate: ab(MAX_CHECK_PRIME_BITS), checks: 0 },
    { op: 'node.checkPrime', candidate: ab(8), checks: 1_000_000 },
    { op: 'node.dhSecret', privateKey: ab(100_000), publicKey: ab(10) },
    { op: 'node.rsa', fn: 'eval', key: ab(10), padding: 1, data: ab(1) },
    { op: 'node.x509', der: ab(1024 * 1024) },
  ]) {
    const e = errorOf(await host(call));
    assert.equal(e?.name, 'TypeError', call.op);
    assert.doesNotMatch(e!.message, /\/work\/|node:internal|at /);
  }
});

test('the slow parameters are refused before any work: prime sizes, safe primes, prime tests, DH primes, unknown ciphers and curves', async () => {
  const host = createHostCrypto();
  const cases: [unknown, RegExp][] = [
    [{ op: 'node.generatePrime', bits: MAX_PRIME_BITS + 1, safe: false }, /exceeds this runtime's maximum \(2048 bits\)/],
    [{ op: 'node.generatePrime', bits: 2 ** 30, safe: false }, /exceeds this runtime's maximum/],
    [{ op: 'node.generatePrime', bits: MAX_SAFE_PRIME_BITS + 1, safe: true }, /512 bits for a safe prime/],
    [{ op: 'node.checkPrime', candidate: ab(MAX_CHECK_PRIME_BITS / 8 + 1, 0xff), checks: 0 }, /checkPrime candidate exceeds maximum size/],
    [{ op: 'node.dhGenerate', prime: ab(MAX_DH_BITS / 8 + 1, 0xff), generator: 2 }, /key is too large/],
    [{ op: 'node.cipher', name: 'rc4', key: ab(16), iv: null, data: ab(16), decrypt: false, final: true, padding: true }, /Unknown or unsupported cipher: rc4/],
    [{ op: 'node.ecdh', curve: 'secp256k1', format: 'uncompressed' }, /Invalid curve/],
  ];
  for (const [call, message] of cases) {
    const e = errorOf(await host(call));
    assert.match(e?.message ?? 'answered', message);
    assert.ok(e?.code, 'with a Node error code');
  }
});

test('node:crypto calls share the one job in flight with crypto.subtle', async () => {
  const host = createHostCrypto();
  const prime = { op: 'node.generatePrime', bits: 256, safe: false };
  const results = await Promise.all([host(prime), host(prime), host({ op: 'digest', algorithm: { name: 'SHA-256' }, data: ab(1) })]);
  assert.equal(results.filter((r) => errorOf(r)?.message === `more than ${MAX_CRYPTO_IN_FLIGHT} crypto operations at once`).length, 2);
  assert.equal(errorOf(await host(prime)), undefined, 'free again once answered');
});

test('a long Triple DES job is cut into slices: the event loop turns meanwhile, and the result is one cipher run', async () => {
  const host = createHostCrypto();
  const data = new Uint8Array(2 * 1024 * 1024).map((_, i) => i);
  let turns = 0;
  let stop = false;
  const spin = () => {
    if (stop) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const key = new Uint8Array(24).fill(3);
  const iv = new Uint8Array(8).fill(4);
  const r = (await host({
    op: 'node.cipher',
    name: 'des-ede3-cbc',
    key: key.slice().buffer,
    iv: iv.slice().buffer,
    data: data.slice().buffer,
    decrypt: false,
    final: true,
    padding: true,
  })) as {
    bytes: ArrayBuffer;
  };
  stop = true;
  const c = createCipheriv('des-ede3-cbc', key, iv);
  assert.deepEqual(Buffer.from(r.bytes), Buffer.concat([c.update(data), c.final()]));
  assert.ok(turns >= 4, `the event loop turned between slices (${turns})`);
});

test('RSA outside WebCrypto takes only RSA keys, private ones up to 4096 bits; X.509 garbage is an error value', async () => {
  const host = createHostCrypto();
  const big = generateKeyPairSync('rsa', { modulusLength: MAX_RSA_PRIVATE_BITS + 1024 });
  const bigDer = big.privateKey.export({ format: 'der', type: 'pkcs8' });
  const bigPub = big.publicKey.export({ format: 'der', type: 'spki' });
  const slice = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;
  const refused = errorOf(await host({ op: 'node.rsa', fn: 'privateEncrypt', key: slice(bigDer), padding: 1, data: ab(4) }));
  assert.match(refused?.message ?? '', /RSA private keys above 4096 bits are not supported for privateEncrypt/);
  const pub = (await host({ op: 'node.rsa', fn: 'publicEncrypt', key: slice(bigPub), padding: 1, data: ab(4) })) as { bytes: ArrayBuffer };
  assert.equal(pub.bytes.byteLength, 640, 'public-key operations stay cheap at the WebCrypto size limit');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const der = ec.privateKey.export({ format: 'der', type: 'pkcs8' });
  const e = errorOf(
    await host({ op: 'node.rsa', fn: 'privateEncrypt', key: der.buffer.slice(der.byteOffset, der.byteOffset + der.length), padding: 1, data: ab(4) }),
  );
  assert.match(e?.message ?? '', /RSA keys are required/);
  const x = errorOf(await host({ op: 'node.x509', der: ab(64, 0x30) }));
  assert.ok(x, 'refused');
  assert.doesNotMatch(x.message, /\/work\/|node:internal|at /);
});
