/**
 * KV, D1 and Queues through the real mesh: a worker deployed with the CLI from a wrangler config
 * (test/fixtures/projects/kv-d1-queues), each API as Workers code calls it, queue delivery across a
 * `kill -9` of the supervisor and of the consumer's sandbox, and the dead-letter queue.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { join } from 'node:path';
import { ROOT, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const PROJECT = join(ROOT, 'test/fixtures/projects/kv-d1-queues');

/** The fixture's `text(n)`: `n` bytes of ASCII text. */
function largeText(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = 97 + ((i * 7 + (i >> 12)) % 26);
  return b;
}

describe('KV, D1 and Queues bindings', () => {
  let mesh: TestMesh;
  const call = async (path: string, init?: RequestInit) => {
    const r = await fetch(`${mesh.httpUrl}/kdq/${path}`, init);
    const text = await r.text();
    try {
      return JSON.parse(text) as { ok?: any; error?: string };
    } catch {
      throw new Error(`${path}: ${r.status} ${text}`);
    }
  };
  const ok = async (path: string, init?: RequestInit) => {
    const r = await call(path, init);
    assert.equal(r.error, undefined, `${path}: ${r.error}`);
    return r.ok;
  };
  const received = async () => (await ok('q/received')) as { id: string; queue: string; body: string; attempts: number; typed: number }[];

  before(async () => {
    mesh = await startTestMesh();
    const d = await mesh.cli(['deploy'], PROJECT);
    assert.equal(d.code, 0, d.stderr);
    await waitFor('the worker', async () => (await fetch(`${mesh.httpUrl}/kdq/kv/get`)).status === 200 || undefined);
    await ok('d1/setup');
  });
  after(async () => {
    await mesh?.stop();
  });

  test('KV: put and get as text, json, arrayBuffer and stream; metadata; expiration; delete; Cloudflare limits', async () => {
    assert.equal(await ok('kv/get?key=missing'), null);
    await ok(`kv/put?key=a&value=${encodeURIComponent('{"n":1}')}&metadata=${encodeURIComponent('{"tag":"x"}')}&ttl=3600`);
    assert.equal(await ok('kv/get?key=a'), '{"n":1}');
    assert.deepEqual(await ok('kv/get?key=a&type=json&cacheTtl=60'), { n: 1 });
    assert.deepEqual(await ok('kv/get?key=a&type=arrayBuffer'), [...Buffer.from('{"n":1}')]);
    assert.equal(await ok('kv/get?key=a&type=stream'), '{"n":1}');
    assert.deepEqual(await ok('kv/meta?key=a'), { value: '{"n":1}', metadata: { tag: 'x' }, cacheStatus: null });
    // A streamed value (the request body) is stored whole.
    await ok('kv/put?key=streamed', { method: 'POST', body: 'from a stream' });
    assert.equal(await ok('kv/get?key=streamed'), 'from a stream');
    await ok('kv/put?key=b&value=2');
    assert.deepEqual(await ok('kv/bulk?k=a&k=b&k=nope'), { a: { n: 1 }, b: 2, nope: null });
    await ok('kv/delete?key=b');
    assert.equal(await ok('kv/get?key=b'), null);
    // Limits, with workerd's messages.
    assert.match(
      (await call(`kv/put?key=${'k'.repeat(513)}&value=1`)).error!,
      /KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512/,
    );
    assert.match((await call('kv/put?key=c&value=1&ttl=30')).error!, /KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at least 60/);
    const soon = Math.floor(Date.now() / 1000) + 10;
    assert.match((await call(`kv/put?key=c&value=1&expiration=${soon}`)).error!, /Expiration times must be at least 60 seconds in the future/);
    assert.match(
      (await call(`kv/put?key=c&value=1&metadata=${encodeURIComponent(JSON.stringify({ m: 'x'.repeat(1100) }))}`)).error!,
      /KV PUT failed: 413 Metadata length of \d+ exceeds limit of 1024/,
    );
    assert.match((await call('kv/put-big?key=c&bytes=27262976')).error!, /KV PUT failed: 413 Value length of 27262976 exceeds limit of 26214400\.$/);
    assert.match((await call('kv/get?key=a&cacheTtl=5')).error!, /Cache TTL must be at least 30/);
    assert.match((await call('kv/get?key=a&type=blob')).error!, /Unknown response type/);
    assert.equal(await ok('kv/get?key=c'), null, 'nothing refused was stored');
  });

  test('KV: values up to 25 MiB put and read back whole as every type, with metadata; past 25 MiB refused', async () => {
    const MiB = 1024 * 1024;
    const expect = (n: number) => createHash('sha256').update(largeText(n)).digest('hex');
    // 20 MiB as bytes, read back as each type; 9 MiB (past the old one-message limit) as a stream, a string and JSON.
    await ok(`kv/put-large?key=big&bytes=${20 * MiB}&as=bytes`);
    for (const type of ['arrayBuffer', 'stream', 'text'])
      assert.deepEqual(await ok(`kv/get-large?key=big&type=${type}`), { size: 20 * MiB, sha256: expect(20 * MiB), metadata: null }, type);
    assert.deepEqual(await ok('kv/get-large?key=big&type=arrayBuffer&meta=1'), { size: 20 * MiB, sha256: expect(20 * MiB), metadata: { as: 'bytes' } });
    for (const as of ['stream', 'text']) {
      await ok(`kv/put-large?key=${as}&bytes=${9 * MiB}&as=${as}`);
      assert.deepEqual(await ok(`kv/get-large?key=${as}&type=stream&meta=1`), { size: 9 * MiB, sha256: expect(9 * MiB), metadata: { as } }, as);
    }
    await ok(`kv/put-large?key=json&bytes=${9 * MiB}&as=json`);
    assert.deepEqual(await ok('kv/get-large?key=json&type=json'), { size: 9 * MiB, sha256: expect(9 * MiB), metadata: null });
    // A bulk get whose values together pass a part (3 × 3 MiB) comes back whole too.
    for (const k of ['b1', 'b2', 'b3']) await ok(`kv/put-large?key=${k}&bytes=${3 * MiB}&as=json`);
    const bulk = (await ok('kv/bulk?k=b1&k=b2&k=b3&k=none')) as Record<string, { s: string } | null>;
    assert.deepEqual(
      Object.entries(bulk).map(([k, v]) => [k, v === null ? null : createHash('sha256').update(v.s).digest('hex')]),
      [...['b1', 'b2', 'b3'].map((k) => [k, expect(3 * MiB)]), ['none', null]],
    );
    // Exactly 25 MiB is Cloudflare's limit and fits; a byte more, streamed or whole, does not.
    await ok(`kv/put-large?key=max&bytes=${25 * MiB}&as=bytes`);
    assert.equal((await ok('kv/get-large?key=max&type=arrayBuffer')).size, 25 * MiB);
    for (const as of ['bytes', 'stream'])
      assert.match(
        (await call(`kv/put-large?key=over&bytes=${25 * MiB + 1}&as=${as}`)).error!,
        /KV PUT failed: 413 Value length of (at least )?\d+ exceeds limit of 26214400\.$/,
      );
    assert.equal(await ok('kv/get?key=over'), null);
  });

  test('KV: list with prefix, limit and cursor; expiration and metadata in keys', async () => {
    for (let i = 0; i < 5; i++) await ok(`kv/put?key=list/${i}&value=${i}&metadata=${encodeURIComponent(JSON.stringify({ i }))}`);
    await ok('kv/put?key=list/ttl&value=t&ttl=600');
    const first = await ok('kv/list?prefix=list/&limit=4');
    assert.equal(first.list_complete, false);
    assert.deepEqual(
      first.keys.map((k: { name: string }) => k.name),
      ['list/0', 'list/1', 'list/2', 'list/3'],
    );
    assert.deepEqual(first.keys[2].metadata, { i: 2 });
    const rest = await ok(`kv/list?prefix=list/&limit=4&cursor=${encodeURIComponent(first.cursor)}`);
    assert.equal(rest.list_complete, true);
    assert.equal(rest.cursor, undefined);
    assert.deepEqual(
      rest.keys.map((k: { name: string }) => k.name),
      ['list/4', 'list/ttl'],
    );
    assert.ok(rest.keys[1].expiration > Date.now() / 1000 + 500);
    assert.match((await call('kv/list?limit=1001')).error!, /Please specify an integer less than 1000/);
  });

  test('D1: prepare/bind/first/all/run/raw with meta, batch in one transaction, exec, sessions, the authorizer', async () => {
    const run = await ok('d1/insert?name=ada');
    assert.equal(run.success, true);
    assert.equal(run.meta.changes, 1);
    assert.equal(run.meta.last_row_id, 1);
    assert.equal(run.meta.changed_db, true);
    assert.ok(run.meta.rows_written >= 1);
    assert.equal(typeof run.meta.duration, 'number');
    const all = await ok('d1/all');
    assert.deepEqual(all.results, [{ id: 1, name: 'ada', photo: [1, 2, 3] }]);
    assert.equal(all.meta.rows_read, 1);
    assert.deepEqual(await ok('d1/first?name=ada'), { row: { name: 'ada' }, name: 'ada', none: null });
    assert.deepEqual(await ok('d1/raw'), [
      ['id', 'name'],
      [1, 'ada'],
    ]);
    const batch = await ok('d1/batch?a=bob&b=cy');
    assert.equal(batch.length, 2);
    assert.equal(batch[1].meta.last_row_id, 3);
    // One statement of a batch failing rolls back the others.
    const failed = await call(`d1/batch?a=dee&second=${encodeURIComponent('INSERT INTO nowhere VALUES (?)')}&b=x`);
    assert.match(failed.error!, /^D1_ERROR: .*no such table: nowhere/);
    assert.deepEqual(
      (await ok('d1/all')).results.map((r: { name: string }) => r.name),
      ['ada', 'bob', 'cy'],
    );
    assert.deepEqual(await ok('d1/session'), { n: 3, bookmark: 'string' });
    // Operators: cordon d1 execute, under the same authorizer.
    const cli = await mesh.cli(['d1', 'execute', 'default/main-db', '--command', 'SELECT name FROM people ORDER BY id; SELECT count(*) AS n FROM people']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /^\{"name":"ada"\}\n\{"name":"bob"\}\n\{"name":"cy"\}\n\(3 rows, 0 changed, [\d.]+ ms\)\n\{"n":3\}\n\(1 row,/);
    const missing = await mesh.cli(['d1', 'execute', 'default/nope', '--command', 'SELECT 1']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404 tenant default has no D1 database nope/);
    const refused = await mesh.cli(['d1', 'execute', 'default/main-db', '--command', "ATTACH DATABASE 'x' AS y"]);
    assert.match(refused.stderr, /not authorized/);
    // Operators: cordon d1 export, in the form wrangler d1 export writes; the text rebuilds the same rows.
    const exported = await mesh.cli(['d1', 'export', 'default/main-db']);
    assert.equal(exported.code, 0, exported.stderr);
    assert.match(exported.stdout, /^PRAGMA defer_foreign_keys=TRUE;\n/);
    assert.match(exported.stdout, /^CREATE TABLE people \(id INTEGER PRIMARY KEY, name TEXT NOT NULL, photo BLOB\);$/m);
    assert.match(exported.stdout, /^INSERT INTO "people" \("id","name","photo"\) VALUES\(1,'ada',X'010203'\);$/m);
    assert.doesNotMatch(exported.stdout, /_cf_/, "the runtime's own tables stay out");
    const copy = new DatabaseSync(':memory:');
    copy.exec(exported.stdout);
    assert.deepEqual(
      copy
        .prepare('SELECT id, name, hex(photo) AS photo FROM people ORDER BY id')
        .all()
        .map((r) => ({ ...r })),
      [
        { id: 1, name: 'ada', photo: '010203' },
        { id: 2, name: 'bob', photo: '' },
        { id: 3, name: 'cy', photo: '' },
      ],
    );
    const schemaOnly = await mesh.cli(['d1', 'export', 'default/main-db', '--no-data', '--table', 'people']);
    assert.equal(schemaOnly.code, 0, schemaOnly.stderr);
    assert.doesNotMatch(schemaOnly.stdout, /INSERT/);
    assert.match((await call('d1/dump')).error!, /^D1_DUMP_ERROR: dump\(\) is deprecated by D1 .*cordon d1 export/);
    for (const hostile of ["ATTACH DATABASE '/etc/passwd' AS x", 'PRAGMA writable_schema = 1', "SELECT load_extension('x')", 'BEGIN TRANSACTION', 'VACUUM']) {
      assert.match((await call(`d1/sql?q=${encodeURIComponent(hostile)}`)).error!, /D1_ERROR: .*not authorized/, hostile);
    }
  });

  test('Queues: send and sendBatch reach queue(); retry; a failing message goes to the dead-letter queue; limits', async () => {
    await ok('q/send?body=one');
    await ok('q/send?body=two&body=three&body=retry-me');
    await ok('q/send?body=fail-me');
    const got = await waitFor(
      'the messages and the dead letter',
      async () => {
        const r = await received();
        return r.length >= 5 ? r : undefined;
      },
      30_000,
      250,
    );
    const byBody = Object.fromEntries(got.map((r) => [r.body, r]));
    assert.equal(byBody.one!.queue, 'jobs');
    assert.equal(byBody.one!.typed, 1, 'a Date and a Map sent as v8 arrive as a Date and a Map');
    assert.equal(byBody.two!.typed, 0);
    assert.equal(byBody.two!.queue, 'jobs');
    assert.equal(byBody['retry-me']!.attempts, 2, 'retried once, then processed');
    assert.equal(byBody['fail-me']!.queue, 'jobs-dlq', 'after max_retries + 1 failed deliveries');
    assert.match(byBody.one!.id, /^[0-9a-f]{32}$/);
    assert.equal(byBody['fail-me']!.id.length, 32);
    assert.match((await call('q/send-big?bytes=128001')).error!, /message length of 128001 bytes exceeds limit of 128000/);
    const many = Array.from({ length: 101 }, (_, i) => `body=m${i}`).join('&');
    assert.match((await call(`q/send?${many}`)).error!, /batch message count of 101 exceeds limit of 100/);
    assert.match((await call('q/send?body=x&delay=-1')).error!, /delaySeconds must be a whole number/);
  });

  test('at-least-once: messages acknowledged before a kill -9 of the supervisor are delivered after it; a batch lost with its sandbox is delivered again', async () => {
    // Delayed, so none is in flight when the supervisor dies: they are only on disk.
    const bodies = Array.from({ length: 8 }, (_, i) => `durable-${i}`);
    await ok(`q/send?${bodies.map((b) => `body=${b}`).join('&')}&delay=2`);
    const supervisor = mesh.servicePids().get('supervisor')!;
    process.kill(supervisor, 'SIGKILL');
    await waitFor('a new supervisor', async () => {
      const pid = mesh.servicePids().get('supervisor');
      return pid && pid !== supervisor ? pid : undefined;
    });
    const after = await waitFor(
      'the durable messages',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/kdq/q/received`).catch(() => undefined);
        const j = r && r.status === 200 ? ((await r.json()) as { ok?: { body: string }[] }).ok : undefined;
        return j && bodies.every((b) => j.some((x) => x.body === b)) ? j : undefined;
      },
      60_000,
      500,
    );
    assert.ok(after);
    // A slow batch: its sandbox is killed while queue() runs; the message comes back (attempt 2).
    await ok('q/send?body=slow-1');
    const sandboxes = mesh.servicePids();
    const sandbox = [...sandboxes].find(([k]) => k.startsWith('sandbox:'))![1];
    await new Promise((r) => setTimeout(r, 1500)); // the batch is running (it sleeps 4 s on its first attempt)
    process.kill(sandbox, 'SIGKILL');
    const slow = await waitFor(
      'the slow message again',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/kdq/q/received`).catch(() => undefined);
        const j = r && r.status === 200 ? ((await r.json()) as { ok?: { body: string; attempts: number }[] }).ok : undefined;
        return j?.find((x) => x.body === 'slow-1');
      },
      60_000,
      500,
    );
    assert.equal(slow.attempts, 2);
  });
});
