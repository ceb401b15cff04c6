import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EgressDenied, EMPTY_POLICY, parseTarget, pin, systemResolver, type WorkerPolicy } from './policy.ts';
import { refusal, cidrList } from '../../lib/ip-classify.ts';
import { startDnsServer } from './testing/dns-server.ts';
import { DNS_ANSWERS, MUST_ALLOW, MUST_REFUSE } from './testing/ssrf-corpus.ts';

let dns: Awaited<ReturnType<typeof startDnsServer>>;
let rebindCount = 0;
before(async () => {
  dns = await startDnsServer({ ...DNS_ANSWERS, 'rebind.test': () => (rebindCount++ === 0 ? ['93.184.215.14'] : ['127.0.0.1']) });
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
  const p = await check('http://public.test/');
  assert.equal(p.address, '93.184.215.14');
  assert.equal(p.port, 80);
});

test('DNS rebinding: the address checked is the address pinned; a later answer changes nothing', async () => {
  const p = await check('http://rebind.test/');
  assert.equal(p.address, '93.184.215.14');
  assert.ok(rebindCount >= 1);
  await assert.rejects(check('http://rebind.test/'), /resolves to 127\.0\.0\.1 is loopback/);
});

test('a name that does not resolve is a network error, not a policy refusal', async () => {
  await assert.rejects(check('http://nowhere.test/'), (e: Error) => !(e instanceof EgressDenied) && /could not resolve/.test(e.message));
});

test('a declared origin permits exactly that scheme, host and port', async () => {
  const policy = { ...EMPTY_POLICY, origins: ['http://127.0.0.1:8080'] };
  assert.equal((await check('http://127.0.0.1:8080/api', policy)).address, '127.0.0.1');
  await assert.rejects(check('http://127.0.0.1:8081/', policy), EgressDenied);
  await assert.rejects(check('https://127.0.0.1:8080/', policy), EgressDenied);
  await assert.rejects(check('http://127.0.0.2:8080/', policy), EgressDenied);
});

test('per-worker allow and deny lists of hosts and CIDRs', async () => {
  await assert.rejects(check('http://public.test/', { ...EMPTY_POLICY, denyHosts: ['public.test'] }), /deny list/);
  await assert.rejects(check('http://public.test/', { ...EMPTY_POLICY, denyHosts: ['*.test'] }), /deny list/);
  await assert.rejects(check('http://8.8.8.8/', { ...EMPTY_POLICY, allowHosts: ['public.test'] }), /allow list/);
  assert.ok(await check('http://public.test/', { ...EMPTY_POLICY, allowHosts: ['public.test'] }));
  await assert.rejects(check('http://public.test/', { ...EMPTY_POLICY, denyCidrs: cidrList(['93.184.0.0/16']) }), /deny list/);
  assert.throws(() => cidrList(['10.0.0.0/33']), /not a CIDR/);
});
