/**
 * freePort across processes: a port reserved by a live process is never handed out, one left by a
 * dead process is taken back, one process never gets a port twice, and its reservations go when it exits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PORTS = join(import.meta.dirname, 'ports.ts');

test('reserved ports: only the free and the stale are handed out, once each, and released at exit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-ports-test-'));
  try {
    const dead = Number(execFileSync(process.execPath, ['-p', 'process.pid'], { encoding: 'utf8' }));
    // Every port of the range but two is held by a live process (this one); of those two, one was left
    // by a process that has exited, the other was never reserved.
    let stale = 0;
    let open = 0;
    for (let port = 20_000; port < 32_000; port++) {
      if (stale === 0 && port % 997 === 0) stale = port;
      else if (open === 0 && port % 991 === 0) open = port;
      else writeFileSync(join(dir, String(port)), String(process.pid));
    }
    writeFileSync(join(dir, String(stale)), String(dead));
    const script = `import { freePort } from ${JSON.stringify(PORTS)}; console.log(JSON.stringify([await freePort(), await freePort()]));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, CORDON_TEST_PORTS_DIR: dir },
      timeout: 60_000,
    });
    const got = JSON.parse(out) as number[];
    assert.deepEqual([...got].sort(), [stale, open].sort());
    for (const port of got) assert.equal(existsSync(join(dir, String(port))), false, `port ${port} released at exit`);
    assert.equal(readFileSync(join(dir, String(stale + 1)), 'utf8'), String(process.pid), "another's reservation stays");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
