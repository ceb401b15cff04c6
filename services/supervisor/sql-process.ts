/**
 * A process of the SQL pool (sql-pool.ts says why a process): it opens the databases the supervisor
 * names, runs one call at a time in arrival order, and answers over the IPC channel. It is started
 * with an empty environment, so it holds no key of the mesh — only the database files it is sent.
 */
import { Worker } from 'node:worker_threads';
import { SqlError, WorkerDatabase } from './sql-storage.ts';
import type { SqlReply, SqlRequest } from './sql-pool.ts';
import { d1Calls } from './d1-store.ts';
import { KvStore, kvCalls } from './kv-store.ts';
import { QueueStore, queueCalls } from './queue-store.ts';

/** A database file as this process keeps it open. */
export interface OpenDatabase {
  readonly inTransaction: boolean;
  close(): void;
}

/** What the pool may ask of one kind of database: how to open its file, and the calls it answers. */
interface Kind<D extends OpenDatabase> {
  open(file: string, quota: number): D;
  calls: Record<string, (db: D, args: any[]) => unknown>;
}
const kind = <D extends OpenDatabase>(k: Kind<D>) => k as unknown as Kind<OpenDatabase>;

const storageCalls: Record<string, (db: WorkerDatabase, args: any[]) => unknown> = {
  exec: (db, [query, bindings]) => db.exec(query, bindings),
  databaseSize: (db) => db.databaseSize,
  begin: (db) => db.begin(),
  commit: (db) => db.commit(),
  rollback: (db) => db.rollback(),
  kvGet: (db, [key]) => db.kvGet(key) ?? null,
  kvPut: (db, [key, value]) => db.kvPut(key, value),
  kvDelete: (db, [key]) => db.kvDelete(key),
  kvList: (db, [prefix, limit]) => db.kvList(prefix, limit),
  kvScan: (db, [start, end, prefix, reverse, limit]) => db.kvScan(start, end, prefix, reverse, limit),
  deleteAll: (db) => db.deleteAll(),
  // Never a tenant's call: the supervisor names both files (ctx.facets.clone, objects/service.ts).
  copyFrom: (db, [file]) => db.copyFrom(file),
};

/** The kinds of database, each with its calls (a D1 database is a storage database with D1's calls too). */
const KINDS = {
  storage: kind({ open: (f, q) => new WorkerDatabase(f, q), calls: storageCalls }),
  d1: kind({ open: (f, q) => new WorkerDatabase(f, q), calls: d1Calls }),
  kv: kind({ open: (f, q) => new KvStore(f, q), calls: kvCalls }),
  queue: kind({ open: (f, q) => new QueueStore(f, q), calls: queueCalls }),
};
export type SqlKind = keyof typeof KINDS;

/** Connections kept open at once; the least recently used idle one is closed first. */
const MAX_OPEN = 64;
const open = new Map<string, OpenDatabase>();

function database(file: string, quota: number, k: SqlKind): OpenDatabase {
  let db = open.get(file);
  if (db) open.delete(file);
  else {
    for (const [f, old] of open) {
      if (open.size < MAX_OPEN) break;
      if (old.inTransaction) continue;
      old.close();
      open.delete(f);
    }
    db = KINDS[k].open(file, quota);
  }
  open.set(file, db); // most recently used last
  return db;
}

process.on('message', (m: SqlRequest) => {
  let reply: SqlReply;
  try {
    // Queued behind a call that was slow: no time is left for this one, so it does not start.
    if (Date.now() >= m.deadline) throw new SqlError(`storage call not started: the worker's time limit had passed while it waited`);
    const calls = KINDS[m.kind]?.calls;
    if (!calls || !Object.hasOwn(calls, m.method)) throw new Error(`no ${m.kind} call ${m.method}`);
    const db = database(m.file, m.quota, m.kind);
    reply = { id: m.id, ok: calls[m.method]!(db, m.args), inTransaction: db.inTransaction };
  } catch (e) {
    reply = {
      id: m.id,
      error: e instanceof Error ? e.message : String(e),
      sql: e instanceof SqlError,
      refusal: e instanceof SqlError && e.refusal,
      inTransaction: open.get(m.file)?.inTransaction ?? false,
    };
  }
  process.send!(reply);
});
// The supervisor went away: nothing will read the answers.
process.on('disconnect', () => process.exit(0));

// While a statement runs this thread does not see 'disconnect'; a second thread does the watching,
// so a supervisor killed with -9 leaves no orphan burning CPU on a query.
new Worker(
  `const { workerData } = require('node:worker_threads');
   setInterval(() => { if (process.ppid !== workerData) process.kill(process.pid, 'SIGKILL'); }, 500);`,
  { eval: true, workerData: process.ppid },
).unref();
