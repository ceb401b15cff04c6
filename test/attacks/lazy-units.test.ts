/**
 * The lazy units (services/sandbox/runtime/bootstrap/units.ts) through a real mesh: libraries of the
 * runtime an isolate compiles on first use, after tenant code has run. A tenant finds no way to the
 * host's `unit` callback, and one that sets the globals those libraries read as they load (`Buffer`,
 * `atob`, `btoa`, `HermesInternal`, `Deno`) before their first use does not steer them: decoding, URL
 * patterns, compression and digests give what they give in a clean isolate. A bystander on the same
 * sandbox gets the same answers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

/** Uses each unit once and answers with what it got; `/tamper` first sets the globals and looks for the host's callback. */
const WORKER = `
async function useUnits() {
  const ascii = new Uint8Array(1000).fill(0x61);
  const sjis = new TextDecoder('shift_jis').decode(new Uint8Array([...ascii, 0x82, 0xa0]));
  const pattern = new URLPattern({ pathname: '/books/:id' }).exec('https://x.test/books/12');
  const gz = new Response(new Blob(['lazy '.repeat(100)]).stream().pipeThrough(new CompressionStream('gzip')));
  const back = await new Response(gz.body.pipeThrough(new DecompressionStream('gzip'))).text();
  const digest = new crypto.DigestStream('SHA-256');
  const w = digest.getWriter(); await w.write(new TextEncoder().encode('abc')); await w.close();
  return {
    sjis: sjis.length + ':' + sjis.slice(-2),
    id: pattern.pathname.groups.id,
    gzip: back === 'lazy '.repeat(100),
    digest: [...new Uint8Array(await digest.digest)].slice(0, 4).join('.'),
  };
}
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.endsWith('/ready')) return new Response('ready');
    if (path.endsWith('/tamper')) {
      const host = Object.getOwnPropertyNames(globalThis).filter((n) => n.startsWith('__cordon'));
      const steered = [];
      const trap = (name) => () => { steered.push(name); throw new Error('tenant ' + name + ' used by the runtime'); };
      globalThis.Buffer = Object.assign(trap('Buffer'), { from: trap('Buffer.from'), TYPED_ARRAY_SUPPORT: undefined });
      globalThis.atob = trap('atob');
      globalThis.btoa = trap('btoa');
      globalThis.HermesInternal = {};
      globalThis.Deno = {};
      const used = await useUnits().catch((e) => ({ error: String(e) }));
      return Response.json({ host, steered, ...used });
    }
    return Response.json(await useUnits());
  },
};
`;

const CLEAN = { sjis: '1001:aあ', id: '12', gzip: true, digest: '186.120.22.191' };

describe('lazy units through the mesh', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-lazy-units-'));
  before(async () => {
    writeFileSync(join(dir, 'index.js'), WORKER);
    mesh = await startTestMesh();
    for (const name of ['tenant', 'bystander']) {
      const r = await mesh.cli(['deploy', join(dir, 'index.js'), '--name', name, '--route', `*/${name}/*`]);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(
      'both workers',
      async () =>
        ((await fetch(`${mesh.httpUrl}/tenant/ready`)).status === 200 && (await fetch(`${mesh.httpUrl}/bystander/ready`)).status === 200) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a tenant that sets the globals the units read as they load neither reaches the host callback nor steers them; a bystander is unharmed', async () => {
    const res = await fetch(`${mesh.httpUrl}/tenant/tamper`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { host: [], steered: [], ...CLEAN });
    const bystander = await fetch(`${mesh.httpUrl}/bystander/use`);
    assert.equal(bystander.status, 200);
    assert.deepEqual(await bystander.json(), CLEAN);
  });
});
