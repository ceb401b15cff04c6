/**
 * A Durable Object's errors as workerd gives them, the same worker on both: the error `ctx.abort()` throws
 * (with a reason and without), a throwing `blockConcurrencyWhile`'s, a missing method's, a `fetch()` on an
 * object without a handler: their names, messages and marks (`durableObjectReset`, `remote`). And what a stub
 * does after its object was reset, where Cordon differs on purpose (docs/durable-objects.md, "Calls"):
 * workerd's stub is broken (it throws the reset's error again) and a new stub reaches a new instance; in
 * Cordon `getByName` hands out the isolate's one stub, which reaches the new instance. And `ctx.storage.sql`:
 * cursors, rows, bindings and values compared the same way (what still differs: docs/compatibility.md).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';
import { durableObjectConfig, startWorkerd, workerdMissing, type RunningWorkerd } from './helpers/workerd.ts';

const WORKER = `import { DurableObject } from 'cloudflare:workers';
export class Counter extends DurableObject {
  tag = crypto.randomUUID();
  who() { return this.tag; }
  abortWith() { this.ctx.abort(new Error('asked to')); return 'after abort'; }
  abortPlain() { this.ctx.abort(); return 'after abort'; }
  async bcwThrows() { await this.ctx.blockConcurrencyWhile(async () => { throw new RangeError('bcw failed'); }); return 'after bcw'; }
  sql() {
    const sql = this.ctx.storage.sql;
    const desc = (v) => v === null ? null : v instanceof ArrayBuffer ? ['ArrayBuffer', [...new Uint8Array(v)]] : [typeof v, v];
    const row = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, desc(v)]));
    const out = {};
    const t = (name, f) => { try { out[name] = f(); } catch (e) { out[name] = { threw: e.name, message: e.message }; } };
    sql.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB, f REAL)');
    t('insert', () => { const c = sql.exec('INSERT INTO t (name, data, f) VALUES (?, ?, ?), (?, ?, ?)', 'a', new Uint8Array([1, 2]), 1.5, 'b', null, 2); return [c.rowsRead, c.rowsWritten, c.toArray()]; });
    t('select', () => { const c = sql.exec('SELECT * FROM t ORDER BY id'); return [c.toArray().map(row), c.columnNames, c.rowsRead, c.rowsWritten]; });
    t('raw', () => sql.exec('SELECT id, name FROM t ORDER BY id').raw().toArray().map((r) => r.map(desc)));
    t('one', () => row(sql.exec('SELECT name FROM t WHERE id = 1').one()));
    t('oneNone', () => sql.exec('SELECT name FROM t WHERE id = 99').one());
    t('oneMany', () => sql.exec('SELECT name FROM t').one());
    t('next', () => { const c = sql.exec('SELECT id FROM t ORDER BY id'); return [c.next(), c.next(), c.next()].map((x) => [x.done, x.value && row(x.value)]); });
    t('big', () => desc(sql.exec('SELECT 9007199254740993 AS v').one().v));
    t('bigint', () => desc(sql.exec('SELECT ? AS v', 10n).one().v));
    t('boolean', () => [desc(sql.exec('SELECT ? AS v', true).one().v), desc(sql.exec('SELECT ? AS v', false).one().v)]);
    t('undefined', () => desc(sql.exec('SELECT ? AS v', undefined).one().v));
    t('twoStatements', () => sql.exec('SELECT 1 AS a; SELECT 2 AS b').toArray());
    t('sameNames', () => [sql.exec('SELECT 1 AS x, 2 AS x').columnNames, sql.exec('SELECT 1 AS x, 2 AS x').raw().toArray()]);
    return out;
  }
}
const seen = (e) => e instanceof Error
  ? { threw: e.name, message: e.message, keys: Object.keys(e).sort() }
  : { value: e };
const t = async (f) => { try { return seen(await f()); } catch (e) { return seen(e); } };
export default { async fetch(req, env) {
  const out = {};
  const a = env.COUNTER.getByName('a');
  const before = await a.who();
  out.abortWith = await t(() => a.abortWith());
  out.sameStubAfterAbort = await t(async () => (await a.who()) === before ? 'the old instance' : 'a new instance');
  out.newStubAfterAbort = await t(async () => (await env.COUNTER.getByName('a').who()) === before ? 'the old instance' : 'a new instance');
  out.abortPlain = await t(() => env.COUNTER.getByName('p').abortPlain());
  const b = env.COUNTER.getByName('b');
  await b.who();
  out.bcwThrows = await t(() => b.bcwThrows());
  out.sameStubAfterBcw = await t(() => b.who().then(() => 'answered'));
  out.missing = await t(() => env.COUNTER.getByName('c').nothing());
  out.noFetch = await t(() => env.COUNTER.getByName('d').fetch('http://object/'));
  out.sql = await env.COUNTER.getByName('s').sql();
  return Response.json(out);
} }`;

/** What both answer alike. */
const ALIKE = {
  abortWith: { threw: 'Error', message: 'Error: asked to', keys: ['durableObjectReset'] },
  newStubAfterAbort: { value: 'a new instance' },
  abortPlain: { threw: 'Error', message: 'Application called abort() to reset Durable Object.', keys: ['durableObjectReset'] },
  bcwThrows: { threw: 'RangeError', message: 'bcw failed', keys: ['durableObjectReset'] },
  missing: { threw: 'TypeError', message: 'The RPC receiver does not implement the method "nothing".', keys: ['remote'] },
  noFetch: { threw: 'Error', message: 'Handler does not export a fetch() function.', keys: ['remote'] },
};

describe('Durable Object errors, beside workerd', () => {
  let mesh: TestMesh;
  let workerd: RunningWorkerd | undefined;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cordon-do-errors-'));
    writeFileSync(join(dir, 'index.js'), WORKER);
    writeFileSync(
      join(dir, 'wrangler.jsonc'),
      JSON.stringify({
        name: 'errors',
        main: 'index.js',
        compatibility_date: '2026-07-01',
        routes: ['*/errors*'],
        migrations: [{ tag: 'v1', new_sqlite_classes: ['Counter'] }],
        durable_objects: { bindings: [{ name: 'COUNTER', class_name: 'Counter' }] },
      }),
    );
    mesh = await startTestMesh();
    const r = await mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc')]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    workerd?.stop();
    await mesh?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Cordon's `sql` answer, which workerd's must equal. */
  let sqlAnswer: unknown;
  const answer = (url: string) =>
    waitFor(`${url} to answer`, async () => {
      const r = await fetch(url).catch(() => undefined);
      return r?.status === 200 ? ((await r.json()) as Record<string, unknown>) : undefined;
    });

  test('Cordon: the same names, messages and marks as workerd; the one stub reaches the new instance', async () => {
    const out = await answer(`${mesh.httpUrl}/errors`);
    for (const [k, v] of Object.entries(ALIKE)) assert.deepEqual(out[k], v, k);
    assert.deepEqual(out.sameStubAfterAbort, { value: 'a new instance' });
    assert.deepEqual(out.sameStubAfterBcw, { value: 'answered' });
    const sql = out.sql as Record<string, unknown>;
    // workerd's own answers here (the next test compares everything else with workerd).
    assert.deepEqual(sql.big, ['number', 9007199254740992], 'an integer beyond 2^53 reads as the nearest number');
    assert.deepEqual(sql.bigint, { threw: 'TypeError', message: 'Cannot convert a BigInt value to a number' });
    assert.deepEqual(
      sql.boolean,
      [
        ['string', 'true'],
        ['string', 'false'],
      ],
      'a boolean binds as its text',
    );
    assert.deepEqual(sql.oneNone, { threw: 'Error', message: 'Expected exactly one result from SQL query, but got no results.' });
    sqlAnswer = sql;
  });

  test('workerd answers the same, and its stub stays broken after a reset', { skip: workerdMissing() }, async () => {
    workerd = await startWorkerd({
      files: { 'index.js': WORKER },
      config: (ports, wdir) => durableObjectConfig(ports, wdir, { className: 'Counter', binding: 'COUNTER', uniqueKey: 'errors-counter' }),
    });
    const out = await answer(workerd.url());
    for (const [k, v] of Object.entries(ALIKE)) assert.deepEqual(out[k], v, k);
    assert.deepEqual(out.sameStubAfterAbort, ALIKE.abortWith);
    assert.deepEqual(out.sameStubAfterBcw, ALIKE.bcwThrows);
    assert.ok(sqlAnswer, 'the test before ran');
    assert.deepEqual(out.sql, sqlAnswer);
  });
});
