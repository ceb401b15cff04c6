/**
 * Attack (issue 13): node:dns through a real mesh, against a hostile or broken DNS-over-HTTPS resolver and
 * as a way around egress. The resolver (a stand-in for cloudflare-dns.com, its origin granted to the
 * attacker only) answers huge, endless and malformed bodies: each query fails with a DNS error code, the
 * endless one is cut off, the worker keeps serving. An answer naming a private address is only data: the
 * worker's fetch() to that address, or to the name, is still refused by egress and the loopback canary
 * never hit. A tenant without the grant cannot reach the resolver at all (egress refuses the DoH fetch).
 * A bystander of another tenant is served throughout.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { ServerResponse } from 'node:http';
import { type AttackMesh, startAttackMesh } from '../helpers/attack-mesh.ts';
import { type DohStandIn, startDohStandIn } from '../helpers/doh-stand-in.ts';
import { mayListen443 } from '../helpers/https-stand-in.ts';
import type { TestMesh } from '../helpers/mesh.ts';

const ADDRESS = '127.0.0.5';
const skip =
  !(await mayListen443(ADDRESS)) && process.env.CORDON_REQUIRE_ALL !== '1'
    ? `port 443 on ${ADDRESS} cannot be listened on (the DoH stand-in needs it: run as root)`
    : false;

/** The endless answer's bound: it stops here if never cut off (the worker reads at most 1 MiB of an answer). */
const ENDLESS_MAX = 64 << 20;

const WORKER = `import dp from 'node:dns/promises';
const settle = async (p) => { try { return ['ok', await p] } catch (e) { return ['err', e.code ?? e.message] } };
export default { async fetch(request) {
  const u = new URL(request.url);
  const q = u.searchParams.get('q');
  if (u.pathname === '/dns/ok') return new Response('ok');
  if (u.pathname === '/dns/resolve') return Response.json(await settle(dp.resolve(q, u.searchParams.get('type') ?? 'A')));
  if (u.pathname === '/dns/lookup') return Response.json(await settle(dp.lookup(q)));
  if (u.pathname === '/dns/follow') {
    // What the answer names, then a fetch of it: egress decides, not the answer.
    const found = await settle(dp.lookup(q));
    const port = u.searchParams.get('port');
    const byAddress = found[0] === 'ok' ? await settle(fetch('http://' + found[1].address + ':' + port + '/').then((r) => r.status)) : null;
    const byName = await settle(fetch('http://' + q + ':' + port + '/').then((r) => r.status));
    return Response.json({ found, byAddress, byName });
  }
  return new Response('no', { status: 404 });
} };`;

describe('attack: node:dns against a hostile resolver and around egress', { skip }, () => {
  let atk: AttackMesh;
  let mesh: TestMesh;
  let doh: DohStandIn;
  let canary: Server;
  let canaryHits = 0;
  let canaryPort = 0;
  let endlessSent = 0;
  const json = async (path: string) => {
    const res = await fetch(`${mesh.httpUrl}${path}`);
    assert.equal(res.status, 200, path);
    return (await res.json()) as unknown;
  };
  const bystander = async () => assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200, 'the bystander is served');

  const endless = (res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/dns-json' });
    res.write('{"Question":[{"name":"x","type":1}],"Answer":[');
    const chunk = Buffer.from(`${'{"name":"endless.example","type":1,"TTL":1,"data":"192.0.2.1"},'.repeat(1000)}`);
    const more = () => {
      while (endlessSent < ENDLESS_MAX && !res.destroyed) {
        endlessSent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('error', () => {});
    more();
  };
  const body =
    (text: string, status = 200) =>
    (res: ServerResponse) =>
      res.writeHead(status, { 'content-type': 'application/dns-json' }).end(text);

  before(async () => {
    canary = createServer((_req, res) => {
      canaryHits++;
      res.end('canary');
    });
    await new Promise<void>((r) => canary.listen(0, '127.0.0.1', r));
    canaryPort = (canary.address() as { port: number }).port;
    doh = await startDohStandIn(
      ADDRESS,
      { 'inside.example': { A: ['127.0.0.1'] }, 'meta.example': { A: ['169.254.169.254'] } },
      {
        'huge.example': body(
          `{"Question":[{"name":"huge.example","type":1}],"Answer":[{"name":"huge.example","type":1,"TTL":1,"data":"${'9'.repeat(4 << 20)}"}]}`,
        ),
        'endless.example': endless,
        'html.example': body('<html>not json</html>'),
        'null.example': body('null'),
        'noquestion.example': body('{"Question":[],"Answer":[]}'),
        'numberdata.example': body('{"Question":[{}],"Answer":[{"name":"x","type":1,"data":5}]}'),
        'stringanswer.example': body('{"Question":[{}],"Answer":"192.0.2.1"}'),
        'error.example': body('{"error":"refused"}'),
        'fails.example': body('{}', 500),
        'badmx.example': body('{"Question":[{}],"Answer":[{"name":"x","type":15,"TTL":1,"data":"nonsense"}]}'),
        'badcaa.example': body('{"Question":[{}],"Answer":[{"name":"x","type":257,"TTL":1,"data":"\\\\# 99 00"}]}'),
      },
      // What egress's own resolver says of the name the answer also names: loopback.
      { 'inside.example': ['127.0.0.1'] },
    );
    const project = (tenant: string, name: string, prefix: string, origins: string[]) => ({
      tenant,
      worker: WORKER.replaceAll("'/dns/", `'/${prefix}/`),
      probe: `/${prefix}/ok`,
      config: { name, compatibility_date: '2025-06-01', compatibility_flags: ['nodejs_compat'], route: `*/${prefix}/*`, cordon: { origins } },
    });
    atk = await startAttackMesh([project('attacker', 'dnsatk', 'dns', ['https://cloudflare-dns.com']), project('nogrant', 'dnsnogrant', 'dng', [])], doh.env);
    mesh = atk.mesh;
  });
  after(async () => {
    await atk?.stop();
    await doh?.stop();
    canary?.close();
  });

  test('huge, endless and malformed answers fail with DNS error codes; the endless one is cut off; the worker keeps serving', async () => {
    assert.deepEqual(await json('/dns/resolve?q=huge.example'), ['err', 'EBADQUERY']);
    assert.deepEqual(await json('/dns/resolve?q=endless.example'), ['err', 'EBADQUERY']);
    assert.ok(endlessSent < ENDLESS_MAX, `the endless answer was cut off (${endlessSent} bytes sent)`);
    for (const [name, code] of [
      ['html.example', 'EBADQUERY'],
      ['null.example', 'EBADRESP'],
      ['noquestion.example', 'EBADRESP'],
      ['numberdata.example', 'EBADRESP'],
      ['stringanswer.example', 'EBADRESP'],
      ['error.example', 'EBADRESP'],
      ['fails.example', 'EBADRESP'],
    ])
      assert.deepEqual(await json(`/dns/resolve?q=${name}`), ['err', code], name);
    assert.deepEqual(await json('/dns/resolve?q=badmx.example&type=MX'), ['err', 'EBADRESP']);
    assert.deepEqual(await json('/dns/resolve?q=badcaa.example&type=CAA'), ['err', 'EBADRESP']);
    assert.equal(await (await fetch(`${mesh.httpUrl}/dns/ok`)).text(), 'ok', 'the worker itself answers');
    await bystander();
  });

  test('an answer naming a private address is only data: fetch() of the address or the name is still refused by egress', async () => {
    const inside = (await json(`/dns/follow?q=inside.example&port=${canaryPort}`)) as Record<string, unknown>;
    assert.deepEqual(inside.found, ['ok', { address: '127.0.0.1', family: 4 }]);
    assert.equal((inside.byAddress as string[])[0], 'err', JSON.stringify(inside));
    assert.match(String((inside.byAddress as string[])[1]), /egress denied/);
    assert.equal((inside.byName as string[])[0], 'err', JSON.stringify(inside));
    assert.match(String((inside.byName as string[])[1]), /egress denied/);
    const meta = (await json(`/dns/follow?q=meta.example&port=80`)) as Record<string, unknown>;
    assert.deepEqual(meta.found, ['ok', { address: '169.254.169.254', family: 4 }]);
    assert.match(String((meta.byAddress as string[])[1]), /egress denied/);
    assert.equal(canaryHits, 0, 'the loopback canary was never reached');
    await bystander();
  });

  test("a tenant without the resolver's origin cannot reach it: the DoH fetch is egress's to refuse", async () => {
    const before = doh.asked.length;
    assert.deepEqual(await json('/dng/resolve?q=inside.example'), ['err', 'EBADQUERY']);
    assert.deepEqual(await json('/dng/lookup?q=inside.example'), ['err', 'ENOTFOUND']);
    assert.equal(doh.asked.length, before, 'the resolver was not asked');
    await bystander();
  });
});
