import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeExport, type ExportedVersion } from './export.ts';
import { moduleNameProblem } from '../schemas/worker.ts';
import { TRAVERSAL } from '../services/supervisor/testing/traversal.ts';

const version = (worker: string, names: string[]): ExportedVersion => ({
  worker,
  version: 'a'.repeat(64),
  createdAt: '2026-01-01T00:00:00.000Z',
  bundle: {
    workerId: `t/${worker}`,
    version: 'a'.repeat(64),
    mainModule: 'main.js',
    modules: names.map((name) => ({ name, type: 'text' as const, content: `// ${name}` })),
    limits: { cpuMs: 1, wallMs: 1, memoryMb: 8 },
    vars: {},
    bindings: [],
  },
});

test('module names: relative paths of plain segments only, and never a .git segment however git would spell it', () => {
  for (const ok of ['main.js', 'src/a.js', 'a.git/b', '.gitignore', '.github/x.yml', 'git/x', '..a/b', 'a..b'])
    assert.equal(moduleNameProblem(ok), undefined, ok);
  for (const bad of [
    '.git',
    '.git/config',
    'a/.git/hooks/x',
    '.GIT/config',
    '.Git',
    '.git.',
    '.git../config',
    'git~1/config',
    'GIT~1',
    '.git /x',
    '.git:$INDEX_ALLOCATION/x',
    'a\\.git\\config',
  ]) {
    assert.ok(moduleNameProblem(bad), bad);
  }
  // Every spelling that tries to leave a directory is refused (deep plain paths are fine here).
  for (const p of TRAVERSAL) if (!/^(a\/)+b$/.test(p)) assert.ok(moduleNameProblem(p), JSON.stringify(p));
});

test('export writes no module whose name is not a plain relative path, even one an older store holds', async () => {
  const root = mkdtempSync(join(tmpdir(), 'cordon-export-'));
  const dir = join(root, 'x', 'y', 'out');
  const r = await writeExport(dir, 't', [version('w', ['main.js', '.git/config', 'a/.GIT./config', '../../escape.js', 'ok/b.js'])]);
  assert.equal(r.versions, 1);
  assert.deepEqual(
    r.refused.map((m) => m.module),
    ['.git/config', 'a/.GIT./config', '../../escape.js'],
  );
  assert.equal(existsSync(resolve(dir, 'w', '../../escape.js')), false);
  assert.deepEqual(readdirSync(join(dir, 'w')).sort(), ['cordon.json', 'main.js', 'ok']);
  assert.deepEqual((JSON.parse(readFileSync(join(dir, 'w', 'cordon.json'), 'utf8')) as { refusedModules: unknown[] }).refusedModules.length, 3);
});

test('export refuses a worker name that is not a plain name before writing anything', async () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'cordon-export-')), 'out');
  await assert.rejects(writeExport(dir, 't', [version('../evil', ['main.js'])]), /not a plain name/);
  assert.equal(existsSync(dir), false);
});
