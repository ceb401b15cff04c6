import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Keyring } from '../lib/rpc/index.ts';
import { SERVICE_ROLES, SERVICE_V8_FLAGS, serviceSpec } from './service-process.ts';

// A service passing bodies through allocates ArrayBuffers that die young. Counts the full (major)
// collections a process started with `flags` makes while 1 GiB of 64 KiB buffers is allocated and
// dropped over a small live heap: V8's default starts one every 64 MiB of them.
const CHURN = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
let major = 0;
new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++; }).observe({ entryTypes: ['gc'] });
for (let i = 0; i < 16384; i++) {
  Buffer.allocUnsafeSlow(64 * 1024)[0] = i;
  if (i % 64 === 0) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 50));
process.stdout.write(String(major));
`;
const majors = (flags: string[]) => Number(execFileSync(process.execPath, [...flags, '--input-type=module', '-e', CHURN], { encoding: 'utf8' }));

test('service processes: buffers that die young start no full garbage collection', () => {
  assert.ok(majors([]) >= 4, 'without the flags V8 collects fully every 64 MiB of buffers (the test can fail)');
  assert.equal(majors(SERVICE_V8_FLAGS), 0);
});

test('service processes: every role is started with the flags', () => {
  const secret = randomBytes(32);
  for (const role of SERVICE_ROLES) {
    const { nodeArgs } = serviceSpec(Keyring.forRole(secret, role, role === 'sandbox' ? 'a' : undefined));
    for (const flag of SERVICE_V8_FLAGS) assert.ok(nodeArgs.includes(flag), `${role} lacks ${flag}`);
  }
});

test('npm run bench: in-process sections get the same flags as the sandbox', async () => {
  const { scripts } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  for (const flag of SERVICE_V8_FLAGS) assert.ok(scripts.bench.includes(flag), `the bench script lacks ${flag}`);
});
