/**
 * node:dns through a real mesh, deployed through the CLI as a user would: every query is the worker's own
 * fetch() to cloudflare-dns.com (here a DoH stand-in on loopback, its origin declared at deploy), answered in
 * RFC 8484's JSON dialect, and each record type comes back in Node's shapes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DohStandIn, startDohStandIn } from './helpers/doh-stand-in.ts';
import { mayListen443 } from './helpers/https-stand-in.ts';
import { fetchHost, startTestMesh, waitFor, type TestMesh } from './helpers/mesh.ts';

const ADDRESS = '127.0.0.4';
const skip =
  !(await mayListen443(ADDRESS)) && process.env.CORDON_REQUIRE_ALL !== '1'
    ? `port 443 on ${ADDRESS} cannot be listened on (the DoH stand-in needs it: run as root)`
    : false;

const WORKER = `import dns from 'node:dns';
import dp from 'node:dns/promises';
const settle = async (p) => { try { return await p } catch (e) { return [e.code, e.syscall, e.hostname] } };
export default { async fetch() {
  return Response.json({
    a: await settle(dp.resolve4('a.example')), ttl: await settle(dp.resolve4('a.example', { ttl: true })), aaaa: await settle(dp.resolve6('a.example')),
    lookup: await settle(dp.lookup('a.example')), all: await settle(dp.lookup('a.example', { all: true, order: 'ipv6first' })),
    v6: await settle(dp.lookup('a.example', 6)),
    txt: await settle(dp.resolveTxt('a.example')), mx: await settle(dp.resolveMx('a.example')), cname: await settle(dp.resolveCname('www.a.example')),
    ns: await settle(dp.resolveNs('a.example')), srv: await settle(dp.resolveSrv('_sip._udp.a.example')), soa: await settle(dp.resolveSoa('a.example')),
    caa: await settle(dp.resolveCaa('a.example')), naptr: await settle(dp.resolveNaptr('a.example')), ptr: await settle(dp.reverse('1.2.0.192.in-addr.arpa')),
    byType: await settle(dp.resolve('a.example', 'MX')),
    missing: await settle(dp.resolve4('nowhere.example')), lookupMissing: await settle(dp.lookup('nowhere.example')),
    callback: await new Promise((r) => dns.resolve4('a.example', (err, v) => r([err, v]))),
  });
} };`;

const RECORDS = {
  'a.example': {
    A: ['192.0.2.1', '192.0.2.2'],
    AAAA: ['2001:db8::1'],
    TXT: ['"v=spf1 -all"', '"one""two"'],
    MX: ['10 mail.a.example.', '20 backup.a.example.'],
    NS: ['ns1.a.example.'],
    SOA: ['ns1.a.example. hostmaster.a.example. 2024010101 7200 3600 1209600 300'],
    // 0 issue "ca.example", as Cloudflare answers CAA: RFC 3597's generic form.
    CAA: ['\\# 17 00 05 69 73 73 75 65 63 61 2e 65 78 61 6d 70 6c 65'],
    NAPTR: ['100 10 "S" "SIP+D2U" "" _sip._udp.a.example.'],
  },
  'www.a.example': { CNAME: ['a.example.'] },
  '_sip._udp.a.example': { SRV: ['5 10 5060 sip.a.example.'] },
  '1.2.0.192.in-addr.arpa': { PTR: ['a.example.'] },
};

let mesh: TestMesh;
let doh: DohStandIn;
let dir: string;
before(async () => {
  if (skip) return;
  doh = await startDohStandIn(ADDRESS, RECORDS);
  mesh = await startTestMesh(doh.env);
  dir = mkdtempSync(join(tmpdir(), 'cordon-dns-'));
  writeFileSync(join(dir, 'index.js'), WORKER);
  writeFileSync(
    join(dir, 'wrangler.json'),
    JSON.stringify({ name: 'dns-app', main: 'index.js', compatibility_date: '2025-06-01', compatibility_flags: ['nodejs_compat'] }),
  );
});
after(async () => {
  await mesh?.stop();
  await doh?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("node:dns resolves over DoH with the worker's own fetch(), each record in Node's shape", { skip }, async () => {
  const r = await mesh.cli(['deploy', '--origin', 'https://cloudflare-dns.com'], dir);
  assert.equal(r.code, 0, r.stderr);
  const body = await waitFor('dns-app', async () => {
    const res = await fetchHost(mesh, 'dns-app.default.workers.localhost', '/');
    return res.status === 200 ? ((await res.json()) as Record<string, unknown>) : undefined;
  });
  assert.deepEqual(body, {
    a: ['192.0.2.1', '192.0.2.2'],
    ttl: [
      { ttl: 300, address: '192.0.2.1' },
      { ttl: 300, address: '192.0.2.2' },
    ],
    aaaa: ['2001:db8::1'],
    lookup: { address: '192.0.2.1', family: 4 },
    all: [
      { address: '2001:db8::1', family: 6 },
      { address: '192.0.2.1', family: 4 },
      { address: '192.0.2.2', family: 4 },
    ],
    v6: { address: '2001:db8::1', family: 6 },
    txt: [['v=spf1 -all'], ['one', 'two']],
    mx: [
      { exchange: 'mail.a.example', priority: 10 },
      { exchange: 'backup.a.example', priority: 20 },
    ],
    cname: ['a.example'],
    ns: ['ns1.a.example'],
    srv: [{ priority: 5, weight: 10, port: 5060, name: 'sip.a.example.' }],
    soa: { nsname: 'ns1.a.example.', hostmaster: 'hostmaster.a.example.', serial: 2024010101, refresh: 7200, retry: 3600, expire: 1209600, minttl: 300 },
    caa: [{ critical: 0, issue: 'ca.example' }],
    naptr: [{ flags: 'S', service: 'SIP+D2U', regexp: '', replacement: '_sip._udp.a.example', order: 100, preference: 10 }],
    ptr: ['a.example'],
    byType: [
      { exchange: 'mail.a.example', priority: 10 },
      { exchange: 'backup.a.example', priority: 20 },
    ],
    missing: ['ENOTFOUND', 'queryA', 'nowhere.example'],
    lookupMissing: ['ENOTFOUND', 'queryA', 'nowhere.example'],
    callback: [null, ['192.0.2.1', '192.0.2.2']],
  });
  assert.ok(doh.asked.includes('a.example/TXT application/dns-json'), doh.asked.join('\n'));
});
