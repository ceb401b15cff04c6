import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EgressDenied, EMPTY_POLICY, parseTarget, pin, systemResolver, type WorkerPolicy } from './policy.ts';
import { refusal, cidrList } from '../../lib/ip-classify.ts';
import { startDnsServer } from './testing/dns-server.ts';
import { DNS_ANSWERS, MUST_ALLOW, MUST_REFUSE } from './testing/ssrf-corpus.ts';

let dns: Awaited<ReturnType<typeof startDnsServer>>;
let rebindCount = 0;
before(async () => {
  dns = await startDnsServer({ ...DNS_ANSWERS, 'rebind.example.com': () => (rebindCount++ === 0 ? ['93.184.215.14'] : ['127.0.0.1']) });
});
after(() => dns.stop());

const check = async (url: string, policy: WorkerPolicy = EMPTY_POLICY) => pin(parseTarget(url, policy), policy, systemResolver([dns.server]));

test(`${MUST_REFUSE.length} SSRF spellings are all refused, each with a reason`, async () => {
  assert.ok(MUST_REFUSE.length >= 100);
  const leaks: string[] = [];
  for (const url of MUST_REFUSE) {
    try {
      const p = await check(url);
      leaks.push(`${url} → ${p.address}`);
    } catch (e) {
      assert.ok(e instanceof EgressDenied, `${url}: expected an egress denial, got ${(e as Error).message}`);
      assert.match((e as Error).message, /^egress denied: \S/);
    }
  }
  assert.deepEqual(leaks, []);
});

test('public destinations are allowed and pinned to a checked address', async () => {
  for (const url of MUST_ALLOW) {
    const p = await check(url);
    assert.equal(refusal(p.address), undefined, url);
  }
  const p = await check('http://public.example.com/');
  assert.equal(p.address, '93.184.215.14');
  assert.equal(p.port, 80);
});

test('DNS rebinding: the address checked is the address pinned; a later answer changes nothing', async () => {
  const p = await check('http://rebind.example.com/');
  assert.equal(p.address, '93.184.215.14');
  assert.ok(rebindCount >= 1);
  await assert.rejects(check('http://rebind.example.com/'), /resolves to 127\.0\.0\.1 is Loopback/);
});

test('a name that does not resolve is a network error, not a policy refusal', async () => {
  await assert.rejects(check('http://nowhere.example.com/'), (e: Error) => !(e instanceof EgressDenied) && /could not resolve/.test(e.message));
});

test('a declared origin permits exactly that scheme, host and port', async () => {
  const policy = { ...EMPTY_POLICY, origins: ['http://127.0.0.1:8080'] };
  assert.equal((await check('http://127.0.0.1:8080/api', policy)).address, '127.0.0.1');
  await assert.rejects(check('http://127.0.0.1:8081/', policy), EgressDenied);
  await assert.rejects(check('https://127.0.0.1:8080/', policy), EgressDenied);
  await assert.rejects(check('http://127.0.0.2:8080/', policy), EgressDenied);
});

test('per-worker allow and deny lists of hosts and CIDRs', async () => {
  await assert.rejects(check('http://public.example.com/', { ...EMPTY_POLICY, denyHosts: ['public.example.com'] }), /deny list/);
  await assert.rejects(check('http://public.example.com/', { ...EMPTY_POLICY, denyHosts: ['*.example.com'] }), /deny list/);
  await assert.rejects(check('http://8.8.8.8/', { ...EMPTY_POLICY, allowHosts: ['public.example.com'] }), /allow list/);
  assert.ok(await check('http://public.example.com/', { ...EMPTY_POLICY, allowHosts: ['public.example.com'] }));
  await assert.rejects(check('http://public.example.com/', { ...EMPTY_POLICY, denyCidrs: cidrList(['93.184.0.0/16']) }), /deny list/);
  assert.throws(() => cidrList(['10.0.0.0/33']), /not a CIDR/);
});

test('special-use names are refused by name, and no resolver is asked about them', async () => {
  const before = dns.queries.length;
  for (const url of [
    'http://localhost./',
    'http://x.localhost/',
    'http://svc.internal/',
    'http://printer.local/',
    'http://router.home.arpa/',
    'http://intranet/',
  ]) {
    await assert.rejects(check(url), (e: Error) => e instanceof EgressDenied && /is a special-use name|single-label name/.test(e.message), url);
  }
  assert.deepEqual(dns.queries.slice(before), []);
  await assert.rejects(check('http://svc.internal/'), /^EgressDenied: egress denied: svc\.internal is a special-use name \(\.internal, ICANN/);
  // An allow list narrows; it never grants a name that is not public.
  await assert.rejects(check('http://svc.internal/', { ...EMPTY_POLICY, allowHosts: ['svc.internal'] }), /special-use name/);
});

test('an operator-declared origin still grants a special-use name; localhost is loopback without asking DNS', async () => {
  const internal = await check('http://svc.internal:8080/', { ...EMPTY_POLICY, origins: ['http://svc.internal:8080'] });
  assert.equal(internal.address, '93.184.215.14');
  await assert.rejects(check('http://svc.internal:8081/', { ...EMPTY_POLICY, origins: ['http://svc.internal:8080'] }), /special-use name/);
  const before = dns.queries.length;
  const local = await check('http://localhost:8080/', { ...EMPTY_POLICY, origins: ['http://localhost:8080'] });
  assert.equal(local.address, '127.0.0.1');
  assert.deepEqual(dns.queries.slice(before), [], 'localhost is never asked of DNS');
});

test('SIIT, NAT64 and 6to4 answers are judged by the IPv4 address they carry', async () => {
  await assert.rejects(check('http://siit.example.com/'), /SIIT IPv4-translated/);
  await assert.rejects(
    check('http://nat64.example.com/'),
    /64:ff9b::7f00:1 is IPv4-IPv6 Translat\. \(64:ff9b::\/96, RFC 6052\) for 127\.0\.0\.1, which is Loopback/,
  );
  assert.equal((await check('http://nat64-public.example.com/')).address, '64:ff9b::808:808');
});
