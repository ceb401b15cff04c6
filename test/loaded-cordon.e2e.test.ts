/**
 * Dynamic Workers in a stricter cordon (docs/dynamic-workers.md, "A stricter cordon for loaded
 * Workers"), end to end: a platform in the standard cordon deployed with `--loaded-cordon untrusted`
 * has its loaded Workers in the untrusted cordon's sandbox process — killing that process (and only
 * that one) loses them, while the platform's own isolate lives on; a platform without the setting
 * keeps them in its own process. Env stubs still reach the parent with its props, an inherited
 * fetch goes out as the parent (its identity, its egress policy), `globalOutbound: null` still
 * throws, loads are counted for the parent, and a deploy cannot make loaded Workers more trusted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NO_GLOBAL_OUTBOUND } from '../services/sandbox/runtime/abi.ts';
import { startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const PLATFORM = `import { WorkerEntrypoint } from 'cloudflare:workers';
let parentHits = 0;
let codeCalls = 0;
export class Api extends WorkerEntrypoint { hello() { return 'hi ' + this.ctx.props.who; } }
const APP = \`let hits = 0;
export default { async fetch(req, env) {
  hits++;
  const to = new URL(req.url).searchParams.get('to');
  const out = { hits, api: await env.API.hello() };
  if (to) { try { const r = await fetch(to); out.fetched = r.status + ' ' + await r.text(); } catch (e) { out.fetched = 'refused: ' + e.message; } }
  return Response.json(out);
} }\`;
export default { async fetch(req, env, ctx) {
  parentHits++;
  const url = new URL(req.url);
  const id = url.searchParams.get('id') ?? 'app';
  const sealed = url.searchParams.get('outbound') === 'null';
  const w = env.LOADER.get(id, () => {
    codeCalls++;
    return { compatibilityDate: '2026-11-01', mainModule: 'app.js', modules: { 'app.js': APP },
      env: { API: ctx.exports.Api({ props: { who: id } }) }, ...(sealed ? { globalOutbound: null } : {}) };
  });
  try {
    const r = await w.getEntrypoint().fetch('https://app.example/' + url.search);
    return Response.json({ parentHits, codeCalls, child: await r.json() });
  } catch (e) {
    return Response.json({ parentHits, codeCalls, error: e.message }, { status: 500 });
  }
} };
`;

interface Answer {
  parentHits: number;
  codeCalls: number;
  child?: { hits: number; api: string; fetched?: string };
  error?: string;
}

describe('Dynamic Workers in a loaded cordon', () => {
  let mesh: TestMesh;
  let dir: string;
  let origin: Server;
  let originPort = 0;
  const seen: string[] = [];
  const call = async (worker: string, query: string): Promise<Answer> => {
    const r = await fetch(`${mesh.httpUrl}/${worker}?${query}`);
    const body = (await r.json()) as Answer;
    assert.equal(r.status, 200, JSON.stringify(body));
    return body;
  };
  const deploy = (name: string, args: string[]) => mesh.cli(['deploy', '--config', join(dir, 'wrangler.jsonc'), '--name', name, ...args]);
  const created = async (name: string) => {
    const token = readFileSync(join(mesh.dataDir, 'admin.token'), 'utf8').trim();
    const r = await fetch(`${mesh.adminUrl}/v1/workers/default/${name}`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { created: Record<string, number> }).created['dynamic-worker'] ?? 0;
  };

  before(async () => {
    origin = createServer((req, res) => {
      seen.push(`${req.headers['cordon-worker']} ${req.url}`);
      res.end(`origin saw ${req.headers['cordon-worker']}`);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originPort = (origin.address() as { port: number }).port;
    dir = mkdtempSync(join(tmpdir(), 'cordon-loaded-'));
    writeFileSync(join(dir, 'platform.js'), PLATFORM);
    writeFileSync(
      join(dir, 'wrangler.jsonc'),
      JSON.stringify({ name: 'platform', main: 'platform.js', compatibility_date: '2026-11-01', worker_loaders: [{ binding: 'LOADER' }] }),
    );
    mesh = await startTestMesh();
    const origins = ['--origin', `http://127.0.0.1:${originPort}`];
    const strict = await deploy('strict', ['--cordon', 'standard', '--loaded-cordon', 'untrusted', '--route', '*/strict*', ...origins]);
    assert.equal(strict.code, 0, strict.stderr);
    const same = await deploy('same', ['--cordon', 'standard', '--route', '*/same*']);
    assert.equal(same.code, 0, same.stderr);
    await waitFor('both platforms', async () => ((await fetch(`${mesh.httpUrl}/same?id=warm`)).status === 200 ? true : undefined), 30_000);
  });
  after(async () => {
    await mesh?.stop();
    origin?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the loaded Worker lives in the untrusted sandbox process: killing it loses the Worker, not the parent; without the setting it stays in the parent’s process', async () => {
    const standardPid = mesh.servicePids().get('sandbox:standard');
    const untrustedPid = mesh.servicePids().get('sandbox:untrusted');
    assert.ok(standardPid && untrustedPid);
    const first = await call('strict', 'id=a');
    assert.deepEqual(first.child, { hits: 1, api: 'hi a' }, 'the env stub reaches the parent, with the props it gave');
    const second = await call('strict', 'id=a');
    assert.equal(second.codeCalls, first.codeCalls, 'cached by id: getCode is not called again');
    assert.equal(second.child?.hits, 2);
    const sameBefore = await call('same', 'id=a');
    await call('same', 'id=a');

    process.kill(untrustedPid, 'SIGKILL');
    await waitFor('a new untrusted sandbox', () => {
      const pid = mesh.servicePids().get('sandbox:untrusted');
      return pid && pid !== untrustedPid ? pid : undefined;
    });
    // Until the new process has connected, the loaded cordon is away: the call fails, and is retried (bounded).
    const after = await waitFor(
      'the strict platform to load its Worker again',
      async () => {
        const r = await fetch(`${mesh.httpUrl}/strict?id=a`);
        return r.status === 200 ? ((await r.json()) as Answer) : undefined;
      },
      30_000,
      250,
    );
    assert.equal(after.codeCalls, first.codeCalls + 1, 'the Worker was lost with the untrusted process: getCode ran again');
    assert.equal(after.child?.hits, 1, 'a fresh isolate in the new untrusted process');
    assert.ok(after.parentHits > second.parentHits, 'the parent’s isolate lived on in the standard process');
    assert.equal(mesh.servicePids().get('sandbox:standard'), standardPid, 'the standard sandbox did not restart');
    // The same code without --loaded-cordon: its Worker is in the standard process, untouched by the kill.
    const sameAfter = await call('same', 'id=a');
    assert.equal(sameAfter.codeCalls, sameBefore.codeCalls);
    assert.equal(sameAfter.child?.hits, 3);
  });

  test('an inherited fetch goes out as the parent, under its egress policy; globalOutbound null still throws', async () => {
    const allowed = await call('strict', `id=net&to=${encodeURIComponent(`http://127.0.0.1:${originPort}/from-loaded`)}`);
    assert.equal(allowed.child?.fetched, '200 origin saw default/strict');
    assert.ok(seen.includes('default/strict /from-loaded'), seen.join('\n'));
    // A private address the parent was not given: egress refuses it for the parent, so for its Worker too.
    const refused = await call('strict', `id=net&to=${encodeURIComponent('http://127.0.0.1:9/')}`);
    assert.match(refused.child?.fetched ?? '', /^(refused: |4\d\d |5\d\d )/);
    assert.doesNotMatch(refused.child?.fetched ?? '', /origin saw/);
    const sealed = await call('strict', `id=sealed&outbound=null&to=${encodeURIComponent(`http://127.0.0.1:${originPort}/sealed`)}`);
    assert.equal(sealed.child?.fetched, `refused: ${NO_GLOBAL_OUTBOUND}`);
    assert.ok(!seen.some((s) => s.endsWith('/sealed')));
  });

  test('loads are counted for the parent (reported by the loaded cordon’s process)', async () => {
    const before = await created('strict');
    await call('strict', `id=count-${Date.now()}`);
    await waitFor('the load to be counted', async () => ((await created('strict')) > before ? true : undefined));
  });

  test('a deploy cannot put loaded Workers in a more trusted cordon, nor an unknown one', async () => {
    const up = await deploy('upward', ['--cordon', 'untrusted', '--loaded-cordon', 'standard']);
    assert.notEqual(up.code, 0);
    assert.match(up.stderr, /loaded cordon standard is more trusted than the worker's own cordon untrusted/);
    const unknown = await deploy('unknown', ['--cordon', 'standard', '--loaded-cordon', 'nowhere']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown loaded cordon nowhere/);
  });
});
