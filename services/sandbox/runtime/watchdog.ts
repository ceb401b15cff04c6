/**
 * The CPU-time and wall-time watchdogs of an isolate's requests, invocations and loading. Either one
 * firing ends the isolate (the only reliable way to stop it: isolated-vm's `timeout` does not cover
 * promise continuations).
 *
 * CPU time is per request (docs/limits.md): isolated-vm only counts the whole isolate's CPU, so the host
 * keeps a ledger of the work it has handed the isolate (tasks: a batch of requests, a timer firing, a
 * capability call's answer, a stream pull, ...), each on behalf of the requests it belongs to (its
 * owners), in the order it queued them. isolated-vm runs an isolate's tasks one at a time in that
 * order, so the oldest task not yet over is the one running: the isolate's CPU, sampled whenever the
 * ledger changes and every WATCHDOG_MS, is charged to its owners, and work it starts (a call, a timer)
 * belongs to them. A request waiting on an upstream is charged nothing while others run. Never less
 * than someone: a task whose owners all ended is charged to an account of its own that goes on from
 * what they (or it) had used, and is passed on to what it starts; CPU with no task outstanding, or in a
 * task of unknown owners, is charged to every request in flight. The host sees a task end a little
 * late, so for that moment the next one's CPU goes to the one before: imprecise, never uncharged.
 */
import type ivm from 'isolated-vm';

const WATCHDOG_MS = 10;
/**
 * A capability call is told the worker's time ends this much before the wall-time watchdog fires (a
 * tenth of the limit for short ones), so a storage call interrupted at its deadline still reaches the
 * worker as an error it can handle rather than the isolate being disposed under it.
 */
const CALL_MARGIN_MS = 250;

/** CPU charged to one request (or invocation, or orphaned piece of work), against its limit. */
export class Account {
  used = 0n;
  stopped = false;
  readonly limit: bigint;
  constructor(cpuMs: number) {
    this.limit = BigInt(cpuMs) * 1_000_000n;
  }
}

/** The CPU and wall-time watchdogs of one request (or of loading the worker). */
export interface Watch {
  readonly deadline: number;
  /** What this request's CPU is charged to (the owner of its tasks). */
  readonly account: Account;
  /** Stop the wall-time watchdog only (waitUntil outlives it, without being killed by it). */
  stopWall(): void;
  stop(): void;
}

/** Whom a task's CPU is charged to: some accounts, or (unknown) every request in flight. */
export type Owners = ReadonlySet<Account> | 'all';

interface Task {
  owners: Owners;
  /** The isolate's CPU while it was outstanding. */
  spent: bigint;
  /** Charged when none of its owners is live any more (or, for 'all', when no request is in flight). */
  own?: Account;
}

export interface WatchdogHooks {
  /** A limit was broken: end the isolate. */
  kill(limit: 'cpu' | 'wall'): void;
  /** isolated-vm disposed the isolate itself (out of memory): answers will not come. */
  gone(): void;
  /** The worker's CPU limit: that of an orphaned task's own account. */
  cpuMs(): number;
  /**
   * A trivial call into the isolate: isolated-vm runs an isolate's tasks in the order they were queued,
   * so when it settles, every task queued before it has run, microtasks included.
   */
  probe(): Promise<unknown>;
}

/** The watchdogs armed on one isolate now: the earliest deadline ends it. */
export class Watchdogs {
  readonly #isolate: ivm.Isolate;
  readonly #hooks: WatchdogHooks;
  readonly #armed = new Set<Watch>();
  readonly #tasks = new Set<Task>();
  #cpu: bigint | undefined;
  #interval: NodeJS.Timeout | undefined;
  /** Tasks whose end the host cannot see, each ended by the next probe (#probe). */
  #unseen: (() => void)[] = [];

  constructor(isolate: ivm.Isolate, hooks: WatchdogHooks) {
    this.#isolate = isolate;
    this.#hooks = hooks;
  }

  /** Arm the CPU-time and wall-time watchdogs; either disposes the isolate when it fires. */
  arm({ cpuMs, wallMs }: { cpuMs: number; wallMs: number }): Watch {
    this.#wake();
    this.#sample();
    const wall = setTimeout(() => this.#hooks.kill('wall'), wallMs);
    const watch: Watch = {
      deadline: Date.now() + wallMs,
      account: new Account(cpuMs),
      stopWall: () => clearTimeout(wall),
      stop: () => {
        clearTimeout(wall);
        if (!this.#armed.has(watch)) return;
        // What it used up to now is its own; from here on its tasks' CPU goes to their other owners, or their own account.
        this.#sample();
        watch.account.stopped = true;
        this.#armed.delete(watch);
        this.#idle();
      },
    };
    this.#armed.add(watch);
    this.#wake();
    return watch;
  }

  /** Whether anything handed to the isolate has not ended: a watch armed (a request, a call) or a task in the ledger. */
  get busy(): boolean {
    return this.#armed.size > 0 || this.#tasks.size > 0;
  }

  /** The owners of what the isolate is doing now (its oldest task): a call, timer or pipe it starts now belongs to them. */
  owners(): Owners {
    const running = this.#running();
    return running ? this.#charged(running) : 'all';
  }

  /** The oldest task not yet over: the one the isolate runs (a Set keeps the order tasks were added in). */
  #running(): Task | undefined {
    for (const t of this.#tasks) return t;
    return undefined;
  }

  /** Work handed to the isolate on behalf of `owners`, until `done` settles. */
  track<T>(owners: Owners, done: Promise<T>): Promise<T> {
    const end = this.begin(owners);
    done.then(end, end);
    return done;
  }

  /**
   * Work for the isolate whose end the host does not see (a call whose result is a promise: it settles
   * when the worker's promise does, not when the task that started it ends; an answer to a call the
   * isolate made): on behalf of `owners` until a probe queued after it returns. Queued from the next
   * turn, once isolated-vm has queued the work itself (an answer is queued when the host's promise settles).
   */
  queued(owners: Owners): void {
    this.#unseen.push(this.begin(owners));
    if (this.#unseen.length === 1) setImmediate(() => this.#probe());
  }

  /** One probe for the tasks queued so far: they end when it returns. */
  #probe(): void {
    const ends = this.#unseen;
    this.#unseen = [];
    const over = () => {
      for (const end of ends) end();
    };
    if (this.#isolate.isDisposed) return over();
    this.#hooks.probe().then(over, over);
  }

  /** Work handed to the isolate on behalf of `owners`: call the function returned when it is over. */
  begin(owners: Owners): () => void {
    this.#wake();
    this.#sample();
    const task: Task = { owners, spent: 0n };
    this.#tasks.add(task);
    return () => {
      if (!this.#tasks.has(task)) return;
      this.#sample();
      this.#tasks.delete(task);
      this.#idle();
    };
  }

  /** Whom task `t`'s CPU goes to now. */
  #charged(t: Task): ReadonlySet<Account> | 'all' {
    if (t.owners === 'all') {
      if (this.#armed.size) return 'all';
    } else {
      let live: Set<Account> | undefined;
      for (const a of t.owners) if (!a.stopped) (live ??= new Set()).add(a);
      if (live) return live;
    }
    if (!t.own) {
      // Its owners' work carrying on: it starts from what they (or it, so far) had used, so a loop is stopped at the same limit.
      t.own = new Account(this.#hooks.cpuMs());
      t.own.used = t.spent;
      if (t.owners !== 'all') for (const a of t.owners) if (a.used > t.own.used) t.own.used = a.used;
    }
    return new Set([t.own]);
  }

  /** The isolate's CPU since the last sample, charged; a limit broken ends the isolate. */
  #sample(): void {
    if (this.#isolate.isDisposed) {
      if (this.#interval) {
        this.#stopInterval();
        this.#hooks.gone();
      }
      return;
    }
    const now = this.#isolate.cpuTime;
    const delta = this.#cpu === undefined ? 0n : now - this.#cpu;
    this.#cpu = now;
    if (delta <= 0n) return;
    const running = this.#running();
    if (running) running.spent += delta;
    // With no task outstanding, CPU of unknown origin: every request in flight pays, as before.
    const charged = running ? this.#charged(running) : 'all';
    const accounts = charged === 'all' ? [...this.#armed].map((w) => w.account) : charged;
    let over = false;
    for (const a of accounts) {
      a.used += delta;
      if (a.used > a.limit) over = true;
    }
    if (over) this.#hooks.kill('cpu');
  }

  /** Something to watch: the tick runs (CPU used while nothing was watched is nobody's). */
  #wake(): void {
    if (this.#interval || this.#isolate.isDisposed) return;
    this.#cpu = this.#isolate.cpuTime;
    this.#interval = setInterval(() => this.#sample(), WATCHDOG_MS);
  }

  /** Nothing to watch any more: no tick. */
  #idle(): void {
    if (this.#armed.size === 0 && this.#tasks.size === 0) this.#stopInterval();
  }

  #stopInterval(): void {
    clearInterval(this.#interval);
    this.#interval = undefined;
  }

  /** What the worker has left before the first of its deadlines, less the margin (CALL_MARGIN_MS). */
  timeLeft(wallMs: number): number | undefined {
    let deadline = Infinity;
    for (const w of this.#armed) deadline = Math.min(deadline, w.deadline);
    if (deadline === Infinity) return undefined;
    const margin = Math.min(CALL_MARGIN_MS, wallMs / 10);
    return Math.max(0, Math.floor(deadline - Date.now() - margin));
  }
}
