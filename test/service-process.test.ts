/** One service on its own: health detail while the mesh is incomplete, clean stop on SIGTERM, structured logs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

test('a bad setting stops a service, and `cordon start`, at start with one line naming it and what it expects', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-bad-'));
  const run = (args: string[], env: NodeJS.ProcessEnv) =>
    spawnSync(
      process.execPath,
      args.map((a, i) => (i === 0 ? join(ROOT, a) : a)),
      { env: { ...process.env, CORDON_DATA_DIR: dataDir, ...env }, encoding: 'utf8', timeout: 60_000 },
    );
  try {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [
        ['services/ingress/main.ts'],
        { CORDON_MAX_REQUEST_MB: 'lots' },
        /^cordon ingress: CORDON_MAX_REQUEST_MB must be a whole number of megabytes, at least 1; got "lots"$/,
      ],
      [
        ['services/egress/main.ts'],
        { CORDON_EGRESS_RATE: '-5' },
        /^cordon egress: CORDON_EGRESS_RATE must be a whole number of requests per second, at least 1; got "-5"$/,
      ],
      [
        ['services/supervisor/main.ts'],
        { CORDON_SQL_PROCESSES: '0' },
        /^cordon supervisor: CORDON_SQL_PROCESSES must be a whole number of processes, at least 1; got "0"$/,
      ],
      [
        ['services/sandbox/main.ts'],
        { CORDON_CORDON: 'standard', CORDON_ISOLATE_IDLE_SECONDS: 'soon' },
        /^cordon sandbox: CORDON_ISOLATE_IDLE_SECONDS must be a whole number of seconds/,
      ],
      [
        ['cli/main.ts', 'start'],
        { CORDON_HEADERS_TIMEOUT_MS: '10s' },
        /^cordon: CORDON_HEADERS_TIMEOUT_MS must be a whole number of milliseconds, at least 1; got "10s"$/,
      ],
      [['cli/main.ts', 'workers'], { CORDON_ADMIN_PORT: 'admin' }, /^cordon: CORDON_ADMIN_PORT must be a port number \(0-65535\); got "admin"$/],
    ];
    for (const [args, env, line] of cases) {
      const r = run(args, env);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trim(), line);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const file = join(dataDir, 'cordon.json');
    writeFileSync(file, JSON.stringify({ maxWebsocket: 10 }));
    const r = run(['cli/main.ts', 'start'], { CORDON_CONFIG: file });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr.trim(), /^cordon: config file .*cordon\.json: unknown setting "maxWebsocket"; known: .*maxWebsockets/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
