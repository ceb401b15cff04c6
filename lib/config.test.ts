import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminMaxBodyBytes, cordonList, loadConfig, sandboxCeilingMb, sandboxSettings, tenantOrigins } from './config.ts';

test('config: defaults, environment, and a config file that the environment overrides', () => {
  const d = loadConfig({});
  assert.equal(d.httpPort, 8080);
  assert.equal(d.httpsPort, 8443);
  assert.equal(d.adminPort, 8081);
  assert.match(d.dataDir, /\.cordon$/);
  assert.deepEqual(cordonList({}), ['standard', 'untrusted']);
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-'));
  const file = join(dir, 'cordon.json');
  writeFileSync(file, JSON.stringify({ httpPort: 9000, adminPort: 9001, cordons: ['a', 'b'] }));
  const c = loadConfig({ CORDON_CONFIG: file, CORDON_ADMIN_PORT: '9100' });
  assert.equal(c.httpPort, 9000);
  assert.equal(c.adminPort, 9100);
  assert.deepEqual(cordonList({ CORDON_CONFIG: file }), ['a', 'b']);
});

test('config: bad values are refused with the setting named', () => {
  assert.throws(() => loadConfig({ CORDON_HTTP_PORT: 'eighty' }), /CORDON_HTTP_PORT must be a port number/);
  assert.throws(() => loadConfig({ CORDON_ADMIN_PORT: '70000' }), /CORDON_ADMIN_PORT/);
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-'));
  const file = join(dir, 'bad.json');
  writeFileSync(file, JSON.stringify({ httpPortt: 1 }));
  assert.throws(() => loadConfig({ CORDON_CONFIG: file }), /unknown setting "httpPortt"/);
  writeFileSync(file, '{not json');
  assert.throws(() => loadConfig({ CORDON_CONFIG: file }), /cannot read the config file/);
  assert.throws(() => loadConfig({ CORDON_CONFIG: join(dir, 'missing.json') }), /cannot read the config file/);
});

test('config: sandbox settings (isolates kept warm, memory budget, idle time) with defaults and refusals', () => {
  assert.deepEqual(sandboxSettings({}), { maxIsolates: 1000, memoryBudgetMb: 2048, idleMs: 300_000 });
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-'));
  const file = join(dir, 'cordon.json');
  writeFileSync(file, JSON.stringify({ sandboxMemoryMb: 512, isolateIdleSeconds: 60 }));
  assert.deepEqual(sandboxSettings({ CORDON_CONFIG: file, CORDON_MAX_ISOLATES: '50' }), { maxIsolates: 50, memoryBudgetMb: 512, idleMs: 60_000 });
  assert.throws(() => sandboxSettings({ CORDON_SANDBOX_MEMORY_MB: '0' }), /CORDON_SANDBOX_MEMORY_MB must be a positive whole number/);
  assert.throws(() => sandboxSettings({ CORDON_ISOLATE_IDLE_SECONDS: '1.5' }), /CORDON_ISOLATE_IDLE_SECONDS/);
  assert.equal(sandboxCeilingMb({}), 2048 + 1024, 'the ceiling follows the budget by default');
  assert.equal(sandboxCeilingMb({ CORDON_CONFIG: file }), 512 + 1024);
  assert.equal(sandboxCeilingMb({ CORDON_SANDBOX_MEMORY_MAX_MB: '1500' }), 1500);
  assert.throws(() => sandboxCeilingMb({ CORDON_SANDBOX_MEMORY_MAX_MB: 'lots' }), /CORDON_SANDBOX_MEMORY_MAX_MB must be a positive whole number/);
});

test('config: the admin body cap and the origins tenants may declare', () => {
  assert.equal(adminMaxBodyBytes({}), 72 * 1024 * 1024);
  assert.equal(adminMaxBodyBytes({ CORDON_ADMIN_MAX_BODY_MB: '8' }), 8 * 1024 * 1024);
  assert.throws(() => adminMaxBodyBytes({ CORDON_ADMIN_MAX_BODY_MB: '0' }), /CORDON_ADMIN_MAX_BODY_MB/);
  assert.deepEqual(tenantOrigins({}), []);
  assert.deepEqual(tenantOrigins({ CORDON_TENANT_ORIGINS: 'http://10.0.0.5, acme=https://db.internal.example:8443/' }), [
    { tenant: undefined, origin: 'http://10.0.0.5:80' },
    { tenant: 'acme', origin: 'https://db.internal.example:8443' },
  ]);
  assert.throws(() => tenantOrigins({ CORDON_TENANT_ORIGINS: 'acme=http://10.0.0.5/path' }), /CORDON_TENANT_ORIGINS: .*scheme:\/\/host/);
});
