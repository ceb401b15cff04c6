/** One service on its own: health detail while the mesh is incomplete, clean stop on SIGTERM, structured logs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, ROOT, waitFor } from './helpers/mesh.ts';

test('a lone supervisor answers /healthz 503 with per-service detail, logs JSON lines and stops cleanly on SIGTERM', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-sup-'));
  const adminPort = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'services/supervisor/main.ts')], {
    env: { ...process.env, CORDON_DATA_DIR: dataDir, CORDON_ADMIN_PORT: String(adminPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  try {
    const res = await waitFor('the admin port', async () => fetch(`http://127.0.0.1:${adminPort}/healthz`));
    assert.equal(res.status, 503);
    const body = (await res.json()) as { status: string; services: Record<string, string> };
    assert.equal(body.services.supervisor, 'up');
    assert.equal(body.services.ingress, 'down');
    assert.equal(body.services['sandbox:standard'], 'down');
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const lines = err.trim().split('\n');
    for (const line of lines) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry.service, 'supervisor');
      assert.ok(entry.time && entry.level && entry.msg);
    }
    assert.ok(lines.some((l) => l.includes('"stopping"')));
  } finally {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
