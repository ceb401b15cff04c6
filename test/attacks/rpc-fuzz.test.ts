/**
 * Issue 12, "Must show": a fuzz target for the RPC surface a sandbox reaches. A process holding a
 * sandbox's keyring opens sessions to the real supervisor (and, through the Fetcher and Cache
 * capabilities it hands out, to egress) and sends garbage, random capnweb messages and mutations of a
 * legitimate exchange (lib/rpc/testing/fuzz.ts) for CORDON_FUZZ_SECONDS (default 5). Afterwards the
 * supervisor and egress are the same processes, their memory stayed within a bound, every session was
 * refused, aborted or left open by the server's choice (none hung), and a bystander tenant's worker,
 * served through ingress with its own storage, answered correctly throughout.
 *
 * A failure prints its seed: `CORDON_FUZZ_SEED=<seed> CORDON_FUZZ_SECONDS=<n>` replays the same
 * sequence of messages (the server's timing may still differ).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestMesh, waitFor, freePort, type TestMesh } from '../helpers/mesh.ts';
import { connectUnixSession, Keyring, loadMeshSecret } from '../../lib/rpc/index.ts';
import { socketPath } from '../../lib/config.ts';
import { fuzz, type FuzzReport, type Identity } from '../../lib/rpc/testing/fuzz.ts';
import { CACHE_HANDLE, CACHE_METHODS, DIRECTORY_METHODS, FETCH_HANDLE, FETCH_METHODS, STORAGE_METHODS } from '../../schemas/capabilities.ts';
import type { SupervisorForSandbox } from '../../schemas/services.ts';
import type { RpcStub } from 'capnweb';

const SECONDS = Number(process.env.CORDON_FUZZ_SECONDS) || 5;
const SEED = process.env.CORDON_FUZZ_SEED ? Number(process.env.CORDON_FUZZ_SEED) : randomInt(2 ** 31);
/** How much a server's resident memory may grow over the run (a leak grows with the run; huge messages come and go). */
const RSS_GROWTH_MB = Number(process.env.CORDON_FUZZ_RSS_MB) || 256;

const FUZZ_WORKER = 'fuzz/target';
const FUZZ_CORDON = 'untrusted';
/**
 * Every IPv4 address but 127.0.0.0/8 and every IPv6 address outside ::/8 (which holds the IPv4-mapped
 * ones: `::/0` would deny 127.0.0.1 too), on top of egress's own refusal of everything not public: a
 * fuzzed URL reaches nothing but the test's origin, whatever its spelling.
 */
const DENY_ALL_BUT_LOOPBACK = [
  ...['0.0.0.0/2', '64.0.0.0/3', '96.0.0.0/4', '112.0.0.0/5', '120.0.0.0/6', '124.0.0.0/7', '126.0.0.0/8', '128.0.0.0/1'],
  ...['8000::/1', '4000::/2', '2000::/3', '1000::/4', '800::/5', '400::/6', '200::/7', '100::/8'],
];
const SANDBOX_METHODS = ['report', 'loadWorker', 'registerRunner', 'capabilities', 'crashed', 'limitHit', 'log'] as const;

/**
 * The keyring and handshake name of the sandbox process of `cordon`: the one place the fuzzer's
 * credentials are made, so a change in how sandbox keys are derived is a change here only.
 */
function sandboxCredentials(dataDir: string, cordon: string): Pick<Identity, 'keyring' | 'name'> {
  return { keyring: Keyring.forRole(loadMeshSecret(dataDir, {}), 'sandbox', cordon), name: cordon };
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('fuzzing the RPC surface a sandbox reaches', () => {
  let mesh: TestMesh;
  let origin: Server;
  let originUrl: string;
  const bystander = (query: string, init?: RequestInit) => fetch(`${mesh.httpUrl}/bystander/notes?${query}`, init);

  before(async () => {
    origin = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' }).end('origin ok'));
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    originUrl = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
    // Egress asks a DNS server on a loopback port nobody serves: no name a fuzzed URL holds is looked up outside.
    mesh = await startTestMesh({ CORDON_EGRESS_DNS: `127.0.0.1:${await freePort()}` });
    const bystanderDeploy = await mesh.cli([
      'deploy',
      'examples/notes/index.ts',
      '--name',
      'notes',
      '--tenant',
      'bystander',
      '--cordon',
      'standard',
      '--route',
      '*/bystander/notes*',
      '--storage',
      'DB',
      '--directory',
      'FILES',
    ]);
    assert.equal(bystanderDeploy.code, 0, bystanderDeploy.stderr);
    const target = await mesh.cli([
      'deploy',
      'examples/notes/index.ts',
      '--name',
      'target',
      '--tenant',
      'fuzz',
      '--cordon',
      FUZZ_CORDON,
      '--route',
      '*/fuzz/notes*',
      '--storage',
      'DB',
      '--directory',
      'FILES',
      '--origin',
      originUrl,
      ...DENY_ALL_BUT_LOOPBACK.flatMap((c) => ['--deny-cidr', c]),
    ]);
    assert.equal(target.code, 0, target.stderr);
    await waitFor('the bystander to serve', async () => (await bystander('op=list')).status === 200 || undefined);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
  });

  /** The fuzzed worker's current cordon and code key (a quarantine moves it and gives it a new key). */
  const identity = (): Identity => {
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'), { readonly: true });
    try {
      const w = db.prepare('SELECT cordon, code_key AS codeKey FROM workers WHERE id = ?').get(FUZZ_WORKER) as { cordon: string; codeKey: string };
      return { ...sandboxCredentials(mesh.dataDir, w.cordon), words: [w.codeKey, 'DB', 'FILES', FETCH_HANDLE, CACHE_HANDLE, FUZZ_WORKER, 'fuzz', originUrl] };
    } finally {
      db.close();
    }
  };

  /** What a sandbox does for a worker: its code, its capabilities, storage, files, a fetch, the cache, a log line. */
  const legitimate = async (remote: RpcStub<SupervisorForSandbox>, id: Identity) => {
    const key = id.words[0]!;
    const bundle = await remote.loadWorker(key);
    const caps = (await remote.capabilities(key)) as Record<string, any>;
    await caps.DB.exec('CREATE TABLE IF NOT EXISTS t (x)', []);
    await caps.DB.exec('INSERT INTO t VALUES (?), (?)', ['fuzz', 1]);
    const rows = await caps.DB.exec('SELECT count(*) FROM t', []);
    await caps.DB.kvPut('k', new Uint8Array([1, 2, 3]));
    const kv = await caps.DB.kvGet('k');
    await caps.DB.kvList('', 10);
    await caps.FILES.write('a.txt', new TextEncoder().encode('file'));
    await caps.FILES.mkdir('d');
    const sub = await caps.FILES.directory('d');
    await sub.write('b.txt', new Uint8Array([9]));
    const listing = await caps.FILES.list('');
    const fetched = await caps[FETCH_HANDLE].fetch({ method: 'GET', url: `${originUrl}/x`, headers: [], body: null, redirect: 'manual' });
    await caps[CACHE_HANDLE].put('c', `${originUrl}/y`, [], {
      status: 200,
      statusText: 'OK',
      headers: [['cache-control', 'max-age=60']],
      body: new Uint8Array([1]),
    });
    await caps[CACHE_HANDLE].match('c', `${originUrl}/y`, []);
    await remote.log(key, [{ level: 'log', message: 'legitimate', time: Date.now() }]);
    return { bundle, rows, kv, listing, fetched };
  };

  test(`random and mutated capnweb messages for ${SECONDS} s (seed ${SEED}) end only their own sessions`, async (t) => {
    t.diagnostic(`seed ${SEED}: replay with CORDON_FUZZ_SEED=${SEED} CORDON_FUZZ_SECONDS=${SECONDS}`);
    const supervisorSocket = socketPath(mesh.dataDir, 'supervisor');

    // The fuzzer's credentials really are a sandbox's: the legitimate exchange works end to end (code,
    // storage, files, and egress behind the fetch capability), so the fuzz below reaches all of it.
    const first = identity();
    const session = await connectUnixSession<SupervisorForSandbox>(supervisorSocket, { ...first, expect: 'supervisor' });
    try {
      const r = await legitimate(session.remote, first);
      assert.equal(r.bundle.workerId, FUZZ_WORKER);
      assert.deepEqual(r.rows.rows, [[2]]);
      assert.deepEqual([...r.kv], [1, 2, 3]);
      assert.equal(r.fetched.status, 200);
      // Whole, or streamed as egress streams a body it does not return whole.
      assert.equal(r.fetched.body ? new TextDecoder().decode(r.fetched.body) : await new Response(r.fetched.stream).text(), 'origin ok');
    } finally {
      session.close();
    }

    const pids = mesh.servicePids();
    const watched = ['supervisor', 'egress', 'ingress', 'sandbox:standard'];
    for (const s of watched) assert.ok(pids.get(s), `${s} runs`);
    const rssBefore = { supervisor: rssMb(pids.get('supervisor')!), egress: rssMb(pids.get('egress')!) };

    // The bystander: another tenant's worker adding rows to its own database through ingress, one
    // request after another, all through the run (bounded by the run's end and a count).
    let added = 0;
    let fuzzing = true;
    const failures: string[] = [];
    const bystanderLoop = (async () => {
      for (let i = 0; i < 10_000 && (fuzzing || i < 3); i++) {
        try {
          const res = await bystander('op=add', { method: 'POST', body: `row ${i}` });
          const body = await res.text();
          if (res.status !== 200 || JSON.parse(body).n !== added + 1) failures.push(`add ${i}: ${res.status} ${body.slice(0, 200)}`);
          else added++;
        } catch (e) {
          failures.push(`add ${i}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    let report: FuzzReport;
    try {
      report = await fuzz(
        {
          socket: supervisorSocket,
          expect: 'supervisor',
          identity,
          script: (remote, id) => legitimate(remote as RpcStub<SupervisorForSandbox>, id).then(() => {}),
          methods: [
            ...SANDBOX_METHODS,
            ...STORAGE_METHODS,
            ...DIRECTORY_METHODS,
            ...FETCH_METHODS,
            ...CACHE_METHODS,
            'DB',
            'FILES',
            FETCH_HANDLE,
            CACHE_HANDLE,
          ],
        },
        { seed: SEED, durationMs: SECONDS * 1000 },
      );
    } finally {
      fuzzing = false;
      await bystanderLoop;
    }
    t.diagnostic(`fuzz report: ${JSON.stringify(report)}`);
    const about = `(seed ${SEED}; ${JSON.stringify(report)})`;

    // No crash, no restart.
    const now = mesh.servicePids();
    for (const s of watched) assert.equal(now.get(s), pids.get(s), `${s} is the same process ${about}`);
    assert.doesNotMatch(mesh.output(), /(supervisor|egress|ingress|sandbox:standard) exited/, about);
    // Memory within bounds.
    for (const s of ['supervisor', 'egress'] as const) {
      const grown = rssMb(now.get(s)!) - rssBefore[s];
      t.diagnostic(`${s} RSS grew by ${grown.toFixed(1)} MiB`);
      assert.ok(grown < RSS_GROWTH_MB, `${s} RSS grew by ${grown.toFixed(0)} MiB, more than ${RSS_GROWTH_MB} ${about}`);
    }
    // Every session ended the way the server chose (refused, aborted, closed, or still open at our end), none hung;
    // and the fuzz reached past the parser: calls were answered and capabilities handed out.
    assert.deepEqual(report.hung, [], about);
    assert.equal(report.ends.hung, 0, about);
    assert.ok(report.ends.aborted > 0, `the fuzzer provoked aborts ${about}`);
    assert.ok(report.answers > 0 && report.capabilities > 0, `the fuzzer reached methods and capabilities ${about}`);
    // The bystander answered correctly during and after the run.
    assert.deepEqual(failures, [], about);
    assert.ok(added >= 3, about);
    assert.equal(((await (await bystander('op=list')).json()) as unknown[]).length, added);
    // A sandbox's session still works, and the audit log the refusals went into is intact.
    const later = identity();
    const again = await connectUnixSession<SupervisorForSandbox>(supervisorSocket, { ...later, expect: 'supervisor' });
    try {
      assert.equal((await again.remote.loadWorker(later.words[0]!)).workerId, FUZZ_WORKER);
    } finally {
      again.close();
    }
    const verify = await mesh.cli(['audit', 'verify']);
    assert.equal(verify.code, 0, verify.stderr);
  });
});
