import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './log.ts';

test('log: lines below the level are dropped, in child loggers too', () => {
  const lines: string[] = [];
  const log = createLogger('svc', { a: 1 }, (l) => lines.push(l), 'warn');
  log.info('quiet');
  log.child({ b: 2 }).debug('quiet too');
  log.child({ b: 2 }).warn('loud');
  assert.equal(lines.length, 1);
  assert.deepEqual({ ...JSON.parse(lines[0]!), time: undefined }, { time: undefined, level: 'warn', service: 'svc', msg: 'loud', a: 1, b: 2 });
});
