/**
 * Tenant SQL runs in the supervisor's SQL processes. The authorizer refuses ATTACH, PRAGMA and
 * extensions (kv-d1-queues.test.ts), but SQLite is a large C parser fed hostile input: if a statement
 * ever took over its process, what would it hold? This suite looks at the real processes of a real
 * mesh. Each one must be confined by bubblewrap: its own network namespace, the seccomp filter in
 * force, and a filesystem where the tenants' databases are the only writable files. The supervisor's
 * master key, admin database and code store are not there. The bystander tenant's storage keeps
 * working throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts';
import { deployNotesTwice, type NotesOp } from '../helpers/notes.ts';
import { usableBwrap } from '../../lib/process-sandbox.ts';

const usable = usableBwrap();
const skip = usable.problem && process.env.CORDON_REQUIRE_ALL !== '1' ? `bubblewrap cannot confine here: ${usable.problem}` : false;

const parent = (pid: number) => Number(/^\d+ \(.*\) \S (\d+)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))![1]);
/** Is `pid` under `ancestor` in the process tree? */
function descends(pid: number, ancestor: number): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 16; hops++) {
    p = parent(p);
    if (p === ancestor) return true;
  }
  return false;
}

/** The Node processes running sql-process.ts under the mesh's supervisor. */
function sqlProcesses(supervisor: number): number[] {
  const node = realpathSync(process.execPath);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0] === node && cmdline.some((a) => a.endsWith('services/supervisor/sql-process.ts')) && descends(Number(entry), supervisor))
        found.push(Number(entry));
    } catch {
      // gone while we looked
    }
  }
  return found;
}

describe('the SQL processes that run tenant SQL are confined', { skip }, () => {
  let mesh: TestMesh;
  let op: NotesOp;

  before(async () => {
    mesh = await startTestMesh();
    op = await deployNotesTwice(mesh, ['--storage', 'DB']);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('no key, admin database or code store in its filesystem; no network; seccomp in force; the tenants go on', async () => {
    assert.deepEqual(await (await op('acme', 'op=add', { method: 'POST', body: 'acme note' })).json(), { n: 1 });
    assert.deepEqual(await (await op('evil', 'op=add', { method: 'POST', body: 'evil note' })).json(), { n: 1 });
    const supervisor = mesh.servicePids().get('supervisor')!;
    assert.ok(supervisor, 'the supervisor runs');
    const pids = sqlProcesses(supervisor);
    assert.ok(pids.length >= 1, 'tenant SQL ran in at least one SQL process');
    const supervisorDir = join(mesh.dataDir, 'supervisor');
    // What the supervisor has beside the tenants' databases (the master key is in the data dir itself).
    const secrets = [
      ...readdirSync(supervisorDir)
        .filter((f) => f !== 'tenants')
        .map((f) => join(supervisorDir, f)),
      ...readdirSync(mesh.dataDir)
        .filter((f) => f !== 'supervisor')
        .map((f) => join(mesh.dataDir, f)),
    ];
    assert.ok(
      secrets.some((f) => f.endsWith('admin.db')) && secrets.some((f) => f.endsWith('code.db')),
      `the supervisor's files are where this test looks: ${secrets.join(', ')}`,
    );
    for (const pid of pids) {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^Seccomp:\s+2$/m, `SQL process ${pid} runs under a seccomp filter`);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.notEqual(readlinkSync(`/proc/${pid}/ns/net`), readlinkSync(`/proc/${supervisor}/ns/net`), 'its own network namespace: no network');
      assert.notEqual(readlinkSync(`/proc/${pid}/ns/mnt`), readlinkSync(`/proc/${supervisor}/ns/mnt`), 'its own mount namespace');
      // The process's view of the filesystem, seen through /proc/<pid>/root.
      const root = `/proc/${pid}/root`;
      assert.ok(existsSync(join(root, supervisorDir, 'tenants')), 'the tenants’ databases are there');
      for (const secret of secrets) assert.equal(existsSync(join(root, secret)), false, `${secret} is out of its sight`);
      assert.equal(existsSync(join(root, '/etc/passwd')), false, 'nothing of the host but Node and the app');
    }
    // The bystander and the tenant itself are unharmed.
    assert.deepEqual(await (await op('acme', 'op=list')).json(), [{ id: 1, text: 'acme note' }]);
    assert.deepEqual(await (await op('evil', 'op=list')).json(), [{ id: 1, text: 'evil note' }]);
  });
});
