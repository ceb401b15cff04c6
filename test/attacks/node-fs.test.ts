/**
 * node:fs through a real mesh (issue 13): the worker's file system is its isolate's memory, never the
 * host's. Paths with `..`, /proc, /etc/passwd, symlinks to host paths and relative escapes find nothing
 * of the host; /bundle refuses writes; what one request leaves in /tmp is gone for the next, and another
 * tenant's worker never sees it; a write past the worker's memory limit ends that worker's request at
 * its limit, and a bystander worker of another tenant is served throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sandboxNodes, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startAttackMesh, type AttackMesh } from '../helpers/attack-mesh.ts';

const WORKER = `
import fs from 'node:fs';
const attempt = (f) => { try { const v = f(); return 'allowed: ' + (typeof v === 'string' ? v.slice(0, 40) : String(v)) } catch (e) { return e.code + ': ' + e.message } };
export default {
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path.endsWith('/host')) {
      const out = {};
      for (const p of ['/etc/passwd', '/etc/hostname', '/proc/self/environ', '/proc/self/maps', '/tmp/../etc/passwd', '../../etc/passwd', '/bundle/../../etc/passwd', '/sys/kernel', '/root', '/home'])
        out[p] = attempt(() => fs.readFileSync(p, 'utf8'));
      out.readdirRoot = attempt(() => fs.readdirSync('/').join(','));
      out.readdirProc = attempt(() => fs.readdirSync('/proc'));
      fs.symlinkSync('/etc/passwd', '/tmp/a'); fs.symlinkSync('../../../../../proc/self/environ', '/tmp/b');
      out.linkAbs = attempt(() => fs.readFileSync('/tmp/a', 'utf8'));
      out.linkRel = attempt(() => fs.readFileSync('/tmp/b', 'utf8'));
      out.writeBundle = attempt(() => fs.writeFileSync('/bundle/index.js', 'x'));
      out.writeEtc = attempt(() => fs.writeFileSync('/etc/x', 'x'));
      out.rmBundle = attempt(() => fs.rmSync('/bundle', { recursive: true }));
      out.bundleIntact = fs.readdirSync('/bundle').length > 0;
      return Response.json(out);
    }
    if (path.endsWith('/leave')) { fs.writeFileSync('/tmp/secret', 'left by an earlier request'); return new Response(fs.readdirSync('/tmp').join(',')); }
    if (path.endsWith('/look')) return new Response(fs.readdirSync('/tmp').join(',') || 'empty');
    if (path.endsWith('/huge')) {
      const chunk = new Uint8Array(8 * 1024 * 1024);
      const fd = fs.openSync('/tmp/huge', 'w');
      let written = 0;
      try {
        for (let i = 0; i < 1000; i++) written += fs.writeSync(fd, chunk);
      } catch (e) {
        return new Response(e.name + ': ' + e.message + '; written ' + written, { status: 507 });
      }
      return new Response('wrote 8 GiB');
    }
    return new Response('node fs');
  },
};`;

const LOOKER = `import fs from 'node:fs';
export default { fetch: () => new Response(fs.readdirSync('/tmp').join(',') || 'empty') };`;

describe('node:fs: nothing of the host, /tmp per request, writes bounded by the memory limit, a bystander served', () => {
  let mesh: TestMesh;
  let atk: AttackMesh;
  before(async () => {
    atk = await startAttackMesh([
      {
        tenant: 'attacker',
        worker: WORKER,
        probe: '/nfs/',
        config: {
          name: 'nfs',
          compatibility_date: '2025-09-15',
          compatibility_flags: ['nodejs_compat'],
          route: '*/nfs/*',
          cordon: { limits: { memory_mb: 64, wall_ms: 20000 } },
        },
      },
      {
        tenant: 'other',
        worker: LOOKER,
        probe: '/looker',
        config: { name: 'looker', compatibility_date: '2025-09-15', compatibility_flags: ['nodejs_compat'], route: '*/looker*' },
      },
    ]);
    mesh = atk.mesh;
  });
  after(() => atk?.stop());

  test("no path, `..` or symlink reaches the host's files; /bundle is read-only", async () => {
    const res = await fetch(`${mesh.httpUrl}/nfs/host`);
    const body = await res.text();
    assert.equal(res.status, 200, body);
    const out = JSON.parse(body);
    for (const [k, v] of Object.entries(out)) {
      if (k === 'readdirRoot' || k === 'bundleIntact') continue;
      assert.match(String(v), /^(ENOENT|EPERM): /, `${k}: ${v}`);
    }
    assert.equal(out.readdirRoot, 'allowed: bundle,tmp,dev');
    assert.equal(out.bundleIntact, true);
    assert.doesNotMatch(body, /root:|PATH=|HOME=|\/work\/|node_modules/, 'nothing of the host');
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
  });

  test("what one request leaves in /tmp is gone for the next, and another tenant's worker never sees it", async () => {
    assert.equal(await (await fetch(`${mesh.httpUrl}/nfs/leave`)).text(), 'secret');
    assert.equal(await (await fetch(`${mesh.httpUrl}/nfs/look`)).text(), 'empty');
    assert.equal(await (await fetch(`${mesh.httpUrl}/looker`)).text(), 'empty');
  });

  test("an 8 GiB write into /tmp stops at the worker's memory limit; the bystander is served, the worker recovers", async () => {
    const sandboxes = sandboxNodes(mesh);
    const res = await fetch(`${mesh.httpUrl}/nfs/huge`);
    const text = await res.text();
    // Refused by the isolate's allocator (a RangeError the worker sees) or the isolate ended at its limit.
    assert.notEqual(res.status, 200, text.slice(0, 200));
    const m = /^RangeError: .*; written (\d+)$/.exec(text);
    if (m) assert.ok(Number(m[1]) <= 64 * 1024 * 1024, text);
    else assert.match(text, /memory limit/, text);
    assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200);
    assert.deepEqual(sandboxNodes(mesh), sandboxes, 'no sandbox process died or was replaced');
    await waitFor('the worker itself to answer again', async () => (await fetch(`${mesh.httpUrl}/nfs/`)).status === 200 || undefined, 20_000);
  });
});
