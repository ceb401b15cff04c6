/**
 * Where tenant SQL runs: a small pool of child processes (sql-process.ts), never the supervisor's
 * own thread, so no statement can stall the admin API or another tenant's storage.
 *
 * Why processes and not worker threads: a running statement has to be stopped at the worker's
 * deadline, and measured on Node 24.21 nothing stops one inside a thread — `node:sqlite` offers no
 * `interrupt()` or progress handler, better-sqlite3 13 neither (and has no authorizer, which tenant
 * SQL needs), and `worker.terminate()` does not return while the thread is inside `sqlite3_step`
 * (a recursive CTE outlived a 5 s wait for it, and kept the process from exiting). SIGKILL of a
 * process always works, and loses nothing acknowledged: every database is in WAL mode with
 * `synchronous=FULL`, so a commit is on disk before its answer leaves, and a killed statement's
 * uncommitted frames are discarded on the next open (sql-pool.test.ts kills one mid-write).
 *
 * Assignment: a database is leased to one process while it has calls in flight or a transaction
 * open, and that process serves no other database meanwhile. So a database's calls run in order on
 * one connection, a transaction stays on its connection, and one tenant's slow statement holds only
 * its own lease. Processes are started on demand up to `processes`; one tenant holds at most
 * `perTenant` leases at once, so it can never take them all. A database with no free process waits
 * (up to its deadline) in a FIFO queue. A process that is killed or dies is replaced on the next
 * demand; its open transaction is lost (never half-applied), its committed writes stay. (The price
 * of the per-tenant bound: a transactionSync on one database that calls into `perTenant` more of the
 * same tenant's databases waits for a lease its own transaction holds, until its deadline.)
 *
 * The hop costs about 0.14 ms per call (IPC and structured clone), measured on a shared 2-core machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { spawnConfined } from '../../lib/process-sandbox.ts';
import { SqlError } from './sql-storage.ts';
import type { SqlKind } from './sql-process.ts';

/** Supervisor → SQL process: one call on one database; `deadline` is an absolute Date.now(). */
export interface SqlRequest {
  id: number;
  file: string;
  quota: number;
  kind: SqlKind;
  method: string;
  args: unknown[];
  deadline: number;
}
/** SQL process → supervisor, one per request in order. `sql`: the error is the tenant's own (SqlError); `refusal`: its flag. */
export type SqlReply = ({ ok: unknown } | { error: string; sql: boolean; refusal: boolean }) & { id: number; inTransaction: boolean };

export interface SqlPoolOptions {
  /** SQL processes at most. */
  processes: number;
  /** Leases one tenant may hold at once (default: all but one process, at least one). */
  perTenant?: number;
  /**
   * Start each process confined by bubblewrap (lib/process-sandbox.ts), able to write only `writable`
   * (the directories that hold the tenants' databases) and to read only Node and the app: an exploit of
   * SQLite through tenant SQL finds no key, no code store, no admin database and no network.
   */
  confine?: { bwrap: string; writable: string[] };
}

/** Calls one database may have waiting in the supervisor (a flood is refused, not queued without end). */
const MAX_WAITING = 1000;
/** Calls sent ahead to a process; the rest wait in the supervisor, where their deadlines are watched. */
const MAX_SENT = 32;
/** A transaction left open past its deadline is rolled back with this much time for the ROLLBACK. */
const ROLLBACK_MS = 5000;
const SCRIPT = join(import.meta.dirname, 'sql-process.ts');

interface Call {
  readonly db: DbState;
  readonly method: string;
  readonly args: unknown[];
  readonly deadline: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  /** While the call waits in the supervisor: its deadline. */
  timer?: NodeJS.Timeout;
  id?: number;
  sentAt?: number;
}

interface Slot {
  readonly child: ChildProcess;
  /** Calls sent to the process, in order: the first is the one running. */
  readonly sent: Call[];
  lease: DbState | undefined;
  /** The running call's deadline. */
  timer: NodeJS.Timeout | undefined;
  /** The call the process was killed for. */
  interrupted: Call | undefined;
  nextId: number;
  dead: boolean;
}

interface DbState {
  readonly file: string;
  readonly kind: SqlKind;
  readonly quota: number;
  readonly tenant: string;
  readonly waiting: Call[];
  /** The process leased to this database now. */
  slot: Slot | undefined;
  /** The last process that served it: its connection is still open there. */
  home: Slot | undefined;
  inTransaction: boolean;
  /** The open transaction's deadline (that of the `begin` that opened it). */
  txTimer: NodeJS.Timeout | undefined;
}

export class SqlPool {
  readonly #processes: number;
  readonly #perTenant: number;
  readonly #confine: SqlPoolOptions['confine'];
  readonly #slots: Slot[] = [];
  /** Databases with calls waiting for a free process, first come first served. */
  readonly #queue: DbState[] = [];
  readonly #leases = new Map<string, number>();
  #closed = false;

  constructor(opts: SqlPoolOptions) {
    if (!Number.isInteger(opts.processes) || opts.processes < 1) throw new Error('the SQL pool needs at least one process');
    this.#processes = opts.processes;
    this.#perTenant = opts.perTenant ?? Math.max(1, opts.processes - 1);
    this.#confine = opts.confine;
  }

  /**
   * One database file of `tenant`, opened in the SQL processes as `kind` (a Durable Object-style
   * storage database, a KV namespace, a queue). Open it once and keep the handle: the handle carries its ordering.
   */
  database(file: string, quota: number, tenant: string, kind: SqlKind = 'storage'): PooledDatabase {
    const db: DbState = { file, kind, quota, tenant, waiting: [], slot: undefined, home: undefined, inTransaction: false, txTimer: undefined };
    return { call: (method, args, deadline) => this.#call(db, method, args, deadline) };
  }

  /** The process ids of the running SQL processes (for tests and diagnostics). */
  get pids(): number[] {
    return this.#slots.filter((s) => !s.dead && s.child.pid !== undefined).map((s) => s.child.pid!);
  }

  #call(db: DbState, method: string, args: unknown[], deadline: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new SqlError('storage is shutting down'));
    if (deadline <= Date.now()) return Promise.reject(new SqlError("storage call not started: the worker's time limit has passed"));
    if (db.waiting.length >= MAX_WAITING)
      return Promise.reject(new SqlError(`too many storage calls waiting on this database (${MAX_WAITING}); wait for some to finish`));
    return new Promise((resolve, reject) => {
      const call: Call = { db, method, args, deadline, resolve, reject };
      call.timer = setTimeout(() => this.#expire(call), deadline - Date.now());
      db.waiting.push(call);
      this.#pump(db);
    });
  }

  /** Stop every process; calls in flight fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const db of this.#queue.splice(0)) for (const call of db.waiting.splice(0)) this.#settle(call, new SqlError('storage is shutting down'));
    await Promise.all(
      this.#slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.dead) return resolve();
            s.child.once('exit', () => resolve());
            s.child.kill('SIGKILL');
          }),
      ),
    );
  }

  /** Send `db`'s waiting calls to its process, leasing one first if it has none. */
  #pump(db: DbState): void {
    if (!db.slot) {
      const slot = this.#free(db);
      if (!slot) {
        if (!this.#queue.includes(db)) this.#queue.push(db);
        return;
      }
      slot.lease = db;
      db.slot = db.home = slot;
      this.#leases.set(db.tenant, (this.#leases.get(db.tenant) ?? 0) + 1);
    }
    const slot = db.slot;
    for (const call of db.waiting.splice(0, MAX_SENT - slot.sent.length)) {
      clearTimeout(call.timer);
      this.#send(slot, call);
    }
  }

  /** A process `db` may lease now: its last one if free (the connection is open there), another free one, or a new one. */
  #free(db: DbState): Slot | undefined {
    if ((this.#leases.get(db.tenant) ?? 0) >= this.#perTenant) return undefined;
    const free = (s: Slot | undefined) => s && !s.dead && !s.lease;
    if (free(db.home)) return db.home;
    return this.#slots.find(free) ?? (this.#slots.length < this.#processes ? this.#spawn() : undefined);
  }

  #spawn(): Slot {
    // An empty environment: the supervisor's keys stay in the supervisor.
    const child = this.#confine
      ? spawnConfined({ bwrap: this.#confine.bwrap, nodeArgs: [], script: SCRIPT, writable: this.#confine.writable, ipc: true }, { env: {}, output: 'inherit' })
      : fork(SCRIPT, [], { env: {}, execArgv: [], serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const slot: Slot = { child, sent: [], lease: undefined, timer: undefined, interrupted: undefined, nextId: 0, dead: false };
    child.on('message', (m: SqlReply) => this.#answered(slot, m));
    child.on('exit', (code, signal) => this.#lost(slot, signal ?? `code ${code}`));
    child.on('error', () => child.kill('SIGKILL')); // 'exit' follows and fails what was in flight
    this.#slots.push(slot);
    return slot;
  }

  #send(slot: Slot, call: Call): void {
    call.id = ++slot.nextId;
    call.sentAt = Date.now();
    slot.sent.push(call);
    const { file, quota, kind } = call.db;
    const request: SqlRequest = { id: call.id, file, quota, kind, method: call.method, args: call.args, deadline: call.deadline };
    slot.child.send(request);
    if (slot.sent.length === 1) this.#watch(slot);
  }

  /** Arm the deadline of the call the process is running now: past it, the process is killed. */
  #watch(slot: Slot): void {
    clearTimeout(slot.timer);
    const running = slot.sent[0];
    if (!running) return;
    slot.timer = setTimeout(
      () => {
        if (slot.sent[0] !== running || slot.dead) return;
        slot.interrupted = running;
        slot.child.kill('SIGKILL');
      },
      Math.max(0, running.deadline - Date.now()),
    );
  }

  #answered(slot: Slot, reply: SqlReply): void {
    const call = slot.sent[0];
    if (!call || reply.id !== call.id) {
      slot.child.kill('SIGKILL'); // out of step: trust nothing more from it
      return;
    }
    slot.sent.shift();
    this.#watch(slot);
    const db = call.db;
    this.#transaction(db, reply.inTransaction, call.deadline);
    if ('ok' in reply) this.#settle(call, undefined, reply.ok);
    else this.#settle(call, reply.sql ? new SqlError(reply.error, reply.refusal) : new Error(reply.error));
    if (db.waiting.length) this.#pump(db);
    else if (slot.sent.length === 0 && !db.inTransaction) this.#release(db);
  }

  /** Track whether `db` has a transaction open; one still open at its deadline is rolled back. */
  #transaction(db: DbState, open: boolean, deadline: number): void {
    if (open === db.inTransaction) return;
    db.inTransaction = open;
    clearTimeout(db.txTimer);
    db.txTimer = undefined;
    if (!open) return;
    db.txTimer = setTimeout(
      () => {
        if (!db.inTransaction) return;
        // The worker was stopped at its limit between begin and commit: its transaction must not hold the lease (or the write lock).
        this.#call(db, 'rollback', [], Date.now() + ROLLBACK_MS).catch(() => {});
      },
      Math.max(0, deadline - Date.now()),
    );
  }

  /** A process ended (killed at a deadline, crashed, or shut down): fail what it had, free its lease. */
  #lost(slot: Slot, how: string): void {
    slot.dead = true;
    clearTimeout(slot.timer);
    const i = this.#slots.indexOf(slot);
    if (i >= 0) this.#slots.splice(i, 1);
    const db = slot.lease;
    const hadTransaction = db?.inTransaction ?? false;
    for (const call of slot.sent.splice(0)) {
      const ran = Date.now() - (call.sentAt ?? Date.now());
      const lost = hadTransaction ? '; the open transaction was rolled back' : '; nothing of it was written';
      if (call === slot.interrupted)
        this.#settle(call, new SqlError(`SQL interrupted at the worker's time limit: the statement was still running after ${ran} ms${lost}`));
      else if (slot.interrupted)
        this.#settle(call, new SqlError(`storage call not run: an earlier statement on this database was interrupted at the worker's time limit${lost}`));
      else this.#settle(call, new SqlError(`storage call failed: the SQL process ended (${how})${lost}; retry`));
    }
    if (db) {
      this.#transaction(db, false, 0);
      this.#release(db);
    }
  }

  #release(db: DbState): void {
    const slot = db.slot;
    if (!slot) return;
    db.slot = undefined;
    slot.lease = undefined;
    const n = (this.#leases.get(db.tenant) ?? 1) - 1;
    if (n > 0) this.#leases.set(db.tenant, n);
    else this.#leases.delete(db.tenant);
    if (db.waiting.length) this.#pump(db);
    // A lease came free: the first waiting database that may take one does.
    for (let i = 0; i < this.#queue.length && !this.#closed; ) {
      const next = this.#queue[i]!;
      if (next.waiting.length === 0) {
        this.#queue.splice(i, 1);
        continue;
      }
      this.#pump(next);
      if (next.slot) this.#queue.splice(i, 1);
      else i++;
    }
  }

  /** A call's deadline passed while it waited for a process. */
  #expire(call: Call): void {
    const i = call.db.waiting.indexOf(call);
    if (i < 0) return;
    call.db.waiting.splice(i, 1);
    this.#settle(
      call,
      new SqlError(
        `storage call not started: no SQL process came free before the worker's time limit (${this.#processes} in all, ${this.#perTenant} per tenant); try again`,
      ),
    );
  }

  #settle(call: Call, error: Error | undefined, value?: unknown): void {
    clearTimeout(call.timer);
    if (error) call.reject(error);
    else call.resolve(value);
  }
}

/** One database in the pool, as a capability uses it. */
export interface PooledDatabase {
  /** Run `method` before `deadline` (a Date.now() time) or fail with a SqlError saying why. */
  call(method: string, args: unknown[], deadline: number): Promise<unknown>;
}
