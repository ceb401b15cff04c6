import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { type Account, Watchdogs } from './watchdog.ts';

const isolate = new ivm.Isolate({ memoryLimit: 32 });
const context = isolate.createContextSync();
after(() => isolate.dispose());

/** Some CPU in the isolate, run from here (synchronously: the samples around it see all of it). */
const burn = () => context.evalSync('{ let x = 0; for (let i = 0; i < 2e6; i++) x = (x * 31 + i) | 0; x }');

function watchdogs(cpuMs = 10_000) {
  const kills: string[] = [];
  const dogs = new Watchdogs(isolate, { kill: (limit) => kills.push(limit), gone: () => {}, cpuMs: () => cpuMs, probe: () => Promise.resolve() });
  return { dogs, kills };
}
const LIMITS = { cpuMs: 10_000, wallMs: 60_000 };

test("a task's CPU is charged to its owners only: a request waiting meanwhile pays nothing", () => {
  const { dogs } = watchdogs();
  const [busy, waiting] = [dogs.arm(LIMITS), dogs.arm(LIMITS)];
  const end = dogs.begin(new Set([busy.account]));
  burn();
  end();
  assert.ok(busy.account.used > 0n);
  assert.equal(waiting.account.used, 0n);
  busy.stop();
  waiting.stop();
});

test('CPU with no task outstanding, or in a task of unknown owners, is charged to every request in flight', () => {
  const { dogs } = watchdogs();
  const [a, b] = [dogs.arm(LIMITS), dogs.arm(LIMITS)];
  burn();
  const end = dogs.begin('all');
  burn();
  end();
  assert.ok(a.account.used > 0n);
  assert.equal(a.account.used, b.account.used);
  a.stop();
  b.stop();
});

test("what the isolate starts belongs to its oldest task's owners (the one running); with none outstanding, to everyone", () => {
  const { dogs } = watchdogs();
  const [a, b] = [dogs.arm(LIMITS), dogs.arm(LIMITS)];
  assert.equal(dogs.owners(), 'all');
  const first = dogs.begin(new Set([a.account]));
  const queued = dogs.begin(new Set([b.account]));
  assert.deepEqual([...(dogs.owners() as ReadonlySet<Account>)], [a.account]);
  burn();
  first();
  assert.equal(b.account.used, 0n, 'a task queued behind another is not charged its CPU');
  assert.deepEqual([...(dogs.owners() as ReadonlySet<Account>)], [b.account]);
  const unknown = dogs.begin('all');
  queued();
  assert.equal(dogs.owners(), 'all');
  unknown();
  a.stop();
  b.stop();
});

test('a task whose owners all ended goes on from what they had used, on an account it passes on, and is stopped at the limit', () => {
  const { dogs, kills } = watchdogs(1);
  const a = dogs.arm({ cpuMs: 1, wallMs: 60_000 });
  const end = dogs.begin(new Set([a.account]));
  a.stop();
  const [own] = dogs.owners() as ReadonlySet<Account>;
  assert.ok(own && own !== a.account, 'an account of its own');
  assert.equal(own.used, a.account.used, "it starts from its owner's");
  assert.deepEqual(kills, []);
  burn();
  end();
  assert.deepEqual(kills, ['cpu'], 'over the limit of 1 ms: the isolate is ended');
});

test('a request over its limit ends the isolate; one under it does not', () => {
  const { dogs, kills } = watchdogs();
  const small = dogs.arm({ cpuMs: 1, wallMs: 60_000 });
  const big = dogs.arm(LIMITS);
  const end = dogs.begin(new Set([big.account]));
  burn();
  end();
  assert.deepEqual(kills, [], "the small one was waiting: the big one's CPU is not its");
  const mine = dogs.begin(new Set([small.account]));
  burn();
  mine();
  assert.deepEqual(kills, ['cpu']);
  small.stop();
  big.stop();
});

test('a task of unknown owners left with no request in flight goes on from the CPU it has used', () => {
  const { dogs } = watchdogs();
  const a = dogs.arm(LIMITS);
  const end = dogs.begin('all');
  burn();
  a.stop();
  const [own] = dogs.owners() as ReadonlySet<Account>;
  assert.ok(own && own !== a.account && a.account.used > 0n);
  assert.equal(own.used, a.account.used);
  end();
});
