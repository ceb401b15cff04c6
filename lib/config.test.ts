import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminMaxBodyBytes, cordonList, loadConfig, loadSettings, metaOf, sandboxCeilingMb, sandboxSettings, settingFields } from './config.ts';

const configFile = (content: unknown) => {
  const file = join(mkdtempSync(join(tmpdir(), 'cordon-cfg-')), 'cordon.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
};

test('config: defaults, environment, and a config file that the environment overrides', () => {
  const d = loadConfig({});
  assert.equal(d.httpPort, 8080);
  assert.equal(d.httpsPort, 8443);
  assert.equal(d.adminPort, 8081);
  assert.match(d.dataDir, /\.cordon$/);
  assert.deepEqual(cordonList({}), ['standard', 'untrusted']);
  const file = configFile({ httpPort: 9000, adminPort: 9001, cordons: ['a', 'b'] });
  const c = loadConfig({ CORDON_CONFIG: file, CORDON_ADMIN_PORT: '9100' });
  assert.equal(c.httpPort, 9000);
  assert.equal(c.adminPort, 9100);
  assert.deepEqual(cordonList({ CORDON_CONFIG: file }), ['a', 'b']);
  assert.equal(loadConfig({ CORDON_HTTP_PORT: '' }).httpPort, 8080, 'an empty variable counts as unset');
});

test('config: every setting of every service, from the environment or the file, in its section', () => {
  const s = loadSettings({ CORDON_MAX_REQUEST_MB: '5', CORDON_EGRESS_RATE: '7', CORDON_EGRESS_DNS: '10.0.0.53:53,[::1]:5353', CORDON_DRIFT_MS: '500' });
  assert.equal(s.ingress.maxRequestMb, 5);
  assert.equal(s.egress.egressRate, 7);
  assert.deepEqual(s.egress.egressDns, ['10.0.0.53:53', '[::1]:5353']);
  assert.equal(s.mesh.driftMs, 500);
  assert.equal(loadSettings({}).egress.egressDns, undefined, "unset: the system's resolvers");
  const file = configFile({ maxWebsockets: 20, egressDns: ['1.1.1.1'], headersTimeoutMs: 2000, adminHost: '::1' });
  const f = loadSettings({ CORDON_CONFIG: file });
  assert.deepEqual([f.ingress.maxWebsockets, f.egress.egressDns, f.ingress.headersTimeoutMs, f.supervisor.adminHost], [20, ['1.1.1.1'], 2000, '::1']);
});

test('config: a bad value is refused in one line naming the setting and what it expects', () => {
  const refused = (env: NodeJS.ProcessEnv, message: RegExp) =>
    assert.throws(
      () => loadSettings(env),
      (e: Error) => {
        assert.match(e.message, message);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      },
    );
  refused({ CORDON_MAX_REQUEST_MB: 'lots' }, /^CORDON_MAX_REQUEST_MB must be a whole number of megabytes, at least 1; got "lots"$/);
  refused({ CORDON_EGRESS_RATE: '-5' }, /^CORDON_EGRESS_RATE must be a whole number of requests per second, at least 1; got "-5"$/);
  refused({ CORDON_EGRESS_TIMEOUT_MS: '1.5' }, /CORDON_EGRESS_TIMEOUT_MS must be a whole number of milliseconds/);
  refused({ CORDON_HTTP_PORT: 'eighty' }, /CORDON_HTTP_PORT must be a port number/);
  refused({ CORDON_ADMIN_PORT: '70000' }, /CORDON_ADMIN_PORT must be a port number \(0-65535\); got "70000"/);
  refused({ CORDON_RESOURCES_PER_TENANT: '0' }, /^CORDON_RESOURCES_PER_TENANT must be a whole number of resources, at least 1; got "0"$/);
  refused({ CORDON_RESOURCE_QUOTA_MB: 'big' }, /^CORDON_RESOURCE_QUOTA_MB must be a whole number of megabytes/);
  refused({ CORDON_DRIFT_MS: '50' }, /CORDON_DRIFT_MS must be a whole number of milliseconds, at least 100/);
  refused({ CORDON_CORDONS: 'Standard' }, /CORDON_CORDONS must be cordon names/);
  refused({ CORDON_EGRESS_DNS: 'not a server' }, /CORDON_EGRESS_DNS must be DNS servers/);
  refused({ CORDON_LOG_LEVEL: 'verbose' }, /^CORDON_LOG_LEVEL must be one of debug, info, warn, error; got "verbose"$/);
  refused(
    { CORDON_CONFIG: configFile({ maxRequestMb: -1 }) },
    /^"maxRequestMb" \(CORDON_MAX_REQUEST_MB\) in the config file .*cordon\.json must be a whole number of megabytes, at least 1; got -1$/,
  );
  refused({ CORDON_CONFIG: configFile({ httpPortt: 1 }) }, /unknown setting "httpPortt"; known: dataDir, /);
  refused({ CORDON_CONFIG: configFile('{not json') }, /cannot read the config file/);
  refused({ CORDON_CONFIG: join(tmpdir(), 'cordon-no-such-file.json') }, /cannot read the config file/);
  refused({ CORDON_CONFIG: configFile([1]) }, /must hold a JSON object/);
});

test('config: sandbox settings (isolates kept warm, memory budget, idle time) with defaults and refusals', () => {
  const dynamic = { perWorker: 32, idleMs: 60_000, loadsPerSecond: 500, keptCodeBytes: 64 * 1024 * 1024 };
  assert.deepEqual(sandboxSettings(loadSettings({})), { maxIsolates: 1000, memoryBudgetMb: 2048, idleMs: 300_000, objectIdleMs: 70_000, dynamic });
  const file = configFile({ sandboxMemoryMb: 512, isolateIdleSeconds: 60, objectIdleSeconds: 5 });
  assert.deepEqual(sandboxSettings(loadSettings({ CORDON_CONFIG: file, CORDON_MAX_ISOLATES: '50' })), {
    maxIsolates: 50,
    memoryBudgetMb: 512,
    idleMs: 60_000,
    objectIdleMs: 5000,
    dynamic,
  });
  assert.deepEqual(
    sandboxSettings(loadSettings({ CORDON_DYNAMIC_WORKERS_PER_WORKER: '4', CORDON_DYNAMIC_WORKER_IDLE_SECONDS: '5', CORDON_DYNAMIC_WORKER_KEPT_CODE_KB: '8' }))
      .dynamic,
    { perWorker: 4, idleMs: 5000, loadsPerSecond: 500, keptCodeBytes: 8192 },
  );
  assert.throws(() => sandboxSettings(loadSettings({ CORDON_DYNAMIC_WORKERS_PER_WORKER: '0' })), /CORDON_DYNAMIC_WORKERS_PER_WORKER/);
  assert.throws(
    () => sandboxSettings(loadSettings({ CORDON_SANDBOX_MEMORY_MB: '0' })),
    /CORDON_SANDBOX_MEMORY_MB must be a whole number of megabytes, at least 1/,
  );
  assert.throws(() => sandboxSettings(loadSettings({ CORDON_ISOLATE_IDLE_SECONDS: '1.5' })), /CORDON_ISOLATE_IDLE_SECONDS/);
  assert.equal(sandboxCeilingMb({}), 2048 + 1024, 'the ceiling follows the budget by default');
  assert.equal(sandboxCeilingMb({ CORDON_CONFIG: file }), 512 + 1024);
  assert.equal(sandboxCeilingMb({ CORDON_SANDBOX_MEMORY_MAX_MB: '1500' }), 1500);
  assert.throws(() => sandboxCeilingMb({ CORDON_SANDBOX_MEMORY_MAX_MB: 'lots' }), /CORDON_SANDBOX_MEMORY_MAX_MB must be a whole number of megabytes/);
});

test('config: the admin body cap and the origins tenants may declare', () => {
  assert.equal(adminMaxBodyBytes({}), 72 * 1024 * 1024);
  assert.equal(adminMaxBodyBytes({ CORDON_ADMIN_MAX_BODY_MB: '8' }), 8 * 1024 * 1024);
  assert.throws(() => adminMaxBodyBytes({ CORDON_ADMIN_MAX_BODY_MB: '0' }), /CORDON_ADMIN_MAX_BODY_MB/);
  assert.deepEqual(loadSettings({}).supervisor.tenantOrigins, []);
  assert.deepEqual(loadSettings({ CORDON_TENANT_ORIGINS: 'http://10.0.0.5, acme=https://db.internal.example:8443/' }).supervisor.tenantOrigins, [
    { tenant: undefined, origin: 'http://10.0.0.5:80' },
    { tenant: 'acme', origin: 'https://db.internal.example:8443' },
  ]);
  assert.deepEqual(loadSettings({ CORDON_CONFIG: configFile({ tenantOrigins: ['acme=http://10.0.0.5'] }) }).supervisor.tenantOrigins, [
    { tenant: 'acme', origin: 'http://10.0.0.5:80' },
  ]);
  assert.throws(
    () => loadSettings({ CORDON_TENANT_ORIGINS: 'acme=http://10.0.0.5/path' }),
    /CORDON_TENANT_ORIGINS must be scheme:\/\/host:port .*; got "acme=http:\/\/10\.0\.0\.5\/path" \(origin .* must be just scheme/,
  );
});

test('config: the default loaded cordon must be one of the configured cordons', () => {
  assert.equal(loadSettings({}).supervisor.dynamicWorkerCordon, undefined);
  assert.equal(loadSettings({ CORDON_DYNAMIC_WORKER_CORDON: 'untrusted' }).supervisor.dynamicWorkerCordon, 'untrusted');
  assert.throws(
    () => loadSettings({ CORDON_DYNAMIC_WORKER_CORDON: 'nowhere' }),
    /CORDON_DYNAMIC_WORKER_CORDON must name one of CORDON_CORDONS \(standard, untrusted\); got "nowhere"/,
  );
  assert.throws(() => loadSettings({ CORDON_DYNAMIC_WORKER_CORDON: 'Bad Name' }), /CORDON_DYNAMIC_WORKER_CORDON must be a cordon name/);
});

test('config: every setting is declared once, with a variable, a description and what it expects', () => {
  const fields = settingFields();
  assert.ok(fields.length >= 25, `${fields.length} settings`);
  const envs = fields.map(([, , schema]) => metaOf(schema).env);
  assert.equal(new Set(envs).size, envs.length, 'variables are unique');
  assert.equal(new Set(fields.map(([, key]) => key)).size, fields.length, 'config file keys are unique');
  for (const [, key, schema] of fields) {
    const meta = metaOf(schema);
    assert.match(meta.env, /^CORDON_[A-Z0-9_]+$/, key);
    assert.ok(meta.description.length > 10 && meta.expects.length > 5, key);
  }
});

/** The README's settings table, as the schema says it should read. */
function settingsTable(): string {
  const rows = settingFields().map(([section, key, schema]) => {
    const m = metaOf(schema);
    return `| \`${m.env}\` | \`${key}\` | ${section === 'mesh' ? 'every service' : section} | ${m.expects} | ${m.shownDefault} | ${m.description} |`;
  });
  return ['| variable | config file key | read by | value | default | meaning |', '| --- | --- | --- | --- | --- | --- |', ...rows].join('\n');
}

test('config: the README settings table is the schema', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const m = /<!-- settings: generated from lib\/config\.ts -->\n([\s\S]*?)\n<!-- \/settings -->/.exec(readme);
  assert.ok(m, 'README.md has the settings markers');
  assert.equal(m[1], settingsTable(), `README.md's settings table differs from lib/config.ts; replace it with:\n${settingsTable()}\n`);
});
