/**
 * Issue 12, item 7: one tenant's query must not freeze the supervisor. A worker runs a recursive CTE
 * that never ends; meanwhile the admin API and another tenant's storage keep answering, and at the
 * attacker's wall-time limit its query is interrupted: the worker gets an error saying so, its own
 * database answers again, and the supervisor's processes go quiet. And a result too large for one
 * RPC message is refused to its worker instead of ending the session its co-tenants share.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { startTestMesh, waitFor, type TestMesh } from '../helpers/mesh.ts';
import { loadAdminToken } from '../../lib/admin-token.ts';

const FOREVER = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c';
const WALL_MS = 6000;
/** Any single answer taking this long means something is frozen (the old supervisor took minutes). */
const HUNG = () => AbortSignal.timeout(20_000);

/** CPU time (clock ticks) used so far by `pid` and every process below it. */
function treeTicks(pid: number): number {
  const stats = new Map<number, { ppid: number; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Fields after the command name (which may hold spaces): state ppid ... utime(14) stime(15).
      const rest = readFileSync(`/proc/${entry}/stat`, 'utf8')
        .replace(/^.*\) /s, '')
        .split(' ');
      stats.set(Number(entry), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) });
    } catch {
      // ended while we looked
    }
  }
  let total = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    total += stats.get(p)?.ticks ?? 0;
    for (const [child, s] of stats) if (s.ppid === p) todo.push(child);
  }
  return total;
}

describe('a tenant query cannot freeze the supervisor', () => {
  let mesh: TestMesh;
  let token: string;
  const op = (tenant: string, query: string, init?: RequestInit) => fetch(`${mesh.httpUrl}/${tenant}/notes?${query}`, { signal: HUNG(), ...init });

  before(async () => {
    mesh = await startTestMesh();
    token = loadAdminToken(mesh.dataDir);
    for (const [tenant, wall] of [
      ['evil', WALL_MS],
      ['acme', 30_000],
    ] as const) {
      const r = await mesh.cli([
        'deploy',
        'examples/notes/index.ts',
        '--name',
        'notes',
        '--tenant',
        tenant,
        '--route',
        `*/${tenant}/notes*`,
        '--storage',
        'DB',
        '--wall-ms',
        String(wall),
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    await waitFor(
      'both tenants to serve',
      async () => ((await op('acme', 'op=list')).status === 200 && (await op('evil', 'op=list')).status === 200) || undefined,
    );
  });
  after(async () => {
    await mesh?.stop();
  });

  test('a never-ending recursive CTE: everyone else is served meanwhile, and it is interrupted at the wall limit', async () => {
    let attackDone = false;
    const attack = op('evil', 'op=sql', { method: 'POST', body: FOREVER }).then(async (r) => ({ status: r.status, text: await r.text() }));
    void attack.finally(() => (attackDone = true)).catch(() => {});
    await new Promise((r) => setTimeout(r, 300)); // the query is under way in the supervisor

    for (let i = 0; i < 5; i++) {
      const health = await fetch(`${mesh.adminUrl}/healthz`, { signal: HUNG() });
      assert.equal(health.status, 200, await health.text());
      const list = await fetch(`${mesh.adminUrl}/v1/workers`, { headers: { authorization: `Bearer ${token}` }, signal: HUNG() });
      assert.equal(list.status, 200);
      assert.match(await list.text(), /evil\/notes/);
      const add = await op('acme', 'op=add', { method: 'POST', body: `note ${i}` });
      assert.equal(add.status, 200, await add.clone().text());
      assert.deepEqual(await add.json(), { n: i + 1 });
      await op('acme', `op=kv-put&key=k${i}`, { method: 'POST', body: JSON.stringify(i) });
      assert.equal(await (await op('acme', `op=kv-get&key=k${i}`)).json(), i);
      assert.equal(attackDone, false, `round ${i} was answered while the attacker's query was still running`);
      await new Promise((r) => setTimeout(r, 100));
    }

    const res = await attack;
    assert.equal(res.status, 409, res.text);
    assert.match(res.text, /SQL interrupted at the worker's time limit: the statement was still running after \d+ ms; nothing of it was written/);

    // The attacker's own database answers again at once: nothing is left running in front of it.
    const again = await op('evil', 'op=list');
    assert.equal(again.status, 200, await again.clone().text());
    assert.deepEqual(await again.json(), []);

    // And nothing of the supervisor keeps burning CPU (the CTE alone would use a whole core).
    const supervisor = mesh.servicePids().get('supervisor')!;
    const before = treeTicks(supervisor);
    await new Promise((r) => setTimeout(r, 1000));
    const used = treeTicks(supervisor) - before;
    assert.ok(used < 50, `the supervisor and its SQL processes used ${used} ticks of CPU in a second after the interrupt`);

    // The bystander lost nothing.
    assert.equal(((await (await op('acme', 'op=list')).json()) as unknown[]).length, 5);
  });

  test("a result too large for one RPC message is refused to its worker; the cordon's shared session and the bystander's calls go on", async () => {
    // Over the mesh's 16 MiB frame limit as a reply, it used to end the sandbox's whole session to the supervisor.
    const bystander = op('acme', 'op=sql', {
      method: 'POST',
      body: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000000) SELECT count(*) AS n FROM c',
    });
    const res = await op('evil', 'op=sql', { method: 'POST', body: 'SELECT hex(zeroblob(5000000)) AS a, hex(zeroblob(5000000)) AS b' });
    assert.equal(res.status, 409);
    assert.match(await res.text(), /query result is larger than 8 MiB; select fewer rows or columns/);
    const counted = await bystander;
    assert.equal(counted.status, 200, await counted.clone().text());
    assert.deepEqual(await counted.json(), [{ n: 1000000 }]);
    assert.equal(((await (await op('acme', 'op=list')).json()) as unknown[]).length, 5);
  });
});
