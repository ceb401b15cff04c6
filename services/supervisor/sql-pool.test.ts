import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqlPool, type PooledDatabase, type SqlPoolOptions } from './sql-pool.ts';
import { usableBwrap } from '../../lib/process-sandbox.ts';
import type { SqlResult } from '../../schemas/capabilities.ts';

const FOREVER = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c';
const base = mkdtempSync(join(tmpdir(), 'cordon-sqlpool-'));
const dir = () => mkdtempSync(join(base, 'd-'));
const usable = usableBwrap();
/** Every test runs twice: with the pool's processes forked as they are, and confined by bubblewrap as the supervisor starts them. */
const MODES = [
  { name: 'plain processes', confine: undefined, skip: false },
  {
    name: 'processes confined by bubblewrap',
    confine: usable.bwrap ? { bwrap: usable.bwrap, writable: [base] } : undefined,
    skip: usable.problem && process.env.CORDON_REQUIRE_ALL !== '1' ? `bubblewrap cannot confine here: ${usable.problem}` : false,
  },
];
const soon = (ms = 30_000) => Date.now() + ms;
const exec = (db: PooledDatabase, sql: string, bindings: unknown[] = [], deadline = soon()) => db.call('exec', [sql, bindings], deadline) as Promise<SqlResult>;
/** Running (a zombie nobody reaped yet counts as gone). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};
async function until(what: string, fn: () => boolean, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; !fn(); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const mode of MODES) {
  describe(mode.name, { skip: mode.skip }, () => {
    const newPool = (opts: SqlPoolOptions) => new SqlPool({ ...opts, confine: mode.confine });
    test("a database's calls run in the order they were made, even sent all at once alongside another's", async () => {
      const d = dir();
      const pool = newPool({ processes: 2 });
      try {
        const a = pool.database(join(d, 'a.sqlite'), 1e9, 'x');
        const b = pool.database(join(d, 'b.sqlite'), 1e9, 'y');
        await Promise.all([exec(a, 'CREATE TABLE t (i INTEGER)'), exec(b, 'CREATE TABLE t (i INTEGER)')]);
        const calls: Promise<unknown>[] = [];
        for (let i = 0; i < 200; i++)
          calls.push(exec(a, 'INSERT INTO t VALUES (?)', [i]), b.call('kvPut', [`k${String(i).padStart(3, '0')}`, new Uint8Array([i])], soon()));
        await Promise.all(calls);
        assert.deepEqual(
          (await exec(a, 'SELECT i FROM t ORDER BY rowid')).rows.map((r) => r[0]),
          [...Array(200).keys()],
        );
        const listed = (await b.call('kvList', ['', 1000], soon())) as [string, Uint8Array][];
        assert.deepEqual(
          listed.map(([, v]) => v[0]),
          [...Array(200).keys()],
        );
      } finally {
        await pool.close();
      }
    });

    test('a statement still running at its deadline is interrupted; other databases are served meanwhile; its own database works again after', async () => {
      const d = dir();
      const pool = newPool({ processes: 2 });
      try {
        const attacker = pool.database(join(d, 'attacker.sqlite'), 1e9, 'evil');
        const bystander = pool.database(join(d, 'bystander.sqlite'), 1e9, 'good');
        await exec(attacker, 'CREATE TABLE t (v)');
        let settled = false;
        const running = exec(attacker, FOREVER, [], soon(3000)).finally(() => (settled = true));
        running.catch(() => {});
        const pid = pool.pids[0]!;
        await bystander.call('kvPut', ['k', new Uint8Array([7])], soon());
        assert.deepEqual(await bystander.call('kvGet', ['k'], soon()), new Uint8Array([7]));
        assert.equal(settled, false, 'the bystander was served while the statement ran');
        await assert.rejects(running, /SQL interrupted at the worker's time limit: the statement was still running after \d+ ms; nothing of it was written/);
        await until('the interrupted process to be gone', () => !alive(pid));
        assert.deepEqual((await exec(attacker, 'SELECT count(*) FROM t')).rows, [[0]]);
      } finally {
        await pool.close();
      }
    });

    test('a process that dies is replaced without losing committed writes; its open transaction is rolled back', async () => {
      const d = dir();
      const pool = newPool({ processes: 1 });
      try {
        const db = pool.database(join(d, 'db.sqlite'), 1e9, 't');
        await exec(db, 'CREATE TABLE t (v INTEGER)');
        for (let i = 0; i < 20; i++) await exec(db, 'INSERT INTO t VALUES (?)', [i]);
        await db.call('begin', [], soon());
        await exec(db, 'INSERT INTO t VALUES (999)');
        const [pid] = pool.pids;
        process.kill(pid!, 'SIGKILL');
        await until('the killed process to be gone', () => !pool.pids.includes(pid!));
        await assert.rejects(db.call('commit', [], soon()), /no transaction is open/);
        const rows = (await exec(db, 'SELECT v FROM t ORDER BY v')).rows.map((r) => r[0]);
        assert.deepEqual(rows, [...Array(20).keys()], 'every acknowledged write is there, the uncommitted one is not');
        assert.notEqual(pool.pids[0], pid, 'a new process serves the database');
      } finally {
        await pool.close();
      }
    });

    test('a transaction left open past its deadline is rolled back and frees its process', async () => {
      const d = dir();
      const pool = newPool({ processes: 1, perTenant: 1 });
      try {
        const db = pool.database(join(d, 'db.sqlite'), 1e9, 't');
        const other = pool.database(join(d, 'other.sqlite'), 1e9, 'u');
        await exec(db, 'CREATE TABLE t (v INTEGER)');
        await db.call('begin', [], soon(500));
        await exec(db, 'INSERT INTO t VALUES (1)', [], soon(500));
        // The only process is leased to `db` until the rollback at its deadline; then `other` gets it.
        await other.call('kvPut', ['k', new Uint8Array([1])], soon());
        assert.deepEqual((await exec(db, 'SELECT count(*) FROM t')).rows, [[0]]);
      } finally {
        await pool.close();
      }
    });

    test('one tenant never holds every process; a call that finds none free fails at its deadline', async () => {
      const d = dir();
      const pool = newPool({ processes: 2 });
      try {
        const evil1 = pool.database(join(d, 'e1.sqlite'), 1e9, 'evil');
        const evil2 = pool.database(join(d, 'e2.sqlite'), 1e9, 'evil');
        const good = pool.database(join(d, 'good.sqlite'), 1e9, 'good');
        const running = exec(evil1, FOREVER, [], soon(4000));
        running.catch(() => {});
        await assert.rejects(exec(evil2, 'SELECT 1', [], soon(300)), /no SQL process came free before the worker's time limit \(2 in all, 1 per tenant\)/);
        assert.deepEqual((await exec(good, 'SELECT 2')).rows, [[2]]);
        assert.ok(pool.pids.length <= 2);
        await assert.rejects(running, /interrupted/);
        assert.deepEqual((await exec(evil2, 'SELECT 3')).rows, [[3]]);
      } finally {
        await pool.close();
      }
    });

    test('a SQL process dies with the supervisor, even in the middle of a statement', async () => {
      const d = dir();
      // A stand-in supervisor: starts a statement that never ends, says its SQL process's pid, waits.
      const script = `
        import { SqlPool } from ${JSON.stringify(join(import.meta.dirname, 'sql-pool.ts'))};
        const pool = new SqlPool({ processes: 1, confine: ${JSON.stringify(mode.confine)} });
        const db = pool.database(${JSON.stringify(join(d, 'db.sqlite'))}, 1e9, 't');
        await db.call('exec', ['SELECT 1', []], Date.now() + 30000);
        db.call('exec', [${JSON.stringify(FOREVER)}, []], Date.now() + 600000).catch(() => {});
        console.log(pool.pids[0]);
        setInterval(() => {}, 1000);`;
      const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      parent.stdout.on('data', (c) => (out += c));
      await until('the stand-in to report its SQL process', () => /\d+\n/.test(out), 20_000);
      const pid = Number(out.trim());
      assert.ok(alive(pid));
      parent.kill('SIGKILL');
      await until('the orphaned SQL process to end', () => !alive(pid));
    });

    test('a flood of calls on one database is refused past a bound, not queued without end; the rest run in order', async () => {
      const pool = newPool({ processes: 1 });
      try {
        const db = pool.database(join(dir(), 'db.sqlite'), 1e9, 't');
        const results = await Promise.allSettled(Array.from({ length: 1100 }, (_, i) => exec(db, 'SELECT ?', [i])));
        const refused = results.filter((r) => r.status === 'rejected');
        assert.ok(refused.length > 0 && refused.length <= 100, `${refused.length} refused`);
        for (const r of refused) assert.match(String(r.reason), /too many storage calls waiting on this database \(1000\)/);
        const values = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.rows[0]![0]] : []));
        assert.deepEqual(values, [...Array(values.length).keys()]);
      } finally {
        await pool.close();
      }
    });
  });
}
