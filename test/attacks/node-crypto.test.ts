/**
 * node:crypto beyond WebCrypto through a real mesh (issue 13): what runs on the host's node:crypto —
 * primes, Diffie-Hellman, ciphers, X.509 — is refused past its caps with Node's errors (prime sizes, safe
 * primes, prime tests, DH primes and prime lengths, cipher input over the per-call limit, RSA private keys
 * over 4096 bits outside WebCrypto, garbage certificates and points); a loop of the largest allowed host jobs ends at the worker's own wall limit; an
 * encrypted key whose PBKDF2 iteration count is 2^31−1 stops at the worker's own CPU limit (the key
 * derivation runs in its isolate). The sandbox process survives, and a bystander worker of another tenant
 * is served throughout, even while the host jobs run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { sandboxNodes, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startAttackMesh, type AttackMesh } from '../helpers/attack-mesh.ts';

/** DER for the key file below (short and long definite lengths). */
function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const len = body.length < 0x80 ? [body.length] : body.length < 0x100 ? [0x81, body.length] : [0x82, body.length >> 8, body.length & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}
const oid = (hex: string) => tlv(6, Buffer.from(hex, 'hex'));
/** A PKCS#8 EncryptedPrivateKeyInfo (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC) asking for 2^31−1 PBKDF2 iterations. */
const KDF_BOMB = `-----BEGIN ENCRYPTED PRIVATE KEY-----\n${tlv(
  0x30,
  tlv(
    0x30,
    oid('2a864886f70d01050d'),
    tlv(
      0x30,
      tlv(
        0x30,
        oid('2a864886f70d01050c'),
        tlv(0x30, tlv(4, Buffer.alloc(16, 1)), tlv(2, Buffer.from('7fffffff', 'hex')), tlv(0x30, oid('2a864886f70d0209'), Buffer.from([5, 0]))),
      ),
      tlv(0x30, oid('60864801650304012a'), tlv(4, Buffer.alloc(16, 2))),
    ),
  ),
  tlv(4, Buffer.alloc(48, 3)),
).toString('base64')}\n-----END ENCRYPTED PRIVATE KEY-----\n`;

/** An RSA key over the host's 4096-bit limit for private-key operations outside WebCrypto. */
const BIG_RSA = generateKeyPairSync('rsa', { modulusLength: 5120 }).privateKey.export({ format: 'pem', type: 'pkcs8' });

const WORKER = `
import crypto from 'node:crypto';
import { Buffer } from 'node:buffer';
const attempt = (f) => { try { f(); return 'allowed' } catch (e) { return (e.code ?? e.name) + ': ' + e.message } };
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.endsWith('/refused')) {
      const out = {
        primeBits: attempt(() => crypto.generatePrimeSync(100000)),
        primeMax: attempt(() => crypto.generatePrimeSync(2 ** 31 - 1)),
        safePrime: attempt(() => crypto.generatePrimeSync(4096, { safe: true })),
        checkPrime: attempt(() => crypto.checkPrimeSync(2n ** 30000n + 1n)),
        dhPrime: attempt(() => crypto.createDiffieHellman(Buffer.alloc(1300, 0xff))),
        dhLength: attempt(() => crypto.createDiffieHellman(20000)),
        cipherInput: attempt(() => crypto.createCipheriv('des-ede3-cbc', Buffer.alloc(24, 1), Buffer.alloc(8)).update(new Uint8Array(64 * 1024 * 1024 + 8))),
        aeadInput: attempt(() => { const c = crypto.createCipheriv('chacha20-poly1305', Buffer.alloc(32), Buffer.alloc(12)); c.update(new Uint8Array(64 * 1024 * 1024 + 1)); c.final(); }),
        certificate: attempt(() => new crypto.X509Certificate(Buffer.alloc(70 * 1024, 0x30))),
        point: attempt(() => { const e = crypto.createECDH('prime256v1'); e.setPrivateKey(Buffer.alloc(32, 1)); e.computeSecret(Buffer.alloc(65, 4)); }),
        curve: attempt(() => crypto.createECDH('secp256k1')),
        rsaPrivate: attempt(() => crypto.privateEncrypt(${JSON.stringify(BIG_RSA)}, Buffer.from('x'))),
      };
      const c = crypto.createCipheriv('chacha20-poly1305', Buffer.alloc(32, 1), Buffer.alloc(12, 2));
      out.afterwards = Buffer.concat([c.update(Buffer.from('still works')), c.final()]).length;
      return Response.json(out);
    }
    if (path.endsWith('/host-loop')) {
      // The largest host jobs allowed, forever: the host's work is not the isolate's CPU, so the wall limit must end it.
      const d = crypto.getDiffieHellman('modp18');
      d.generateKeys();
      for (;;) { crypto.generatePrimeSync(2048); d.computeSecret(d.getPublicKey()); }
    }
    if (path.endsWith('/kdf-bomb')) return new Response(String(crypto.createPrivateKey({ key: ${JSON.stringify(KDF_BOMB)}, passphrase: 'pw' }).type));
    return new Response('node crypto');
  },
};`;

describe('node:crypto beyond WebCrypto: host work bounded, a bystander served', () => {
  let mesh: TestMesh;
  let atk: AttackMesh;
  before(async () => {
    /** The worker under `name`, with a CPU limit of 3 s and the given wall limit. */
    const project = (tenant: string, name: string, wallMs: number) => ({
      tenant,
      worker: WORKER,
      probe: `/${name}/`,
      config: {
        name,
        compatibility_date: '2025-06-01',
        compatibility_flags: ['nodejs_compat'],
        route: `*/${name}/*`,
        limits: { cpu_ms: 3000 },
        cordon: { limits: { memory_mb: 512, wall_ms: wallMs } },
      },
    });
    atk = await startAttackMesh([
      project('attacker', 'nc', 6000),
      // The same worker with a wall limit far past its CPU limit: on a loaded machine 3,000 ms of the isolate's
      // CPU can take more than 6 s of wall time, and the PBKDF2 test is about the CPU limit ending the derivation.
      project('kdf-attacker', 'kdf', 60000),
    ]);
    mesh = atk.mesh;
  });
  after(() => atk?.stop());

  test("host jobs past their caps are refused with Node's errors; the worker goes on; the bystander is served", async () => {
    const res = await fetch(`${mesh.httpUrl}/nc/refused`);
    const body = await res.text();
    assert.equal(res.status, 200, body);
    const out = JSON.parse(body);
    assert.match(out.primeBits, /^ERR_OUT_OF_RANGE: generatePrime size exceeds this runtime's maximum \(2048 bits\)/);
    assert.match(out.primeMax, /^ERR_OUT_OF_RANGE: generatePrime size exceeds/);
    assert.match(out.safePrime, /^ERR_OUT_OF_RANGE: .*\(512 bits for a safe prime\)/);
    assert.match(out.checkPrime, /^ERR_OUT_OF_RANGE: checkPrime candidate exceeds maximum size/);
    assert.match(out.dhPrime, /DiffieHellman init failed: key is too large/);
    assert.match(out.dhLength, /^ERR_OUT_OF_RANGE: .*512 bits for a safe prime/);
    assert.match(out.cipherInput, /^TypeError: node:crypto: invalid data: more than 67108864 bytes/);
    assert.match(out.aeadInput, /^TypeError: node:crypto: invalid data: more than 67108864 bytes/);
    assert.match(out.certificate, /^ERR_INVALID_ARG_VALUE: The argument 'buffer' is not a valid certificate/);
    assert.match(out.point, /Public key is not valid for specified curve|Failed to set point/);
    assert.match(out.curve, /Invalid curve/);
    assert.match(out.rsaPrivate, /^ERR_OUT_OF_RANGE: RSA private keys above 4096 bits are not supported for privateEncrypt/);
    assert.equal(out.afterwards, 11);
    assert.doesNotMatch(body, /\/work\/|node_modules|node:internal/, 'no host paths reach the tenant');
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
  });

  test("a loop of the largest host jobs ends at the worker's wall limit; the bystander is served while it runs", async () => {
    const sandboxes = sandboxNodes(mesh);
    let done = false;
    const loop = fetch(`${mesh.httpUrl}/nc/host-loop`).then(async (r) => {
      done = true;
      return { status: r.status, text: await r.text() };
    });
    // While the loop holds the host's thread pool and its own isolate, another tenant's worker answers.
    let served = 0;
    for (let i = 0; i < 10 && !done; i++) {
      assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
      served++;
    }
    assert.ok(served > 0);
    const { status, text } = await loop;
    assert.notEqual(status, 200, text.slice(0, 200));
    assert.match(text, /wall time limit of 6000 ms/);
    assert.deepEqual(sandboxNodes(mesh), sandboxes, 'no sandbox process died or was replaced');
    await waitFor('the worker itself to answer again', async () => (await fetch(`${mesh.httpUrl}/nc/`)).status === 200 || undefined, 20_000);
  });

  test("an encrypted key asking for 2^31−1 PBKDF2 rounds stops at the worker's own CPU limit; the bystander is served after", async () => {
    const res = await fetch(`${mesh.httpUrl}/kdf/kdf-bomb`);
    const text = await res.text();
    assert.notEqual(res.status, 200, text.slice(0, 200));
    assert.match(text, /CPU time limit of 3000 ms/);
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
    await waitFor('the worker itself to answer again', async () => (await fetch(`${mesh.httpUrl}/kdf/`)).status === 200 || undefined, 20_000);
  });
});
