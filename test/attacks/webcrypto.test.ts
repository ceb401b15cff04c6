/**
 * crypto.subtle through a real mesh (issue 13, WebCrypto): an OAuth-style RS256 check works, and a
 * tenant that hands the host hostile crypto work — PBKDF2 with a billion iterations, a 16384-bit RSA
 * key, a digest over the size limit, forged keys, algorithms Workers lacks, dozens of jobs at once —
 * gets clear errors, its sandbox process survives, and a bystander worker is served meanwhile.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

// RFC 7515 appendix A.2: an RS256 JWS and the public JWK that verifies it.
const JWS =
  'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw';
const N =
  'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ';

const WORKER = `
const enc = new TextEncoder();
const b64u = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4)), (c) => c.charCodeAt(0));
const outcome = (p) => p.then(() => 'accepted', (e) => e.name + ': ' + e.message);
async function verifyJwt(token, jwk) {
  const [h, p, s] = token.split('.');
  const key = await crypto.subtle.importKey('jwk', jwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['verify']);
  return crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, b64u(s), enc.encode(h + '.' + p));
}
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    const jwk = { kty: 'RSA', n: ${JSON.stringify(N)}, e: 'AQAB', alg: 'RS256' };
    if (path.endsWith('/jwt')) {
      const token = ${JSON.stringify(JWS)};
      const claims = JSON.parse(new TextDecoder().decode(b64u(token.split('.')[1])));
      return Response.json({ valid: await verifyJwt(token, jwk), tampered: await verifyJwt(token.replace('.eyJ', '.eyK'), jwk), iss: claims.iss });
    }
    if (path.endsWith('/hostile')) {
      const base = await crypto.subtle.importKey('raw', enc.encode('pw'), 'PBKDF2', false, ['deriveBits']);
      const secret = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      const jobs = {
        pbkdf2: Promise.all(Array.from({ length: 20 }, () => outcome(crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-512', salt: enc.encode('s'), iterations: 1e9 }, base, 512)))),
        rsa: outcome(crypto.subtle.generateKey({ name: 'RSA-PSS', modulusLength: 16384, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['sign'])),
        digest: outcome(crypto.subtle.digest('SHA-256', new Uint8Array(64 * 1024 * 1024 + 1))),
        argon2: outcome(crypto.subtle.importKey('raw', enc.encode('pw'), 'Argon2id', false, ['deriveBits'])),
        exportSecret: outcome(crypto.subtle.exportKey('raw', secret)),
        forged: outcome(crypto.subtle.sign('HMAC', { type: 'secret', algorithm: secret.algorithm, usages: ['sign'], extractable: true }, enc.encode('x'))),
        many: Promise.all(Array.from({ length: 50 }, (_, i) => crypto.subtle.digest('SHA-256', enc.encode(String(i))))).then((r) => r.length),
      };
      const out = {};
      for (const [k, v] of Object.entries(jobs)) out[k] = await v;
      out.afterwards = await verifyJwt(${JSON.stringify(JWS)}, jwk);
      return Response.json(out);
    }
    return new Response('crypto worker');
  },
};
`;

describe('WebCrypto through the mesh', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-crypto-'));
  before(async () => {
    writeFileSync(join(dir, 'index.js'), WORKER);
    mesh = await startTestMesh();
    for (const args of [
      ['deploy', join(dir, 'index.js'), '--name', 'jwt', '--route', '*/jwt/*', '--memory-mb', '256'],
      ['deploy', 'examples/hello/index.ts', '--name', 'bystander', '--route', '*/bystander*'],
    ]) {
      const r = await mesh.cli(args);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(
      'both workers',
      async () => ((await fetch(`${mesh.httpUrl}/jwt/`)).status === 200 && (await fetch(`${mesh.httpUrl}/bystander`)).status === 200) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an RS256 token (RFC 7515 A.2) verifies against its public JWK, as OAuth libraries check it', async () => {
    const res = await fetch(`${mesh.httpUrl}/jwt/jwt`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { valid: true, tampered: false, iss: 'joe' });
  });

  test('hostile crypto work is refused with clear errors; the sandbox survives; a bystander is served meanwhile', async () => {
    const sandboxes = sandboxNodes(mesh);
    const hostile = fetch(`${mesh.httpUrl}/jwt/hostile`).then(async (r) => ({ status: r.status, body: await r.text() }));
    const bystander = await fetch(`${mesh.httpUrl}/bystander`);
    assert.equal(bystander.status, 200);
    const { status, body } = await hostile;
    assert.equal(status, 200, body);
    const out = JSON.parse(body);
    assert.deepEqual(new Set(out.pbkdf2), new Set(['NotSupportedError: PBKDF2 iteration counts above 100000 are not supported (requested 1000000000)']));
    assert.match(out.rsa, /^NotSupportedError: RSA key generation is limited to 4096-bit moduli \(requested 16384\)/);
    assert.match(out.digest, /^QuotaExceededError: data is 67108865 bytes, over this runtime's limit/);
    assert.match(out.argon2, /^NotSupportedError: .*Argon2id/);
    assert.equal(out.exportSecret, 'InvalidAccessError: Attempt to export non-extractable HMAC key.');
    assert.match(out.forged, /^TypeError: key must be a CryptoKey/);
    assert.equal(out.many, 50);
    assert.equal(out.afterwards, true);
    assert.doesNotMatch(body, /\/work\/|node_modules|node:internal/, 'no host paths reach the tenant');
    assert.deepEqual(sandboxNodes(mesh), sandboxes, 'no sandbox process died or was replaced');
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
  });
});
