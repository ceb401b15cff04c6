import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryError, parsePath, WorkerDirectory } from './directory.ts';
import { TRAVERSAL } from './testing/traversal.ts';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function setup(quota = 1 << 20) {
  const base = mkdtempSync(join(tmpdir(), 'cordon-dir-'));
  writeFileSync(join(base, 'secret.txt'), 'other tenant data');
  mkdirSync(join(base, 'other'));
  writeFileSync(join(base, 'other', 'data'), 'other');
  const root = join(base, 'me');
  const dir = await WorkerDirectory.open(root, quota);
  return { base, root, dir };
}

test(`parsePath refuses ${TRAVERSAL.length} escape spellings`, () => {
  assert.ok(TRAVERSAL.length >= 40);
  for (const p of TRAVERSAL) assert.throws(() => parsePath(p), DirectoryError, JSON.stringify(p));
  for (const p of [123, null, undefined, {}, ['a'], { toString: () => '../x' }]) assert.throws(() => parsePath(p), DirectoryError);
  assert.deepEqual(parsePath('a/b.txt'), ['a', 'b.txt']);
  assert.deepEqual(parsePath('..a/b..'), ['..a', 'b..'], 'dots inside names are just names');
  assert.deepEqual(parsePath('%2e%2e'), ['%2e%2e'], 'percent-encoding is not decoded: it is a literal name');
});

test('every operation refuses every escape spelling and nothing outside changes', async () => {
  const { base, dir } = await setup();
  for (const p of TRAVERSAL) {
    await assert.rejects(dir.read(p), DirectoryError, `read ${JSON.stringify(p)}`);
    await assert.rejects(dir.write(p, enc('x')), DirectoryError, `write ${JSON.stringify(p)}`);
    await assert.rejects(dir.remove(p), DirectoryError, `remove ${JSON.stringify(p)}`);
    await assert.rejects(dir.stat(p), DirectoryError, `stat ${JSON.stringify(p)}`);
    await assert.rejects(dir.mkdir(p), DirectoryError, `mkdir ${JSON.stringify(p)}`);
    await assert.rejects(dir.rename('f', p), DirectoryError, `rename to ${JSON.stringify(p)}`);
    await assert.rejects(dir.directory(p), DirectoryError, `directory ${JSON.stringify(p)}`);
    if (p !== '') await assert.rejects(dir.list(p), DirectoryError, `list ${JSON.stringify(p)}`);
  }
  assert.deepEqual(readdirSync(base).sort(), ['me', 'other', 'secret.txt']);
  assert.deepEqual(readdirSync(join(base, 'other')), ['data']);
});

test('read/write/list/stat/mkdir/rename/remove work inside the root', async () => {
  const { dir } = await setup();
  await dir.mkdir('a/b');
  await dir.write('a/b/f.txt', enc('hello'));
  assert.equal(dec(await dir.read('a/b/f.txt')), 'hello');
  assert.deepEqual(await dir.list('a'), [{ name: 'b', type: 'directory' }]);
  assert.deepEqual(await dir.list(), [{ name: 'a', type: 'directory' }]);
  assert.equal((await dir.stat('a/b/f.txt'))!.size, 5);
  assert.equal(await dir.stat('nope'), null);
  await dir.rename('a/b/f.txt', 'a/g.txt');
  assert.equal(dec(await dir.read('a/g.txt')), 'hello');
  await assert.rejects(dir.rename('a', 'a/b/c'), /into itself/);
  assert.equal(await dir.remove('a'), true);
  assert.equal(await dir.remove('a'), false);
  assert.equal(dir.usage.bytes, 0);
  await assert.rejects(dir.write('x', 'not bytes'), /bytes/);
});

test('a subdirectory capability cannot reach above its own root', async () => {
  const { dir } = await setup();
  await dir.write('top.txt', enc('top'));
  const sub = await dir.directory('sub');
  await sub.write('in.txt', enc('in'));
  await assert.rejects(sub.read('../top.txt'), DirectoryError);
  await assert.rejects(sub.read('top.txt'), /does not exist/);
  assert.equal(dec(await dir.read('sub/in.txt')), 'in');
});

test('symbolic links anywhere are refused, even ones an operator left there', async () => {
  const { base, root, dir } = await setup();
  symlinkSync(join(base, 'secret.txt'), join(root, 'link'));
  symlinkSync(join(base, 'other'), join(root, 'linkdir'));
  await assert.rejects(dir.read('link'), /symbolic link/);
  await assert.rejects(dir.read('linkdir/data'), /symbolic link/);
  await assert.rejects(dir.write('link', enc('overwrite')), /not a regular file/);
  await assert.rejects(dir.write('linkdir/new', enc('x')), /symbolic link/);
  await assert.rejects(dir.stat('link'), /symbolic links/);
  await assert.rejects(dir.list('linkdir'), /symbolic link/);
  await assert.rejects(dir.directory('linkdir'), /not a directory/);
  assert.equal(existsSync(join(base, 'other', 'new')), false);
  assert.deepEqual(
    (await dir.list()).map((e) => e.name),
    [],
    'links are not listed',
  );
});

test('the quota is enforced across the tree and rewrites count only the difference', async () => {
  const { dir } = await setup(1000);
  await dir.write('a', new Uint8Array(600));
  await assert.rejects(dir.write('b', new Uint8Array(500)), /quota/);
  await dir.write('a', new Uint8Array(900));
  const sub = await dir.directory('s');
  await assert.rejects(sub.write('c', new Uint8Array(200)), /quota/);
  await dir.remove('a');
  await sub.write('c', new Uint8Array(200));
  assert.equal(dir.usage.bytes, 200);
});
