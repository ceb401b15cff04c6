/**
 * The engine on its own, with real SQLite files, a controllable clock and a runner that plays the
 * isolate's part (replaying a program against the StepPort it is given), so time and restarts can be
 * driven exactly. The whole path through sandboxes is test/workflows.e2e.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../../lib/log.ts';
import { parseDuration, retryDelay } from '../../../lib/workflow-durations.ts';
import type { StepConfig, StepReply } from '../../../schemas/workflows.ts';
import { WorkflowEngine, type WorkflowError } from './engine.ts';
import type { StepPort } from './ports.ts';
import { WakeTimers } from './timers.ts';

const CONFIG: StepConfig = { retries: { limit: 2, delay: 1000, backoff: 'constant' }, timeout: 60_000 };
const SUSPEND = new Error('suspended');

/** What the isolate's step object does, in miniature. */
function stepsOver(port: StepPort, executions: Map<string, number>) {
  const counts = new Map<string, number>();
  const next = (name: string) => counts.set(name, (counts.get(name) ?? 0) + 1).get(name)!;
  const check = (r: StepReply) => {
    if (r.state === 'suspend') throw SUSPEND;
    if (r.state === 'error') throw Object.assign(new Error(r.message), { name: r.name });
    return r;
  };
  return {
    async do(name: string, fn: (attempt: number) => unknown) {
      const count = next(name);
      const r = check(await port.begin(name, count));
      if (r.state === 'done') return JSON.parse(r.value ?? 'null');
      const attempt = (r as { attempt: number }).attempt;
      executions.set(name, (executions.get(name) ?? 0) + 1);
      let outcome;
      try {
        outcome = { value: JSON.stringify(await fn(attempt)) };
      } catch (e) {
        outcome = { error: { name: 'Error', message: (e as Error).message }, nonRetryable: false };
      }
      return JSON.parse((check(await port.end(name, count, attempt, outcome, CONFIG)) as { value: string }).value);
    },
    async sleep(name: string, ms: number, now: number) {
      check(await port.sleep(name, next(name), now + ms));
    },
    async waitForEvent(name: string, type: string, timeoutMs: number) {
      return JSON.parse((check(await port.waitForEvent(name, next(name), type, timeoutMs)) as { value: string }).value);
    },
  };
}

function setup(dir = mkdtempSync(join(tmpdir(), 'cordon-wf-'))) {
  let now = 1_700_000_000_000;
  const executions = new Map<string, number>();
  let program: (s: ReturnType<typeof stepsOver>, now: number) => Promise<unknown> = async () => null;
  const runner = {
    async run(_key: string, _cls: string, _event: string, port: StepPort) {
      try {
        return { outcome: 'complete' as const, output: JSON.stringify(await program(stepsOver(port, executions), now)) };
      } catch (e) {
        if (e === SUSPEND) return { outcome: 'suspended' as const };
        return { outcome: 'errored' as const, name: 'Error', message: (e as Error).message };
      }
    },
  };
  const engine = new WorkflowEngine({
    dir,
    worker: () => ({ version: 'v'.repeat(64), cordon: 'standard' }),
    codeKeyFor: () => 'k'.repeat(43),
    runner: () => runner as never,
    log: createLogger('test', {}, () => {}),
    now: () => now,
  });
  return {
    dir,
    engine,
    executions,
    setProgram: (p: typeof program) => (program = p),
    advance: (ms: number) => {
      now += ms;
      engine.poke();
    },
  };
}

const settle = async (engine: WorkflowEngine, tenant: string, id: string, want: string) => {
  for (let i = 0; i < 200; i++) {
    if (engine.status({ tenant, workflow: 'flow', id }).status === want) return engine.status({ tenant, workflow: 'flow', id });
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.fail(`instance ${id} never became ${want}: ${engine.status({ tenant, workflow: 'flow', id }).status}`);
};

test('durations: milliseconds or "<n> <unit>"; retry delays by backoff', () => {
  assert.equal(parseDuration(1500, 'x'), 1500);
  assert.equal(parseDuration('10 seconds', 'x'), 10_000);
  assert.equal(parseDuration('1 hour', 'x'), 3_600_000);
  assert.equal(parseDuration('2 days', 'x'), 172_800_000);
  for (const bad of ['soon', '-1 second', -5, NaN, '1 fortnight', {}]) assert.throws(() => parseDuration(bad, 'the sleep'), /the sleep must be/);
  assert.deepEqual(
    [1, 2, 3].map((a) => retryDelay({ delay: 100, backoff: 'constant' }, a)),
    [100, 100, 100],
  );
  assert.deepEqual(
    [1, 2, 3].map((a) => retryDelay({ delay: 100, backoff: 'linear' }, a)),
    [100, 200, 300],
  );
  assert.deepEqual(
    [1, 2, 3].map((a) => retryDelay({ delay: 100, backoff: 'exponential' }, a)),
    [100, 200, 400],
  );
});

test('wake timers fire in time order, whatever order they were set in', () => {
  let now = 0;
  const fired: string[] = [];
  const t = new WakeTimers(
    (k) => fired.push(k),
    () => now,
  );
  for (const [at, k] of [
    [50, 'c'],
    [10, 'a'],
    [30, 'b'],
    [70, 'e'],
    [60, 'd'],
  ] as const)
    t.at(at, k);
  now = 60;
  t.poke();
  assert.deepEqual(fired, ['a', 'b', 'c', 'd']);
  now = 100;
  t.poke();
  assert.deepEqual(fired, ['a', 'b', 'c', 'd', 'e']);
  t.stop();
});

test('a sleeping instance holds no run; it wakes on the clock and completed steps are not run again', async () => {
  const { engine, executions, setProgram, advance } = setup();
  setProgram(async (s, now) => {
    const a = await s.do('a', () => 1);
    await s.sleep('nap', 60_000, now);
    const b = await s.do('b', () => a + 1);
    return { a, b };
  });
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, 'one', null);
  await settle(engine, 'acme', id, 'waiting');
  assert.equal(engine.sleeping, 1);
  advance(30_000);
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(engine.status({ tenant: 'acme', workflow: 'flow', id }).status, 'waiting', 'not yet');
  advance(30_000);
  const done = await settle(engine, 'acme', id, 'complete');
  assert.equal(done.output, '{"a":1,"b":2}');
  assert.deepEqual(Object.fromEntries(executions), { a: 1, b: 1 }, 'a ran once although run() was replayed');
  assert.deepEqual(
    done.steps.map((s) => `${s.name}:${s.type}:${s.status}`),
    ['a:do:complete', 'nap:sleep:complete', 'b:do:complete'],
  );
  engine.stop();
});

test('retries wait without a run, count attempts, and give up after limit + 1 attempts', async () => {
  const { engine, executions, setProgram, advance } = setup();
  setProgram(async (s) =>
    s.do('flaky', (attempt) => {
      throw new Error(`attempt ${attempt}`);
    }),
  );
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, null, null);
  for (let i = 0; i < 400 && engine.status({ tenant: 'acme', workflow: 'flow', id }).status !== 'errored'; i++) {
    if (engine.status({ tenant: 'acme', workflow: 'flow', id }).status === 'waiting') advance(1000);
    await new Promise((r) => setTimeout(r, 5));
  }
  const failed = await settle(engine, 'acme', id, 'errored');
  assert.deepEqual(failed.error, { name: 'Error', message: 'attempt 3' });
  assert.equal(failed.steps[0]!.attempts, 3);
  assert.equal(executions.get('flaky'), 3);
  engine.stop();
});

test('after a restart of the engine, unfinished instances go on from their records', async () => {
  const first = setup();
  first.setProgram(async (s, now) => {
    await s.do('a', () => 'x');
    await s.sleep('nap', 1000, now);
    return s.do('b', () => 'y');
  });
  await first.engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await first.engine.create({ tenant: 'acme', workflow: 'flow' }, 'survivor', null);
  await settle(first.engine, 'acme', id, 'waiting');
  first.engine.stop();

  const second = setup(first.dir);
  second.setProgram(async (s, now) => {
    await s.do('a', () => 'never');
    await s.sleep('nap', 999_999, now); // a replay computing another duration still wakes at the recorded time
    return s.do('b', () => 'y');
  });
  second.engine.recover();
  second.advance(1000);
  const done = await settle(second.engine, 'acme', id, 'complete');
  assert.equal(done.output, '"y"');
  assert.equal(second.executions.get('a'), undefined, 'the committed step did not run again');
  second.engine.stop();
});

test('tenants are apart; bad ids, oversized values and unknown workflows are refused clearly', async () => {
  const { engine } = setup();
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, 'mine', '{"x":1}');
  assert.throws(
    () => engine.status({ tenant: 'globex', workflow: 'flow', id }),
    (e: WorkflowError) => e.status === 404,
  );
  await assert.rejects(engine.create({ tenant: 'globex', workflow: 'flow' }, null, null), /no workflow flow in tenant globex/);
  await assert.rejects(
    engine.create({ tenant: 'acme', workflow: 'flow' }, 'mine', null),
    (e: WorkflowError) => e.status === 409 && /already in use/.test(e.message),
  );
  await assert.rejects(
    engine.create({ tenant: 'acme', workflow: 'flow' }, null, JSON.stringify('x'.repeat(1024 * 1024 + 1))),
    (e: WorkflowError) => e.status === 413,
  );
  await assert.rejects(engine.create({ tenant: 'acme', workflow: 'flow' }, null, '{not json'), (e: WorkflowError) => e.status === 400);
  assert.throws(() => engine.checkDeclarations('acme', 'acme/other', [{ name: 'flow', className: 'X' }]), /already hosted by worker acme\/w/);
  assert.deepEqual(
    await engine.createBatch({ tenant: 'acme', workflow: 'flow' }, [
      { id: 'mine', params: null },
      { id: 'new', params: null },
    ]),
    ['new'],
    'existing ids are skipped',
  );
  await assert.rejects(
    engine.createBatch(
      { tenant: 'acme', workflow: 'flow' },
      Array.from({ length: 101 }, () => ({ id: null, params: null })),
    ),
    /at most 100/,
  );
  await assert.rejects(engine.sendEvent({ tenant: 'acme', workflow: 'flow', id: 'nope' }, 'go', null), (e: WorkflowError) => e.status === 404);
  engine.stop();
});

test('an event sent while a waitForEvent is being written is taken, not left behind a sleeping instance', async () => {
  const { engine, setProgram } = setup();
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  let created!: (id: string) => void;
  const idOf = new Promise<string>((r) => (created = r));
  setProgram(async (s) => {
    // Sent in the same tick as the wait: its write joins the same group commit as the wait's. Were the
    // check for a buffered event made before that commit, the event would be stored after the check,
    // would find no step waiting to wake, and the instance would sleep for the whole timeout.
    const sent = engine.sendEvent({ tenant: 'acme', workflow: 'flow', id: await idOf }, 'go', '"yes"');
    const got = await s.waitForEvent('approval', 'go', 3_600_000);
    await sent;
    return got.payload;
  });
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, null, null);
  created(id);
  assert.equal((await settle(engine, 'acme', id, 'complete')).output, '"yes"');
  engine.stop();
});

test('a step port checks what the tenant sends, and a run that is not the current one is told to stop', async () => {
  const { engine } = setup();
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, 'p', null);
  const { StepPort } = await import('./ports.ts');
  const forged = new StepPort(engine, { tenant: 'acme', workflow: 'flow', id, run: 'not-the-current-run' });
  assert.deepEqual(await forged.begin('a', 1), { state: 'suspend' });
  assert.deepEqual(await forged.sleep('a', 1, Date.now()), { state: 'suspend' });
  assert.throws(() => forged.begin('x'.repeat(257), 1), /step name/);
  assert.throws(() => forged.begin('a', 0), /step count/);
  assert.throws(() => forged.end('a', 1, 1, { value: 'x'.repeat(1024 * 1024 + 2048) }, CONFIG), /outcome/);
  assert.throws(() => forged.end('a', 1, 1, { value: '1' }, { retries: { limit: -1, delay: 0, backoff: 'constant' }, timeout: 1 }), /config/);
  assert.throws(() => forged.waitForEvent('a', 1, 'bad type!', 10), /event type/);
  engine.stop();
});

test('watch: a watcher that comes after a step ended finds it in the first status (no step event will tell of it)', async () => {
  const { engine, setProgram, advance } = setup();
  setProgram(async (s, now) => {
    const a = await s.do('a', () => 1);
    await s.sleep('nap', 1000, now);
    return a;
  });
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, 'late', null);
  const ref = { tenant: 'acme', workflow: 'flow', id };
  await settle(engine, 'acme', id, 'waiting');
  const first: string[][] = [];
  const stop = engine.watch(ref, (c) => c.type === 'status' && first.push((c.status.steps ?? []).map((st) => `${st.name} ${st.status}`)));
  assert.ok(first[0]!.includes('a complete'), `the ended step is in the first status: ${JSON.stringify(first[0])}`);
  stop();
  advance(1000);
  await settle(engine, 'acme', id, 'complete');
  engine.stop();
});

test('watch: the status now, then each step end and status change once; nothing after it is stopped', async () => {
  const { engine, setProgram, advance } = setup();
  setProgram(async (s, now) => {
    const a = await s.do('a', () => 1);
    await s.sleep('nap', 1000, now);
    return a;
  });
  await engine.declare('acme', 'acme/w', [{ name: 'flow', className: 'Flow' }]);
  const id = await engine.create({ tenant: 'acme', workflow: 'flow' }, 'seen', null);
  const ref = { tenant: 'acme', workflow: 'flow', id };
  const told: string[] = [];
  const stop = engine.watch(ref, (c) => told.push(c.type === 'step' ? `step ${c.step.name} ${c.step.status}` : `status ${c.status.status}`));
  const late: string[] = [];
  const stopLate = engine.watch(ref, (c) => late.push(c.type));
  stopLate();
  await settle(engine, 'acme', id, 'waiting');
  advance(1000);
  await settle(engine, 'acme', id, 'complete');
  // The status now (queued, or running if the run started first), then each change once.
  assert.deepEqual(told.slice(told.indexOf('step a complete')), [
    'step a complete',
    'status waiting',
    'status running',
    'step nap complete',
    'status complete',
  ]);
  assert.match(told[0]!, /^status (queued|running)$/);
  assert.deepEqual(late, ['status'], 'a stopped watcher hears nothing more');
  stop();
  assert.equal(engine.watchedInstances, 0);
  assert.throws(() => engine.watch({ ...ref, id: 'nope' }, () => {}), /no instance nope/);
  engine.stop();
});
