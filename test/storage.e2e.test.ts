/**
 * Storage and directory capabilities through the real mesh: two tenants deploy the same code and
 * cannot reach each other's data by any API or spelling; side doors are refused; transactions roll
 * back; kill -9 of the supervisor loses no acknowledged write.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startTestMesh, type TestMesh } from './helpers/mesh.ts';
import { deployNotesTwice, type NotesOp } from './helpers/notes.ts';
import { TRAVERSAL } from '../services/supervisor/testing/traversal.ts';

describe('storage and directory capabilities', () => {
  let mesh: TestMesh;
  let op: NotesOp;

  before(async () => {
    mesh = await startTestMesh();
    op = await deployNotesTwice(mesh, ['--storage', 'DB', '--directory', 'FILES']);
  });
  after(async () => {
    await mesh?.stop();
  });

  test('each tenant sees only its own database, KV and directory', async () => {
    assert.deepEqual(await (await op('acme', 'op=add', { method: 'POST', body: 'acme secret' })).json(), { n: 1 });
    assert.deepEqual(await (await op('evil', 'op=list')).json(), []);
    assert.deepEqual(await (await op('acme', 'op=list')).json(), [{ id: 1, text: 'acme secret' }]);
    await op('acme', 'op=kv-put&key=k1', { method: 'POST', body: JSON.stringify({ v: 1 }) });
    assert.deepEqual(await (await op('acme', 'op=kv-get&key=k1')).json(), { v: 1 });
    assert.equal(await (await op('evil', 'op=kv-get&key=k1')).json(), null);
    assert.deepEqual(await (await op('evil', 'op=kv-list')).json(), []);
    assert.equal(await (await op('acme', 'op=write&path=a.txt', { method: 'POST', body: 'file of acme' })).text(), 'written');
    assert.equal(await (await op('acme', 'op=read&path=a.txt')).text(), 'file of acme');
    const evilRead = await op('evil', 'op=read&path=a.txt');
    assert.equal(evilRead.status, 409);
    assert.match(await evilRead.text(), /does not exist/);
  });

  test('no path spelling through the worker reaches the other tenant or the host', async () => {
    const spellings = [...TRAVERSAL, '../../acme/notes/directories/FILES/a.txt', '../../../acme/notes/directories/FILES/a.txt', '/proc/self/environ'];
    for (const p of spellings) {
      const res = await op('evil', `op=read&path=${encodeURIComponent(p)}`);
      const body = await res.text();
      assert.equal(res.status, 409, `${JSON.stringify(p)} → ${res.status} ${body}`);
      assert.doesNotMatch(body, /file of acme|root:|CORDON_/);
    }
  });

  test('SQL side doors are refused: ATTACH, VACUUM INTO, load_extension, PRAGMA, transactions', async () => {
    const acmeDb = join(mesh.dataDir, 'supervisor', 'tenants', 'acme', 'notes', 'storage', 'DB.sqlite');
    for (const [sql, why] of [
      [`ATTACH DATABASE '${acmeDb}' AS stolen`, /ATTACH/],
      [`VACUUM INTO '${join(mesh.dataDir, 'copy.db')}'`, /not authorized|VACUUM/],
      [`SELECT load_extension('/usr/lib/x86_64-linux-gnu/libm.so.6')`, /not authorized|load_extension/],
      ['PRAGMA writable_schema = 1', /PRAGMA/],
      ['PRAGMA database_list', /PRAGMA/],
      ['BEGIN', /transactionSync/],
      ["UPDATE sqlite_master SET sql = 'x'", /./],
    ] as const) {
      const res = await op('evil', 'op=sql', { method: 'POST', body: sql });
      assert.equal(res.status, 409, sql);
      assert.match(await res.text(), why, sql);
    }
    assert.deepEqual(await (await op('acme', 'op=list')).json(), [{ id: 1, text: 'acme secret' }], 'acme is untouched');
    const audit = await mesh.cli(['audit', 'tail', '--limit', '1000']);
    assert.match(audit.stdout, /sandbox:(standard|q-[0-9a-f]{12})\tcapability\.storage\.exec\tevil\/notes\tdenied/);
    // All that probing is a quarantine signal: evil now runs in a process of its own.
    assert.match((await mesh.cli(['quarantine', 'list'])).stdout, /evil\/notes\tq-[0-9a-f]{12}\t.*refused capability calls/);
  });

  test('transactionSync rolls back when its callback throws', async () => {
    const before = (await (await op('acme', 'op=list')).json()) as unknown[];
    const res = await op('acme', 'op=tx-fail');
    assert.equal(res.status, 409);
    assert.match(await res.text(), /roll back/);
    assert.deepEqual(await (await op('acme', 'op=list')).json(), before);
  });

  test('kill -9 of the supervisor in the middle of a write loop loses no acknowledged write and corrupts nothing', async () => {
    const acked: string[] = [];
    let killed = false;
    const loop = (async () => {
      for (let i = 0; i < 400 && acked.length < 150; i++) {
        const text = `w${i}`;
        try {
          const res = await op('acme', 'op=add', { method: 'POST', body: text });
          if (res.status === 200) acked.push(text);
        } catch {
          // the mesh is restarting: this write was never acknowledged
        }
        if (killed && acked.length >= 150) break;
        if (!killed && acked.length === 40) {
          killed = true;
          process.kill(mesh.servicePids().get('supervisor')!, 'SIGKILL');
        }
        if (killed) await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await loop;
    assert.ok(killed);
    assert.ok(acked.length > 40, `writes resumed after the restart (acked ${acked.length})`);
    const rows = (await (await op('acme', 'op=list')).json()) as { text: string }[];
    const stored = new Set(rows.map((r) => r.text));
    for (const t of acked) assert.ok(stored.has(t), `acknowledged write ${t} survived`);
    const check = (await (await op('acme', 'op=sql', { method: 'POST', body: 'PRAGMA integrity_check' })).json()) as { integrity_check: string }[];
    assert.deepEqual(check, [{ integrity_check: 'ok' }]);
  });
});
