/**
 * Workflows, in one run: new 3-step instances per second to completion on Cordon (every step durable
 * before run() goes on), the same workflow on miniflare's local Workflows engine (a devDependency),
 * the raw SQLite floor on the same
 * disk (fsync per commit, and 100 commits per transaction), and many concurrently sleeping instances
 * with the supervisor's RSS.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';
import { ROOT, startTestMesh, waitFor, type TestMesh } from '../test/helpers/mesh.ts';

const INSTANCES = Number(process.env.BENCH_WF_INSTANCES || 3000);
const SLEEPERS = Number(process.env.BENCH_SLEEPERS || 50_000);
const say = (s: string) => process.stdout.write(s + '\n');

function sqliteFloor(): { single: number; grouped: number } {
  const db = new Database(join(mkdtempSync(join(tmpdir(), 'cordon-floor-')), 'floor.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  let t = performance.now();
  for (let i = 0; i < 2000; i++) insert.run('x');
  const single = 2000 / ((performance.now() - t) / 1000);
  const batch = db.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run('x');
  });
  t = performance.now();
  for (let i = 0; i < 200; i++) batch(100);
  const grouped = 20_000 / ((performance.now() - t) / 1000);
  db.close();
  return { single, grouped };
}

async function createAll(mesh: TestMesh, n: number, sleepMs: number): Promise<void> {
  let made = 0;
  const worker = async () => {
    while (made < n) {
      const k = Math.min(100, n - made);
      made += k;
      const r = await fetch(`${mesh.httpUrl}/wf/create?n=${k}&sleep=${sleepMs}`);
      if (r.status !== 200) throw new Error(`create failed: ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

async function count(mesh: TestMesh, status: string): Promise<number> {
  const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
  const r = await fetch(`${mesh.adminUrl}/v1/workflows/default/flow/counts`, { headers: { authorization: `Bearer ${token}` } });
  return ((await r.json()) as { counts: Record<string, number> }).counts[status] ?? 0;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function cordon(): Promise<{ rate: number; sleepers?: { n: number; rss: number; asleep: number; done: number } }> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-wfbench-'));
  writeFileSync(
    join(dir, 'wrangler.jsonc'),
    JSON.stringify({
      name: 'flow',
      main: join(ROOT, 'bench/workflow-worker.ts'),
      routes: ['*/wf/*'],
      workflows: [{ name: 'flow', binding: 'FLOW', class_name: 'ThreeSteps' }],
    }),
  );
  const mesh = await startTestMesh();
  try {
    const d = await mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc')]);
    if (d.code !== 0) throw new Error(d.stderr);
    await waitFor('the bench worker', async () => (await fetch(`${mesh.httpUrl}/wf/create?n=1`)).status === 200 || undefined);
    await waitFor('the first instance', async () => (await count(mesh, 'complete')) === 1 || undefined);
    say(`  cordon: ${INSTANCES} instances …`);
    const t = performance.now();
    await createAll(mesh, INSTANCES, 0);
    // Polled often: at a few seconds a run, a coarse poll would be a good part of what is measured.
    await waitFor('every instance to complete', async () => (await count(mesh, 'complete')) >= INSTANCES + 1 || undefined, 600_000, 25);
    const rate = INSTANCES / ((performance.now() - t) / 1000);
    if (!SLEEPERS) return { rate };
    say(`  cordon: ${SLEEPERS} sleeping instances (BENCH_SLEEPERS) …`);
    const t2 = performance.now();
    await createAll(mesh, SLEEPERS, 90_000);
    await waitFor('every sleeper to be asleep', async () => (await count(mesh, 'waiting')) >= SLEEPERS || undefined, 1_800_000, 1000);
    const rss = rssMiB(mesh.servicePids().get('supervisor')!);
    const asleep = (performance.now() - t2) / 1000;
    say(`  cordon: all ${SLEEPERS} asleep (supervisor RSS ${rss.toFixed(0)} MiB); waiting for them to wake and complete …`);
    await waitFor('every sleeper to wake and complete', async () => (await count(mesh, 'complete')) >= INSTANCES + 1 + SLEEPERS || undefined, 1_800_000, 1000);
    return { rate, sleepers: { n: SLEEPERS, rss, asleep, done: (performance.now() - t2) / 1000 } };
  } finally {
    await mesh.stop();
  }
}

/** miniflare's local Workflows engine with the same worker, in-process through its API. */
async function miniflare(): Promise<number> {
  const script = (await build({ entryPoints: [join(ROOT, 'bench/workflow-worker.ts')], bundle: true, format: 'esm', write: false, external: ['cloudflare:*'] }))
    .outputFiles[0]!.text;
  const mf = new Miniflare({
    modules: true,
    script,
    compatibilityDate: '2026-07-01',
    workflows: { FLOW: { name: 'flow', className: 'ThreeSteps' } },
  });
  try {
    const t = performance.now();
    let pending: string[] = [];
    for (let made = 0; made < INSTANCES; made += 100) {
      const r = await mf.dispatchFetch(`http://x/wf/create?n=${Math.min(100, INSTANCES - made)}`);
      pending.push(...((await r.json()) as { ids: string[] }).ids);
    }
    while (pending.length) {
      const still: string[] = [];
      for (let i = 0; i < pending.length; i += 100) {
        const ids = pending.slice(i, i + 100);
        const statuses = (await (await mf.dispatchFetch(`http://x/wf/status?ids=${ids.join(',')}`)).json()) as string[];
        ids.forEach((id, k) => statuses[k] !== 'complete' && still.push(id));
      }
      pending = still;
      if (pending.length) await new Promise((r) => setTimeout(r, 200));
    }
    return INSTANCES / ((performance.now() - t) / 1000);
  } finally {
    await mf.dispose();
  }
}

export async function workflowsBench(): Promise<void> {
  say('4. workflows: new 3-step instances per second to completion, every step durable');
  const floor = sqliteFloor();
  const ours = await cordon();
  const peer = await miniflare().catch((e: Error) => `not measured: ${e.message}`);
  // A 3-step instance makes 7 durable commits (create, start, begin+end per step); one fsync each would allow floor/7 instances/s.
  say(
    `  cordon                ${ours.rate.toFixed(0).padStart(7)} instances/s${typeof peer === 'number' ? `   ${(ours.rate / peer).toFixed(2)}x miniflare` : ''}   ${(ours.rate / (floor.single / 7)).toFixed(2)}x an fsync per commit (target ≥ 1000/s)`,
  );
  say(`  miniflare (peer)      ${typeof peer === 'number' ? `${peer.toFixed(0).padStart(7)} instances/s` : peer}`);
  say(
    `  SQLite floor          ${floor.single.toFixed(0).padStart(7)} commits/s with an fsync each, ${floor.grouped.toFixed(0)} commits/s 100 to a transaction`,
  );
  if (ours.sleepers)
    say(
      `  ${ours.sleepers.n} sleeping instances: supervisor RSS ${ours.sleepers.rss.toFixed(0)} MiB (target < 1024); all asleep after ${ours.sleepers.asleep.toFixed(0)} s, all woken and complete after ${ours.sleepers.done.toFixed(0)} s (a 90 s sleep)`,
    );
}
