import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlightRecorder } from './flight-recorder.ts';

const fresh = () => join(mkdtempSync(join(tmpdir(), 'cordon-fr-')), 'run', 'sandbox.inflight');
const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as string[];

test('the file names the workers in flight: counted per request, shrinking lists stay valid JSON', () => {
  const file = fresh();
  const r = new FlightRecorder(file);
  assert.deepEqual(r.previous, []);
  const leaveA1 = r.enter('t/a-worker-with-a-long-name');
  const leaveA2 = r.enter('t/a-worker-with-a-long-name');
  const leaveB = r.enter('t/b');
  assert.deepEqual(onDisk(file), ['t/a-worker-with-a-long-name', 't/b']);
  leaveA1();
  leaveA1(); // twice is once
  assert.deepEqual(onDisk(file), ['t/a-worker-with-a-long-name', 't/b'], 'a second request of a is still running');
  leaveA2();
  assert.deepEqual(onDisk(file), ['t/b']);
  leaveB();
  assert.deepEqual(onDisk(file), []);
  r.close();
});

test('what a killed process left is read by the next one', () => {
  const file = fresh();
  const child = spawnSync(process.execPath, [
    '--input-type=module',
    '-e',
    `
    const { FlightRecorder } = await import(${JSON.stringify(new URL('./flight-recorder.ts', import.meta.url).href)});
    const r = new FlightRecorder(${JSON.stringify(file)});
    r.enter('t/finished')();
    r.enter('t/running');
    process.abort();
  `,
  ]);
  assert.equal(child.signal, 'SIGABRT');
  const next = new FlightRecorder(file);
  assert.deepEqual(next.previous, ['t/running']);
  next.close();
  assert.deepEqual(new FlightRecorder(file).previous, [], 'a clean stop leaves nothing to blame');
});
