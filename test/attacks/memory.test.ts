/**
 * Issue 12, item 5: memory outside the limit. A 128 MB worker tries to hold 300 MB at a time through
 * each store V8 makes outside isolated-vm's allocator — a resizable ArrayBuffer, a WebAssembly.Memory
 * made big, one grown, a module's own memory grown from inside Wasm, a resizable buffer transferred
 * larger — again and again, keeping all it got. Each attempt fails in the worker; the sandbox process
 * stays small and is not restarted; a bystander in the same cordon keeps answering. And each sandbox
 * process sits in a cgroup with the kernel's memory ceiling: over it, the kernel kills that process
 * alone, the launcher restarts it, and the other cordon is unharmed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ceilingSupport, limitFile, memoryCgroupOf } from '../../lib/memory-ceiling.ts';
import { memoryModule } from '../../services/sandbox/runtime/testing/fixtures.ts';
import { sandboxNodes, startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';

const MiB = 1024 * 1024;
const rssOf = (pid: number) => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** Each bomb keeps what it got (globalThis.keep) and writes every byte of it, so that it is really held. */
const BOMB = `import mod from './m.wasm';
const MB = 1024 * 1024;
const keep = [];
const bombs = {
  resize() { const b = new ArrayBuffer(0, { maxByteLength: 1024 * MB }); b.resize(300 * MB); return b },
  initial() { return new WebAssembly.Memory({ initial: 4800 }).buffer },
  grow() { const m = new WebAssembly.Memory({ initial: 1 }); m.grow(4799); return m.buffer },
  module() { const i = new WebAssembly.Instance(mod); if (i.exports.grow(4799) < 0) throw new RangeError('memory.grow inside Wasm was refused'); return i.exports.mem.buffer },
  transfer() { return new ArrayBuffer(8, { maxByteLength: 1024 * MB }).transfer(300 * MB) },
};
export default {
  fetch(request) {
    const kind = new URL(request.url).pathname.split('/').pop();
    try {
      const b = bombs[kind]();
      new Uint8Array(b).fill(1);
      keep.push(b);
      return new Response('held ' + b.byteLength);
    } catch (e) {
      return new Response(e.name + ': ' + e.message, { status: 507 });
    }
  },
};`;

async function deploy(mesh: TestMesh, body: object): Promise<void> {
  const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const res = await fetch(`${mesh.adminUrl}/v1/workers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(res.status < 300, `deploy: ${res.status} ${await res.text()}`);
}

describe('memory outside the limit (issue 12, item 5)', () => {
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh();
    await deploy(mesh, {
      name: 'bomb',
      cordon: 'standard',
      mainModule: 'w.js',
      modules: [
        { name: 'w.js', type: 'esm', content: BOMB },
        { name: 'm.wasm', type: 'wasm', content: memoryModule(1).toString('base64') },
      ],
      routes: ['*/bomb/*'],
      limits: { memoryMb: 128, cpuMs: 10_000, wallMs: 30_000 },
    });
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--cordon', 'standard', '--route', '*/hello*']);
    await waitFor(
      'both workers',
      async () => ((await fetch(`${mesh.httpUrl}/bomb/none`)).status === 507 && (await fetch(`${mesh.httpUrl}/hello`)).status === 200) || undefined,
      30_000,
    );
  });
  after(async () => {
    await mesh?.stop();
  });

  test('each memory bomb fails in the worker, the sandbox process stays small and alive, the bystander answers', async () => {
    const pid = sandboxNodes(mesh).get('standard')!;
    assert.ok(pid, 'the standard sandbox runs');
    const before = rssOf(pid);
    for (let round = 0; round < 2; round++) {
      for (const kind of ['resize', 'initial', 'grow', 'module', 'transfer']) {
        const res = await fetch(`${mesh.httpUrl}/bomb/${kind}`);
        const body = await res.text();
        assert.equal(res.status, 507, `${kind}: the worker held it (${body})`);
        assert.match(body, /^RangeError: /, `${kind}: ${body}`);
        const hello = await fetch(`${mesh.httpUrl}/hello`);
        assert.equal(hello.status, 200, `the bystander answers after ${kind}`);
      }
    }
    assert.equal(sandboxNodes(mesh).get('standard'), pid, 'the sandbox process was not restarted');
    const grown = rssOf(pid) - before;
    assert.ok(grown < 384 * MiB, `the sandbox process grew by ${Math.round(grown / MiB)} MiB`);
  });
});

const support = ceilingSupport();
const noCeiling = support.kind === 'none' ? `no writable cgroup memory controller here: ${support.reason}` : undefined;
if (noCeiling && process.env.CORDON_REQUIRE_ALL === '1') {
  test('a cgroup memory controller is required (CORDON_REQUIRE_ALL=1)', () => assert.fail(noCeiling));
}

describe("the kernel's memory ceiling on each sandbox process", { skip: noCeiling }, () => {
  const CEILING_MB = 400;
  let mesh: TestMesh;
  before(async () => {
    mesh = await startTestMesh({ CORDON_SANDBOX_MEMORY_MAX_MB: String(CEILING_MB) });
    // Within its own limit of 1 GiB, this worker outgrows its process's ceiling.
    await deploy(mesh, {
      name: 'big',
      cordon: 'standard',
      mainModule: 'w.js',
      modules: [
        {
          name: 'w.js',
          type: 'esm',
          content: `const keep = []; export default { fetch() { for (let i = 0; i < 12; i++) { const b = new Uint8Array(50 * 1024 * 1024); b.fill(1); keep.push(b) } return new Response('held') } }`,
        },
      ],
      routes: ['*/big*'],
      limits: { memoryMb: 1024, cpuMs: 20_000, wallMs: 30_000 },
    });
    await mesh.cliOk(['deploy', 'examples/hello/index.ts', '--name', 'hello', '--cordon', 'untrusted', '--route', '*/hello*']);
    await waitFor('hello', async () => (await fetch(`${mesh.httpUrl}/hello`)).status === 200 || undefined, 30_000);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('every sandbox process (bwrap and Node) is in a cgroup of its own with the ceiling', async () => {
    const nodes = await waitFor('both sandboxes', () => {
      const n = sandboxNodes(mesh);
      return n.has('standard') && n.has('untrusted') ? n : undefined;
    });
    const dirs = new Set<string>();
    for (const [cordon, pid] of nodes) {
      const outer = mesh.servicePids().get(`sandbox:${cordon}`)!;
      for (const p of [pid, outer]) {
        const cg = memoryCgroupOf(p);
        assert.ok(!('problem' in cg), `${cordon} (pid ${p}): ${'problem' in cg ? cg.problem : ''}`);
        assert.equal(Number(readFileSync(join(cg.dir, limitFile(cg.kind)), 'utf8').trim()), CEILING_MB * MiB, `${cordon} (pid ${p}): the ceiling`);
        dirs.add(cg.dir);
      }
    }
    assert.equal(dirs.size, 2, 'one cgroup per sandbox process');
    const own = memoryCgroupOf('self');
    assert.ok(!('problem' in own) && !dirs.has(own.dir), 'not the launcher’s (or this test’s) cgroup');
  });

  test('over the ceiling the kernel kills that sandbox alone; the launcher restarts it; the other cordon is unharmed', async () => {
    const standard = sandboxNodes(mesh).get('standard')!;
    const untrusted = sandboxNodes(mesh).get('untrusted')!;
    const res = await fetch(`${mesh.httpUrl}/big`);
    assert.ok(res.status >= 500, `the request that outgrew the ceiling failed (${res.status})`);
    await waitFor(
      'the launcher to report the kill',
      () => (/sandbox:standard exited \([^)]*killed by the kernel at its memory ceiling of 400 MB\)/.test(mesh.output()) ? true : undefined),
      20_000,
    );
    await waitFor(
      'a new standard sandbox',
      () => {
        const p = sandboxNodes(mesh).get('standard');
        return p && p !== standard ? p : undefined;
      },
      30_000,
    );
    assert.equal(sandboxNodes(mesh).get('untrusted'), untrusted, 'the other cordon’s process was not touched');
    assert.equal((await fetch(`${mesh.httpUrl}/hello`)).status, 200, 'its worker answers');
  });
});
