/**
 * node:fs as `deploy` bundles it from the 2025-09-15 compatibility date, run in a real isolate: the
 * same answers and errors as the real workerd on the same source (/bundle, /tmp, /dev, sync, callback and
 * promise APIs, the paths that lead nowhere); before that date it is unenv's stand-in, as wrangler bundles it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCompatWorker } from './testing.ts';
import { answerOnWorkerd, workerdMissing } from '../../test/helpers/workerd.ts';

const SOURCE = `import fs from 'node:fs'; import * as ns from 'node:fs'; import fsp from 'node:fs/promises';
const t = (f) => { try { return ['ok', f()] } catch (e) { return ['throws', e.name, e.code, e.message, e.errno, e.syscall, e.path] } };
const st = (p) => t(() => { const s = fs.statSync(p); return [s.mode, s.size, s.mtimeMs, s.isFile(), s.isDirectory(), s.isCharacterDevice(), s instanceof fs.Stats] });
export default { async fetch() {
  const out = { exports: Object.keys(ns), promises: Object.keys(fsp) };
  out.root = t(() => fs.readdirSync('/')); out.bundle = t(() => fs.readdirSync('/bundle')); out.dev = t(() => fs.readdirSync('/dev'));
  out.tmpEmpty = t(() => fs.readdirSync('/tmp'));
  for (const p of ['/', '/bundle', '/tmp', '/dev', '/dev/null', '/dev/zero', '/tmp/nope']) out['stat ' + p] = st(p);
  out.bundleFile = t(() => fs.statSync('/bundle/worker.js').mode); // its size is the bundle's here, the source's in workerd
  out.noThrow = t(() => fs.statSync('/nope', { throwIfNoEntry: false }));
  out.writeBundle = t(() => fs.writeFileSync('/bundle/x', 'a')); out.writeRoot = t(() => fs.writeFileSync('/x', 'a'));
  out.unlinkBundle = t(() => fs.unlinkSync('/bundle/worker.js')); out.rmBundle = t(() => fs.rmSync('/bundle/worker.js')); out.mkdirBundle = t(() => fs.mkdirSync('/bundle/d'));
  out.openBundleW = t(() => fs.openSync('/bundle/worker.js', 'w'));
  out.passwd = t(() => fs.readFileSync('/etc/passwd')); out.proc = t(() => fs.readdirSync('/proc'));
  out.escape = t(() => fs.readFileSync('/tmp/../../../etc/passwd')); out.relative = t(() => fs.readFileSync('../etc/passwd'));
  out.exists = ['/', '/tmp', '/dev/null', '/etc', '/bundle/worker.js', '/proc/self'].map((p) => fs.existsSync(p));
  out.write = t(() => fs.writeFileSync('/tmp/a.txt', 'hello')); out.read = t(() => fs.readFileSync('/tmp/a.txt', 'utf8'));
  out.buffer = t(() => Buffer.isBuffer(fs.readFileSync('/tmp/a.txt')));
  out.url = t(() => fs.readFileSync(new URL('file:///tmp/a.txt'), 'utf8'));
  out.append = t(() => { fs.appendFileSync('/tmp/a.txt', '!'); return fs.readFileSync('/tmp/a.txt', 'latin1') });
  out.stat = st('/tmp/a.txt');
  out.mkdir = t(() => fs.mkdirSync('/tmp/d/e', { recursive: true })); out.mkdirAgain = t(() => fs.mkdirSync('/tmp/d'));
  out.mkdirNoParent = t(() => fs.mkdirSync('/tmp/q/r')); out.mkdirOnFile = t(() => fs.mkdirSync('/tmp/a.txt/x'));
  out.readdir = t(() => fs.readdirSync('/tmp')); out.readdirRec = t(() => fs.readdirSync('/tmp', { recursive: true }));
  out.dirents = t(() => fs.readdirSync('/tmp', { withFileTypes: true }).map((d) => [d.name, d.isFile(), d.isDirectory(), d.parentPath]));
  out.readdirFile = t(() => fs.readdirSync('/tmp/a.txt')); out.readDir = t(() => fs.readFileSync('/tmp/d')); out.writeDir = t(() => fs.writeFileSync('/tmp', 'x'));
  out.rmNotEmpty = t(() => fs.rmSync('/tmp/d')); out.rmdirNotEmpty = t(() => fs.rmdirSync('/tmp/d')); out.unlinkDir = t(() => fs.unlinkSync('/tmp/d'));
  out.rm = t(() => fs.rmSync('/tmp/d', { recursive: true })); out.rmMissing = t(() => fs.rmSync('/tmp/d')); out.rmdirMissing = t(() => fs.rmdirSync('/tmp/d'));
  out.unlinkMissing = t(() => fs.unlinkSync('/tmp/zz'));
  out.fd = t(() => { const fd = fs.openSync('/tmp/f', 'w+'); const w = fs.writeSync(fd, 'abcdef'); const b = Buffer.alloc(3); const r = fs.readSync(fd, b, 0, 3, 1); fs.closeSync(fd); return [w, r, b.toString()] });
  out.wx = t(() => fs.openSync('/tmp/f', 'wx')); out.badFd = t(() => fs.readSync(999, Buffer.alloc(1))); out.closeBad = t(() => fs.closeSync(999));
  out.woRead = t(() => { const fd = fs.openSync('/tmp/f', 'w'); try { return fs.readSync(fd, Buffer.alloc(2)) } finally { fs.closeSync(fd) } });
  out.zero = t(() => { const fd = fs.openSync('/dev/zero'); const b = Buffer.alloc(4, 1); const r = fs.readSync(fd, b); fs.closeSync(fd); return [r, [...b]] });
  out.random = t(() => { const fd = fs.openSync('/dev/random'); const r = fs.readSync(fd, Buffer.alloc(16)); fs.closeSync(fd); return r });
  out.nullRead = t(() => fs.readFileSync('/dev/null').length); out.nullWrite = t(() => fs.writeFileSync('/dev/null', 'x')); out.full = t(() => fs.writeFileSync('/dev/full', 'x'));
  out.symlink = t(() => fs.symlinkSync('/tmp/a.txt', '/tmp/link')); out.readlink = t(() => fs.readlinkSync('/tmp/link'));
  out.viaLink = t(() => fs.readFileSync('/tmp/link', 'utf8')); out.lstat = t(() => fs.lstatSync('/tmp/link').isSymbolicLink()); out.realpath = t(() => fs.realpathSync('/tmp/link'));
  out.linkEtc = t(() => { fs.symlinkSync('/etc/passwd', '/tmp/l2'); return fs.readFileSync('/tmp/l2') });
  out.linkUp = t(() => { fs.symlinkSync('../../../../etc/passwd', '/tmp/l3'); return fs.readFileSync('/tmp/l3') });
  out.loop = t(() => { fs.symlinkSync('/tmp/l5', '/tmp/l4'); fs.symlinkSync('/tmp/l4', '/tmp/l5'); return fs.readFileSync('/tmp/l4') });
  out.readlinkFile = t(() => fs.readlinkSync('/tmp/a.txt'));
  out.rename = t(() => { fs.renameSync('/tmp/f', '/tmp/g'); return [fs.existsSync('/tmp/f'), fs.existsSync('/tmp/g')] });
  out.renameToBundle = t(() => fs.renameSync('/tmp/g', '/bundle/g')); out.renameMissing = t(() => fs.renameSync('/tmp/nope', '/tmp/x'));
  out.copyMissing = t(() => fs.copyFileSync('/tmp/nope', '/tmp/x'));
  out.truncate = t(() => { fs.truncateSync('/tmp/a.txt', 2); return fs.readFileSync('/tmp/a.txt', 'utf8') });
  out.truncNeg = t(() => fs.truncateSync('/tmp/a.txt', -1)); out.truncBig = t(() => fs.truncateSync('/tmp/a.txt', 2 ** 40));
  out.linkDir = t(() => { fs.mkdirSync('/tmp/h/i', { recursive: true }); fs.linkSync('/tmp/h', '/tmp/h/self') });
  out.intoSelf = t(() => { fs.renameSync('/tmp/h', '/tmp/h/i/x'); return fs.existsSync('/tmp/h') });
  out.rmTmp = t(() => fs.rmSync('/tmp', { recursive: true })); out.rmDev = t(() => fs.rmSync('/dev/null')); out.mkdirRoot = t(() => fs.mkdirSync('/newdir'));
  out.devWrites = ['zero', 'random', 'null'].map((d) => t(() => fs.writeFileSync('/dev/' + d, 'x')));
  out.watch = t(() => fs.watch('/tmp'));
  out.badPath = t(() => fs.readFileSync({}));
  out.pRead = await fsp.readFile('/tmp/a.txt', 'utf8').then((v) => ['ok', v], (e) => ['rej', e.code, e.message]);
  out.pWrite = await fsp.writeFile('/bundle/x', 'a').then(() => 'ok', (e) => ['rej', e.code, e.message, e.syscall]);
  out.pStat = await fsp.stat('/nope').then(() => 'ok', (e) => ['rej', e.code, e.message]);
  out.pMkdir = await fsp.mkdir('/tmp/pp/qq', { recursive: true }).then((v) => ['ok', v], (e) => ['rej', e.code]);
  out.cbRead = await new Promise((r) => fs.readFile('/nope', (e, v) => r([e?.code, e?.message, v])));
  out.cbStat = await new Promise((r) => fs.stat('/tmp/a.txt', (e, s) => r([e, s?.size])));
  out.cbExists = await new Promise((r) => fs.exists('/tmp/a.txt', r));
  out.stream = await new Promise((r, j) => { const c = []; fs.createReadStream('/tmp/a.txt').on('data', (d) => c.push(d)).on('end', () => r(Buffer.concat(c).toString())).on('error', j) });
  return Response.json(out);
} };`;

test("node:fs from 2025-09-15: workerd's virtual file system, answers and errors", { skip: workerdMissing() }, async () => {
  const ours = await runCompatWorker(SOURCE, {}, '2025-09-15');
  assert.equal(ours.status, 200, ours.body);
  // The module is named worker.js on both sides: /bundle lists the worker's modules by name.
  const theirs = JSON.parse(await answerOnWorkerd(SOURCE, '2025-09-15', 'worker.js')) as Record<string, unknown>;
  const mine = JSON.parse(ours.body);
  // Every export workerd has is there (unenv adds a helper or two of its own).
  assert.deepEqual(
    (theirs.exports as string[]).filter((k) => !mine.exports.includes(k)),
    [],
  );
  assert.deepEqual(
    (theirs.promises as string[]).filter((k) => !mine.promises.includes(k)),
    [],
  );
  delete mine.exports;
  delete mine.promises;
  delete theirs.exports;
  delete theirs.promises;
  assert.deepEqual(mine, theirs);
});

const PROBE = `import fs from 'node:fs'; export default { fetch() { try { return new Response(fs.readdirSync('/').join()) } catch (e) { return new Response(e.message) } } };`;

test("node:fs before 2025-09-15 is unenv's stand-in, as wrangler bundles it; the flags turn it on and off whatever the date", async () => {
  assert.match((await runCompatWorker(PROBE, {}, '2025-09-14')).body, /\[unenv\] fs\.readdirSync is not implemented yet!/);
  assert.equal((await runCompatWorker(PROBE, {}, '2025-09-14', ['nodejs_compat', 'enable_nodejs_fs_module'])).body, 'bundle,tmp,dev');
  assert.match((await runCompatWorker(PROBE, {}, '2025-09-15', ['nodejs_compat', 'disable_nodejs_fs_module'])).body, /not implemented yet/);
});

test('/bundle holds every module of the worker, text and binary, byte for byte; nothing in it is writable', async () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  const res = await runCompatWorker(
    `import fs from 'node:fs'; import fsp from 'node:fs/promises'; import data from './d.bin'; import text from './t.txt';
export default { async fetch() {
  const names = fs.readdirSync('/bundle').sort();
  const bin = fs.readFileSync('/bundle/' + names.find((n) => n.endsWith('.bin')));
  const txt = await fsp.readFile(names.find((n) => n.endsWith('.txt')), 'utf8');
  let write; try { fs.appendFileSync('/bundle/' + names[0], 'x') } catch (e) { write = e.code }
  return Response.json({ names: names.map((n) => n.split('.').pop()).sort(), bin: [...bin].join() === [...new Uint8Array(data)].join(), bytes: bin.length, txt: txt === text, write });
} };`,
    {},
    '2025-09-15',
    ['nodejs_compat'],
    { 'd.bin': bytes, 't.txt': 'héllo' },
  );
  assert.deepEqual(JSON.parse(res.body), { names: ['bin', 'js', 'txt'], bin: true, bytes: 256, txt: true, write: 'EPERM' });
});
