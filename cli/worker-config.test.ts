import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findWorkerConfig, readWorkerConfig } from './worker-config.ts';

test('a wrangler.jsonc with comments and trailing commas is read as Cloudflare means it', () => {
  const c = readWorkerConfig('examples/notes/wrangler.jsonc');
  assert.equal(c.name, 'notes');
  assert.equal(c.main, resolve('examples/notes/index.ts'));
  assert.deepEqual(c.routes, ['*/notes*']);
  assert.deepEqual(c.vars, { GREETING: 'hello' });
  assert.equal(c.cpuMs, 500);
  assert.equal(c.wallMs, 10_000);
  assert.equal(c.memoryMb, 64);
  assert.deepEqual(c.storage, ['DB']);
  assert.deepEqual(c.directories, ['FILES']);
});

test('bad config files fail with the file, position or field, and what is wrong', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-'));
  const write = (text: string) => {
    const f = join(dir, `w${Math.random()}.jsonc`);
    writeFileSync(f, text);
    return f;
  };
  assert.throws(() => readWorkerConfig(write('{\n  "name": "x",\n  "main" "y"\n}')), /\.jsonc:3:\d+: /);
  assert.throws(() => readWorkerConfig(write('{ "main": "y" }')), /name: /);
  // vars are JSON values, as in Workers; only absurd nesting is refused.
  assert.deepEqual(readWorkerConfig(write('{ "name": "x", "main": "y", "vars": { "A": { "nested": [1, true, null] }, "N": 2 } }')).vars, {
    A: { nested: [1, true, null] },
    N: 2,
  });
  assert.throws(
    () => readWorkerConfig(write(`{ "name": "x", "main": "y", "vars": { "A": ${'['.repeat(40)}${']'.repeat(40)} } }`)),
    /vars\.A: .*nested more than 32 deep/,
  );
  assert.throws(() => readWorkerConfig(write('{ "name": "x", "main": "y", "workflows": [{ "name": "w", "binding": "W" }] }')), /workflows\.0\.class_name/);
  assert.throws(
    () =>
      readWorkerConfig(
        write('{ "name": "x", "main": "y", "workflows": [{ "name": "w", "binding": "DB", "class_name": "C" }], "cordon": { "storage": ["DB"] } }'),
      ),
    /binding DB is also/,
  );
  assert.throws(() => readWorkerConfig(join(dir, 'missing.jsonc')), /cannot read/);
  const ok = readWorkerConfig(
    write('{ "name": "x", "main": "./src/w.ts", "route": "a.com/*", "routes": ["b.com/*", { "pattern": "c.com/*", "zone_name": "c.com" }] }'),
  );
  assert.deepEqual(ok.routes, ['a.com/*', 'b.com/*', 'c.com/*']);
  assert.equal(ok.main, join(dir, 'src/w.ts'));
});

test("with no file named, deploy finds cordon.jsonc, then wrangler.json, .jsonc, .toml (wrangler's order) in the directory, or nothing", () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-find-'));
  assert.equal(findWorkerConfig(dir), undefined);
  writeFileSync(join(dir, 'wrangler.toml'), 'name = "t"\nmain = "a.js"\n');
  assert.equal(findWorkerConfig(dir), join(dir, 'wrangler.toml'));
  writeFileSync(join(dir, 'wrangler.jsonc'), '{ "name": "w", "main": "a.js" }');
  assert.equal(findWorkerConfig(dir), join(dir, 'wrangler.jsonc'));
  writeFileSync(join(dir, 'wrangler.json'), '{ "name": "j", "main": "a.js" }');
  assert.equal(findWorkerConfig(dir), join(dir, 'wrangler.json'));
  writeFileSync(join(dir, 'cordon.jsonc'), '// ours\n{ "name": "c", "main": "a.js" }');
  assert.equal(findWorkerConfig(dir), join(dir, 'cordon.jsonc'));
  assert.equal(readWorkerConfig(findWorkerConfig(dir)!).name, 'c');
});

test('wrangler.toml is read as the JSON forms are, with TOML errors at their line and column', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-toml-'));
  const f = join(dir, 'wrangler.toml');
  writeFileSync(
    f,
    'name = "t"\nmain = "src/w.ts"\nroutes = ["a.com/*"]\n[vars]\nA = "1"\nB = 2\n[triggers]\ncrons = ["* * * * *"]\n[[rules]]\ntype = "Text"\nglobs = ["**/*.sql"]\n[define]\nX = "1"\n',
  );
  const c = readWorkerConfig(f);
  assert.equal(c.main, join(dir, 'src/w.ts'));
  assert.deepEqual(c.routes, ['a.com/*']);
  assert.deepEqual(c.vars, { A: '1', B: 2 }, 'a TOML number stays a number');
  assert.deepEqual(c.crons, ['* * * * *']);
  assert.deepEqual(c.build.rules, [{ type: 'Text', globs: ['**/*.sql'] }]);
  assert.deepEqual(c.build.define, { X: '1' });
  writeFileSync(f, 'name = "t"\nmain = \n');
  assert.throws(() => readWorkerConfig(f), /wrangler\.toml:2:\d+: /);
});

test('sections Cordon does not implement are refused together, each named with what to do; platform-only sections pass, ignored ones leave a note', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-sections-'));
  const f = join(dir, 'wrangler.jsonc');
  writeFileSync(
    f,
    JSON.stringify({
      name: 'x',
      main: 'a.js',
      r2_buckets: [{ binding: 'K', bucket_name: '1' }],
      durable_objects: { bindings: [{ name: 'D', class_name: 'C' }] },
      compatibility_flags: ['nodejs_compat', 'streams_enable_constructors'],
      frobnicate: 1,
      observability: { enabled: true },
      rules: [{ type: 'PythonModule', globs: ['**/*.py'] }],
    }),
  );
  assert.throws(
    () => readWorkerConfig(f),
    (e: Error) => {
      for (const want of [
        /r2_buckets: R2 is not implemented/,
        /durable_objects: cannot create binding D for class C: it is not declared as a Durable Object class/,
        /compatibility_flags: streams_enable_constructors: a compatibility flag Cordon does not implement \(it honours nodejs_compat, /,
        /frobnicate: a section Cordon does not know/,
        /rules: PythonModule/,
      ])
        assert.match(e.message, want);
      assert.doesNotMatch(e.message, /observability/);
      return true;
    },
  );
  // Empty sections ask for nothing.
  writeFileSync(
    f,
    JSON.stringify({
      name: 'x',
      main: 'a.js',
      kv_namespaces: [],
      compatibility_flags: [],
      no_bundle: false,
      observability: { enabled: true },
      env: { staging: { vars: { A: 'b' } } },
    }),
  );
  const c = readWorkerConfig(f);
  assert.deepEqual(c.notes, [`env: ${f} defines the environment(s) staging; without --env the top level is deployed`]);
});

test('--env: the environment as wrangler resolves it — build settings, routes, migrations and cordon inherited; bindings, vars and define not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-env-'));
  const f = join(dir, 'wrangler.json');
  writeFileSync(
    f,
    JSON.stringify({
      name: 'app',
      main: 'src/a.js',
      compatibility_date: '2026-01-01',
      routes: ['*/app*'],
      rules: [{ type: 'ESModule', globs: ['**/*.js'] }],
      find_additional_modules: true,
      vars: { A: 'top' },
      define: { X: '1' },
      kv_namespaces: [{ binding: 'KV', id: 'top-kv' }],
      migrations: [{ tag: 'v1', new_sqlite_classes: ['Room'] }],
      durable_objects: { bindings: [{ name: 'ROOMS', class_name: 'Room' }] },
      cordon: { tenant: 'acme', origins: ['https://api.example'] },
      env: {
        staging: { vars: { A: 'staging' }, kv_namespaces: [{ binding: 'KV', id: 'staging-kv' }], limits: { cpu_ms: 50 } },
        own: { name: 'own-name', main: 'src/b.js', cordon: { tenant: 'other' }, ['__proto__' as string]: { polluted: true } },
      },
    }),
  );
  const staging = readWorkerConfig(f, 'staging');
  assert.equal(staging.name, 'app-staging');
  assert.equal(staging.main, join(dir, 'src/a.js'));
  assert.deepEqual(staging.routes, ['*/app*']);
  assert.deepEqual(staging.vars, { A: 'staging' });
  assert.deepEqual(staging.build.define, {});
  assert.equal(staging.build.findAdditionalModules, true);
  assert.deepEqual(staging.build.rules, [{ type: 'ESModule', globs: ['**/*.js'] }]);
  assert.equal(staging.build.compatibilityDate, '2026-01-01');
  assert.equal(staging.cpuMs, 50);
  assert.equal(staging.tenant, 'acme');
  assert.deepEqual(staging.objectClasses, ['Room'], 'migrations are inherited');
  assert.deepEqual(staging.objects, [], 'durable_objects bindings are not');
  assert.deepEqual(
    staging.resourceBindings.map((b) => [b.name, b.resource]),
    [['KV', 'staging-kv']],
  );
  assert.deepEqual(
    staging.notes.filter((n) => n.includes('not inherited')).map((n) => n.split(':')[0]),
    ['define', 'durable_objects'],
  );
  const own = readWorkerConfig(f, 'own');
  assert.deepEqual([own.name, own.main, own.tenant, own.origins], ['own-name', join(dir, 'src/b.js'), 'other', []]);
  assert.deepEqual(own.vars, {});
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.throws(() => readWorkerConfig(f, 'prod'), /no environment "prod" \(an \[env\.prod\] section\); it defines: staging, own/);
});

test('Durable Objects: bindings to classes the migrations declare (new_sqlite_classes and new_classes), nothing else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-objects-'));
  const f = join(dir, 'wrangler.jsonc');
  const write = (extra: object) =>
    writeFileSync(
      f,
      JSON.stringify({
        name: 'chat',
        main: 'a.js',
        migrations: [
          { tag: 'v1', new_sqlite_classes: ['Room'] },
          { tag: 'v2', new_classes: ['Old'] },
        ],
        durable_objects: {
          bindings: [
            { name: 'ROOM', class_name: 'Room' },
            { name: 'OLD', class_name: 'Old', script_name: 'chat' },
          ],
        },
        ...extra,
      }),
    );
  write({});
  const c = readWorkerConfig(f);
  assert.deepEqual(c.objects, [
    { binding: 'ROOM', className: 'Room' },
    { binding: 'OLD', className: 'Old' },
  ]);
  assert.deepEqual(c.objectClasses, ['Room', 'Old']);
  write({ durable_objects: { bindings: [{ name: 'X', class_name: 'Room', script_name: 'other-worker' }] } });
  assert.throws(() => readWorkerConfig(f), /durable_objects: X binds class Room of worker other-worker: objects of another worker are not implemented/);
  write({
    migrations: [
      { tag: 'v1', new_sqlite_classes: ['Room'] },
      { tag: 'v2', renamed_classes: [{ from: 'Room', to: 'Hall' }] },
    ],
  });
  assert.throws(() => readWorkerConfig(f), /migrations: renamed_classes not implemented in Cordon yet/);
  write({ cordon: { storage: ['ROOM'] } });
  assert.throws(() => readWorkerConfig(f), /binding ROOM is also a storage, directory, workflow or loader binding/);
});

test('kv_namespaces, d1_databases and queues are read as wrangler reads them; a pull consumer is refused; what Cordon does not do leaves a note', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-resources-'));
  const f = join(dir, 'wrangler.toml');
  writeFileSync(
    f,
    `name = "x"
main = "a.js"
[[kv_namespaces]]
binding = "CACHE"
id = "abc123"
preview_id = "p"
[[d1_databases]]
binding = "DB"
database_name = "main"
migrations_dir = "migrations"
[[queues.producers]]
binding = "JOBS"
queue = "jobs"
delivery_delay = 5
[[queues.consumers]]
queue = "jobs"
max_batch_size = 20
max_concurrency = 3
dead_letter_queue = "jobs-dlq"
`,
  );
  const c = readWorkerConfig(f);
  assert.deepEqual(c.resourceBindings, [
    { type: 'kv', name: 'CACHE', resource: 'abc123' },
    { type: 'd1', name: 'DB', resource: 'main' },
    { type: 'queue', name: 'JOBS', resource: 'jobs', deliveryDelay: 5 },
  ]);
  assert.deepEqual(c.queueConsumers, [{ queue: 'jobs', maxBatchSize: 20, deadLetterQueue: 'jobs-dlq' }]);
  assert.ok(c.notes.some((n) => /max_concurrency of jobs ignored/.test(n)));
  assert.ok(c.notes.some((n) => /migrations in migrations are not applied by deploy/.test(n)));
  writeFileSync(f, 'name = "x"\nmain = "a.js"\n[[queues.consumers]]\nqueue = "jobs"\ntype = "http_pull"\n');
  assert.throws(() => readWorkerConfig(f), /queue jobs has type "http_pull"; Cordon runs push consumers/);
  writeFileSync(f, 'name = "x"\nmain = "a.js"\n[[kv_namespaces]]\nbinding = "CACHE"\n');
  assert.throws(() => readWorkerConfig(f), /kv_namespaces: binding CACHE needs an id/);
});
