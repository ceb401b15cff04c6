import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../lib/log.ts';
import { checkCron, CronScheduler } from './cron.ts';
import type { CodeStore } from './store.ts';

test('cron expressions: five fields as Cloudflare takes them, checked by parsing', () => {
  assert.equal(checkCron(' */5  * * * * '), '*/5 * * * *');
  assert.equal(checkCron('0 12 * * MON-FRI'), '0 12 * * MON-FRI');
  assert.throws(() => checkCron('* * * *'), /five fields/);
  assert.throws(() => checkCron('* * * * * *'), /five fields/);
  assert.throws(() => checkCron('99 * * * *'), /not valid/);
});

test('the scheduler keeps jobs for current versions only, and a tick runs scheduled() in the worker’s cordon', async () => {
  // A store with one worker; its version changes as a deploy would. Six fields tick every second (the
  // admin API allows only five; the scheduler takes what croner takes, which lets this test see a tick).
  const worker = { id: 't/w', version: 'v1', codeKey: 'k1', cordon: 'standard' };
  let crons = ['* * * * * *'];
  const store = {
    workers: () => [worker],
    worker: (id: string) => (id === worker.id ? worker : undefined),
    bundleForKey: () => ({ bundle: { crons } }),
  } as unknown as CodeStore;
  const calls: [string, string, number][] = [];
  const runner = { scheduled: async (codeKey: string, cron: string, time: number) => (calls.push([codeKey, cron, time]), { ok: true }) };
  const s = new CronScheduler(
    store,
    (cordon) => (cordon === 'standard' ? (runner as never) : undefined),
    createLogger('test', {}, () => {}),
  );
  s.refresh();
  assert.deepEqual(s.scheduled(), { 't/w': ['* * * * * *'] });
  for (let i = 0; i < 40 && calls.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(calls.length >= 1, 'a tick ran scheduled()');
  assert.equal(calls[0]![0], 'k1');
  assert.equal(calls[0]![1], '* * * * * *');
  assert.ok(Math.abs(calls[0]![2] - Date.now()) < 5000);
  crons = [];
  Object.assign(worker, { version: 'v2', codeKey: 'k2' });
  s.refresh();
  assert.deepEqual(s.scheduled(), {}, 'the new version has no crons: the old job is gone');
  worker.cordon = 'elsewhere';
  assert.deepEqual(await s.run('t/w', '0 0 * * *'), { ok: false, error: 'no sandbox of cordon elsewhere is connected' });
  s.stop();
});
