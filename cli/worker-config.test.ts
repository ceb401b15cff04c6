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
  assert.throws(() => readWorkerConfig(write('{ "name": "x", "main": "y", "vars": { "A": { "nested": 1 } } }')), /vars\.A/);
  assert.throws(() => readWorkerConfig(write('{ "name": "x", "main": "y", "workflows": [{ "name": "w", "binding": "W" }] }')), /workflows\.0\.class_name/);
  assert.throws(() => readWorkerConfig(write('{ "name": "x", "main": "y", "workflows": [{ "name": "w", "binding": "DB", "class_name": "C" }], "cordon": { "storage": ["DB"] } }')), /binding DB is also/);
  assert.throws(() => readWorkerConfig(join(dir, 'missing.jsonc')), /cannot read/);
  const ok = readWorkerConfig(write('{ "name": "x", "main": "./src/w.ts", "route": "a.com/*", "routes": ["b.com/*", { "pattern": "c.com/*", "zone_name": "c.com" }] }'));
  assert.deepEqual(ok.routes, ['a.com/*', 'b.com/*', 'c.com/*']);
  assert.equal(ok.main, join(dir, 'src/w.ts'));
});

test('with no file named, deploy finds cordon.jsonc before wrangler.jsonc in the directory, or nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-find-'));
  assert.equal(findWorkerConfig(dir), undefined);
  writeFileSync(join(dir, 'wrangler.jsonc'), '{ "name": "w", "main": "a.js" }');
  assert.equal(findWorkerConfig(dir), join(dir, 'wrangler.jsonc'));
  writeFileSync(join(dir, 'cordon.jsonc'), '// ours\n{ "name": "c", "main": "a.js" }');
  assert.equal(findWorkerConfig(dir), join(dir, 'cordon.jsonc'));
  assert.equal(readWorkerConfig(findWorkerConfig(dir)!).name, 'c');
});
