/**
 * Compatibility APIs through a real mesh (issue 13). nodejs_compat: a tenant using node:* reaches nothing
 * of the host — no real file system, child processes or sockets, `process.env` is its own vars and nothing
 * of the sandbox's environment — and its AsyncLocalStorage context cannot leak into a later request, not
 * even from a run cut off by the CPU limit inside `als.run` (whose own restore never ran). Bombs: an
 * HTMLRewriter whose output grows without bound and a TextDecoder fed more than the worker can hold stop
 * at the worker's own memory limit, in its own isolate. node:crypto's synchronous operations run on the
 * host under the same caps as crypto.subtle (RSA key size, scrypt memory) and a loop of them ends at the
 * worker's wall limit. A Brotli bomb, and Brotli's window at quality 11, stop at the worker's own memory limit
 * (its output in the isolate's heap, the codec's wasm memory charged to it). A bystander worker of another tenant is served
 * throughout and sees none of it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, createBrotliCompress } from 'node:zlib';
import { waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startAttackMesh, type AttackMesh } from '../helpers/attack-mesh.ts';

/** `mib` MiB of zeros, Brotli-compressed here (quality 1, for speed) to ~0.2 KB per MiB. */
function brotliBomb(mib: number): Promise<Buffer> {
  const s = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });
  const parts: Buffer[] = [];
  s.on('data', (c: Buffer) => parts.push(c));
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) s.write(zeros);
  return new Promise((res) => s.end(() => res(Buffer.concat(parts))));
}

/** Text that does not repeat: Brotli at quality 11 keeps its whole window of it. */
function prose(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = 7;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = 97 + (x >>> 27);
  }
  return b;
}

const WORKER = `
import fs from 'node:fs';
import child from 'node:child_process';
import net from 'node:net';
import { AsyncLocalStorage } from 'node:async_hooks';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
const als = new AsyncLocalStorage();
const attempt = (f) => { try { return 'allowed: ' + String(f()).slice(0, 80) } catch (e) { return 'refused: ' + e.message } };
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.endsWith('/spin')) return als.run('secret-of-request-1', () => { for (;;) {} });
    if (path.endsWith('/rewrite-bomb')) {
      const big = '<p>' + 'x'.repeat(1024) + '</p>';
      const out = new HTMLRewriter().on('p', { element(e) { e.append(big.repeat(64), { html: true }) } }).transform(new Response(big.repeat(4096)));
      return new Response(await out.arrayBuffer());
    }
    if (path.endsWith('/decode-bomb')) {
      const d = new TextDecoder('gb18030');
      const chunk = new Uint8Array(4 * 1024 * 1024).fill(0x41);
      const parts = [];
      for (let i = 0; i < 64; i++) parts.push(d.decode(chunk, { stream: true }) + i);
      return new Response(String(parts.length));
    }
    // Brotli runs in the isolate (wasm): its output and its wasm memory are the worker's own.
    if (path.endsWith('/brotli-bomb') || path.endsWith('/brotli-window')) {
      // Quality 11 (the default) takes ~35 MiB of wasm memory even for 2 bytes: more than a 64 MB worker lets wasm have.
      const q5 = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } };
      const ok = zlib.brotliDecompressSync(zlib.brotliCompressSync('ok', q5)).toString();
      const input = new Uint8Array(await req.arrayBuffer());
      try {
        const out = path.endsWith('/brotli-bomb') ? zlib.brotliDecompressSync(input) : zlib.brotliCompressSync(input);
        return new Response(String(out.length));
      } catch (e) {
        return Response.json({ ok, refused: e.message }, { status: 507 });
      }
    }
    if (path.endsWith('/crypto-spin')) {
      // Synchronous host crypto in a loop: the host's work is not the isolate's CPU, so the wall limit must end it.
      const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      for (;;) crypto.sign('sha256', new Uint8Array(1024), privateKey);
    }
    // scrypt runs in the isolate: past Node's default maxmem, its memory is the worker's own.
    if (path.endsWith('/scrypt-bomb')) return new Response(crypto.scryptSync('pw', 'salt', 64, { N: 2 ** 20, r: 8, maxmem: 2 ** 31 }));
    if (path.endsWith('/crypto-limits')) {
      return Response.json({
        rsa8192: attempt(() => crypto.generateKeyPairSync('rsa', { modulusLength: 8192 })),
        scrypt: attempt(() => crypto.scryptSync('pw', 'salt', 64, { N: 2 ** 20, r: 8 })),
        forged: attempt(() => new crypto.KeyObject('secret', new Uint8Array(16))),
        cipherKey: attempt(() => crypto.createDecipheriv('aes-128-cbc', { type: 'secret', export: () => new Uint8Array(16) }, new Uint8Array(16))),
      });
    }
    if (path.endsWith('/store')) return Response.json({ atEntry: als.getStore() ?? null, afterAwait: await Promise.resolve().then(() => als.getStore() ?? null) });
    return Response.json({
      fs: attempt(() => fs.readFileSync('/etc/passwd', 'utf8')),
      child: attempt(() => child.execSync('id')),
      // node:net rides on connect() (egress): loopback is refused there, asynchronously, as a socket error.
      net: await new Promise((res) => {
        const s = net.connect(22, '127.0.0.1');
        s.on('error', (e) => res('refused: ' + e.message));
        s.on('connect', () => res('allowed: connected'));
      }),
      dlopen: attempt(() => process.dlopen({}, '/tmp/x.node')),
      binding: attempt(() => process.binding('fs')),
      env: Object.keys(process.env).sort(),
      enterWith: attempt(() => als.enterWith('x')),
      cwd: process.cwd(),
    });
  },
};`;

describe('nodejs_compat cannot reach the host, nor leak context between requests', () => {
  let mesh: TestMesh;
  let atk: AttackMesh;
  before(async () => {
    atk = await startAttackMesh([
      {
        tenant: 'attacker',
        worker: WORKER,
        probe: '/nodeish/',
        config: {
          name: 'nodeish',
          compatibility_date: '2025-06-01',
          compatibility_flags: ['nodejs_compat'],
          vars: { MINE: 'only this' },
          route: '*/nodeish/*',
          limits: { cpu_ms: 3000 },
          cordon: { limits: { memory_mb: 64, wall_ms: 10_000 } },
        },
      },
    ]);
    mesh = atk.mesh;
  });
  after(() => atk?.stop());

  test('fs, child_process, net and process reach nothing of the host; process.env is the worker own vars', async () => {
    const res = await fetch(`${mesh.httpUrl}/nodeish/probe`);
    const body = await res.text();
    assert.equal(res.status, 200, body);
    const out = JSON.parse(body);
    for (const k of ['fs', 'child', 'dlopen', 'binding']) assert.match(out[k], /^refused: .*not implemented/, `${k}: ${out[k]}`);
    assert.match(out.net, /^refused: /, `net: ${out.net}`);
    assert.deepEqual(out.env, ['MINE']);
    assert.match(out.enterWith, /^refused: asyncLocalStorage.enterWith\(\) is not implemented/);
    assert.equal(out.cwd, '/');
    assert.doesNotMatch(body, /root:|uid=|\/work\//, 'nothing of the host in the answers');
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
  });

  test('an HTMLRewriter, a TextDecoder and a scrypt bomb stop at the worker memory limit; the worker and the bystander are served after', async () => {
    for (const bomb of ['rewrite-bomb', 'decode-bomb', 'scrypt-bomb']) {
      const res = await fetch(`${mesh.httpUrl}/nodeish/${bomb}`);
      const body = await res.text();
      assert.notEqual(res.status, 200, `${bomb}: ${body.slice(0, 200)}`);
      assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
      assert.equal((await fetch(`${mesh.httpUrl}/nodeish/store`)).status, 200, 'the worker itself answers again');
    }
    const log = (await mesh.cli(['logs', 'attacker/nodeish'])).stdout;
    assert.match(log, /memory limit of 64 MB|allocation failed|out of memory|unsafe aliasing/i);
  });

  test("a Brotli bomb and Brotli's window stop at the worker's memory limit, in its own isolate; the worker and the bystander are served after", async () => {
    const bomb = await brotliBomb(256);
    assert.ok(bomb.length < 64 * 1024, `the bomb is ${bomb.length} bytes`);
    for (const [path, body, refused] of [
      ['brotli-window', prose(2 << 20), /Brotli compression needs more memory than this worker's memory limit leaves it/],
      // The trapped codec's memory stays charged until collected: a fresh one may not fit at once, a refusal of the limit too.
      ['brotli-bomb', bomb, /allocation failed|does not fit in what is left of this worker's memory limit/i],
    ] as const) {
      const res = await fetch(`${mesh.httpUrl}/nodeish/${path}`, { method: 'POST', body });
      const text = await res.text();
      if (res.status === 503) {
        // Or the isolate itself went over its limit first (the last codec's memory not yet collected): the same stop.
        assert.match(text, /exceeded its memory limit of 64 MB/, `${path}: ${text.slice(0, 300)}`);
      } else {
        assert.equal(res.status, 507, `${path}: ${text.slice(0, 300)}`);
        const out = JSON.parse(text) as { ok: string; refused: string };
        assert.equal(out.ok, 'ok', 'Brotli works in the worker');
        assert.match(out.refused, refused);
      }
      assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
      // Its isolate was ended for the limit: a new one answers (on a loaded machine, not always the very next request).
      await waitFor('the worker itself to answer again', async () => (await fetch(`${mesh.httpUrl}/nodeish/store`)).status === 200 || undefined, 20_000);
    }
  });

  test('a run cut off inside als.run leaves no store for the next request; the bystander is served', async () => {
    const spin = await fetch(`${mesh.httpUrl}/nodeish/spin`);
    assert.notEqual(spin.status, 200);
    await spin.text();
    const bystander = await fetch(`${mesh.httpUrl}/bystander`);
    assert.equal(bystander.status, 200);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${mesh.httpUrl}/nodeish/store`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { atEntry: null, afterAwait: null });
    }
  });

  test('node:crypto: the host caps apply to the synchronous API, a loop of host signatures ends at the wall limit; the bystander is served', async () => {
    const res = await fetch(`${mesh.httpUrl}/nodeish/crypto-limits`);
    const out = JSON.parse(await res.text());
    assert.match(out.rsa8192, /^refused: RSA key generation is limited to 4096-bit moduli/);
    assert.match(out.scrypt, /^refused: Invalid scrypt params: memory limit exceeded/);
    assert.match(out.forged, /^refused: Illegal constructor/);
    assert.match(out.cipherKey, /^refused: /);
    const spin = await fetch(`${mesh.httpUrl}/nodeish/crypto-spin`);
    const spun = await spin.text();
    assert.notEqual(spin.status, 200, spun.slice(0, 200));
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
    assert.equal((await fetch(`${mesh.httpUrl}/nodeish/store`)).status, 200, 'the worker itself answers again');
    const log = (await mesh.cli(['logs', 'attacker/nodeish'])).stdout;
    assert.match(log, /wall|time limit/i);
  });
});
