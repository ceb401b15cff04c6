/** Versions, rollback and delete through the CLI against the real mesh. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

describe('worker versions', () => {
  let mesh: TestMesh;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-versions-'));
  const source = (text: string) => {
    const file = join(dir, `${text}.ts`);
    writeFileSync(file, `export default { fetch() { return new Response(${JSON.stringify(text)}) } };\n`);
    return file;
  };
  const body = async () => {
    const r = await fetch(`${mesh.httpUrl}/v`);
    return r.status === 200 ? r.text() : `status ${r.status}`;
  };
  const deploy = async (text: string) => {
    const r = await mesh.cli(['deploy', source(text), '--name', 'versioned', '--route', '*/v']);
    assert.equal(r.code, 0, r.stderr);
    return /version ([0-9a-f]{64})/.exec(r.stdout)![1]!;
  };

  before(async () => {
    mesh = await startTestMesh();
  });
  after(async () => {
    await mesh?.stop();
  });

  test('vars are JSON values as in Workers: numbers, booleans, objects arrive as themselves', async () => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const post = (vars: unknown) =>
      fetch(`${mesh.adminUrl}/v1/workers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'jsonvars',
          tenant: 'varsdemo',
          routes: ['*/jsonvars*'],
          mainModule: 'w.js',
          modules: [
            {
              name: 'w.js',
              type: 'esm',
              content: 'export default { fetch(r, env) { return Response.json({ n: env.N, t: typeof env.N, flag: env.FLAG, o: env.O, s: env.S }) } }',
            },
          ],
          vars,
        }),
      });
    const vars = { N: 2, FLAG: true, O: { list: [1, 'two', null], deep: { x: 1.5 } }, S: 'text' };
    assert.equal((await post(vars)).status, 201);
    const got = await waitFor('the worker', async () => {
      const r = await fetch(`${mesh.httpUrl}/jsonvars`);
      return r.status === 200 ? r.json() : undefined;
    });
    assert.deepEqual(got, { n: 2, t: 'number', flag: true, o: vars.O, s: 'text' });
    let deep: unknown = 0;
    for (let i = 0; i < 40; i++) deep = [deep];
    const refused = await post({ D: deep });
    assert.equal(refused.status, 400);
    assert.match(((await refused.json()) as { error: string }).error, /nested more than 32 deep/);
  });

  test('deploys are versions; rollback serves an earlier one; delete removes the worker', async () => {
    const v1 = await deploy('one');
    await waitFor('v1', async () => (await body()) === 'one' || undefined);
    const v2 = await deploy('two');
    assert.notEqual(v1, v2);
    await waitFor('v2', async () => (await body()) === 'two' || undefined);
    const list = await mesh.cli(['versions', 'versioned']);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, new RegExp(`^${v2}\\t.*\\tcurrent$`));
    assert.match(lines[1]!, new RegExp(`^${v1}\\t`));
    const out = join(dir, 'export');
    const exported = await mesh.cli(['export', 'default', out]);
    assert.equal(exported.code, 0, exported.stderr);
    const log = execFileSync('git', ['-C', out, 'log', '--format=%s'], { encoding: 'utf8' }).trim().split('\n');
    assert.deepEqual(log, [`deploy default/versioned ${v2}`, `deploy default/versioned ${v1}`]);
    assert.match(readFileSync(join(out, 'versioned', 'worker.js'), 'utf8'), /"two"/);
    assert.match(execFileSync('git', ['-C', out, 'show', 'HEAD~1:versioned/worker.js'], { encoding: 'utf8' }), /"one"/);
    const rb = await mesh.cli(['rollback', 'versioned', v1]);
    assert.equal(rb.code, 0, rb.stderr);
    await waitFor('the rollback to take effect', async () => (await body()) === 'one' || undefined);
    const bad = await mesh.cli(['rollback', 'versioned', 'f'.repeat(64)]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /404 worker default\/versioned has no version f+/);
    const malformed = await mesh.cli(['rollback', 'versioned', '../etc']);
    assert.match(malformed.stderr, /400 .*64 hex digits/);
    // An insider edits the stored code: the next hand-out detects it and nothing is served.
    const db = new Database(join(mesh.dataDir, 'supervisor', 'code.db'));
    for (const row of db.prepare('SELECT rowid, sealed FROM versions').all() as { rowid: number; sealed: Buffer }[]) {
      row.sealed[row.sealed.length - 1] ^= 1;
      db.prepare('UPDATE versions SET sealed = ? WHERE rowid = ?').run(row.sealed, row.rowid);
    }
    db.close();
    await mesh.cliOk(['rollback', 'versioned', v2]); // a fresh key: the sandbox must load again
    await waitFor('the tampered code to be refused', async () => (await body()) === 'status 502' || undefined);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '100'])).stdout, /sandbox:standard\tcode\.tampered\t-\tdenied/);
    const del = await mesh.cli(['delete', 'versioned']);
    assert.equal(del.code, 0, del.stderr);
    await waitFor('the route to go', async () => (await body()) === 'status 404' || undefined);
    assert.doesNotMatch((await mesh.cli(['workers'])).stdout, /versioned/);
    assert.match((await mesh.cli(['versions', 'versioned'])).stderr, /404 no worker default\/versioned/);
    assert.match((await mesh.cli(['audit', 'tail', '--limit', '100'])).stdout, /worker\.rollback\tdefault\/versioned[\s\S]*worker\.delete\tdefault\/versioned/);
  });

  test('deploy --config reads a wrangler.jsonc unchanged (routes, vars, limits, bindings)', async () => {
    const r = await mesh.cli(['deploy', '--config', 'examples/notes/wrangler.jsonc']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployed default\/notes version [0-9a-f]{64} on \*\/notes\*/);
    await waitFor('notes', async () => (await fetch(`${mesh.httpUrl}/notes?op=list`)).status === 200 || undefined);
    await fetch(`${mesh.httpUrl}/notes?op=add`, { method: 'POST', body: 'from config' });
    assert.deepEqual(await (await fetch(`${mesh.httpUrl}/notes?op=list`)).json(), [{ id: 1, text: 'from config' }]);
    const bad = await mesh.cli(['deploy', '--config', 'examples/notes/missing.jsonc']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /cannot read examples\/notes\/missing\.jsonc/);
  });

  test('deploy with no arguments uses the cordon.jsonc (or wrangler.jsonc) of the directory it runs in', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-cfg-'));
    writeFileSync(join(dir, 'worker.js'), `export default { fetch() { return new Response('from cordon.jsonc') } }`);
    writeFileSync(join(dir, 'cordon.jsonc'), `{\n  // found without --config\n  "name": "found", "main": "worker.js", "routes": ["*/found"],\n}`);
    const r = await mesh.cli(['deploy'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /deployed default\/found version/);
    const res = await waitFor('found', async () => {
      const x = await fetch(`${mesh.httpUrl}/found`);
      return x.status === 200 ? x : undefined;
    });
    assert.equal(await res.text(), 'from cordon.jsonc');
    const none = await mesh.cli(['deploy'], mkdtempSync(join(tmpdir(), 'cordon-empty-')));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /one of cordon\.jsonc, cordon\.json, wrangler\.json, wrangler\.jsonc, wrangler\.toml in this directory/);
  });
});
