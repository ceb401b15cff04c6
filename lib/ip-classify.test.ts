import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv6Bytes, refusal, specialPurposeRow } from './ip-classify.ts';
import { ADDRESS_SPACE, IPV4_SPECIAL_PURPOSE, IPV6_SPECIAL_PURPOSE, NAMED_OUTSIDE_GLOBAL_UNICAST } from './special-purpose-addresses.ts';

/**
 * Per registry row: addresses inside it with whether egress allows them, and the address just
 * outside it (past its last address, or before its first where that is clearer) with the same.
 * Written out by hand, not computed, so a wrong prefix length or a wrong decision shows here.
 */
const CASES: Record<string, { inside: [string, boolean][]; outside: [string, boolean] }> = {
  // IPv4
  '0.0.0.0/8': { inside: [['0.1.2.3', false]], outside: ['1.0.0.0', true] },
  '0.0.0.0/32': { inside: [['0.0.0.0', false]], outside: ['0.0.0.1', false] },
  '10.0.0.0/8': { inside: [['10.255.255.255', false]], outside: ['11.0.0.0', true] },
  '100.64.0.0/10': { inside: [['100.127.255.254', false]], outside: ['100.128.0.0', true] },
  '127.0.0.0/8': { inside: [['127.255.255.254', false]], outside: ['128.0.0.0', true] },
  '169.254.0.0/16': { inside: [['169.254.169.254', false]], outside: ['169.255.0.0', true] },
  '172.16.0.0/12': { inside: [['172.31.255.255', false]], outside: ['172.32.0.0', true] },
  '192.0.0.0/24': { inside: [['192.0.0.200', false]], outside: ['192.0.1.0', true] },
  '192.0.0.0/29': { inside: [['192.0.0.7', false]], outside: ['192.0.0.8', false] },
  '192.0.0.8/32': { inside: [['192.0.0.8', false]], outside: ['192.0.0.7', false] },
  '192.0.0.9/32': { inside: [['192.0.0.9', false]], outside: ['192.0.0.8', false] },
  '192.0.0.10/32': { inside: [['192.0.0.10', false]], outside: ['192.0.0.11', false] },
  '192.0.0.170/32': { inside: [['192.0.0.170', false]], outside: ['192.0.0.169', false] },
  '192.0.0.171/32': { inside: [['192.0.0.171', false]], outside: ['192.0.0.172', false] },
  '192.0.2.0/24': { inside: [['192.0.2.255', false]], outside: ['192.0.3.0', true] },
  '192.31.196.0/24': { inside: [['192.31.196.1', false]], outside: ['192.31.197.0', true] },
  '192.52.193.0/24': { inside: [['192.52.193.1', false]], outside: ['192.52.194.0', true] },
  '192.88.99.0/24': { inside: [['192.88.99.1', false]], outside: ['192.88.100.0', true] },
  '192.88.99.2/32': { inside: [['192.88.99.2', false]], outside: ['192.88.99.3', false] },
  '192.168.0.0/16': { inside: [['192.168.255.255', false]], outside: ['192.169.0.0', true] },
  '192.175.48.0/24': { inside: [['192.175.48.53', false]], outside: ['192.175.49.0', true] },
  '198.18.0.0/15': { inside: [['198.19.255.255', false]], outside: ['198.20.0.0', true] },
  '198.51.100.0/24': { inside: [['198.51.100.1', false]], outside: ['198.51.101.0', true] },
  '203.0.113.0/24': { inside: [['203.0.113.1', false]], outside: ['203.0.114.0', true] },
  '240.0.0.0/4': { inside: [['240.0.0.1', false]], outside: ['239.255.255.255', false] },
  '255.255.255.255/32': { inside: [['255.255.255.255', false]], outside: ['255.255.255.254', false] },
  // IPv6
  '::1/128': {
    inside: [
      ['::1', false],
      ['0:0:0:0:0:0:0:1', false],
    ],
    outside: ['::2', false],
  },
  '::/128': { inside: [['::', false]], outside: ['::1', false] },
  '::ffff:0:0/96': {
    inside: [
      ['::ffff:7f00:1', false],
      ['::ffff:127.0.0.1', false],
      ['::ffff:a9fe:a9fe', false],
      ['::ffff:808:808', true],
      ['::ffff:8.8.8.8', true],
    ],
    outside: ['::1:0:0:0', false],
  },
  '64:ff9b::/96': {
    inside: [
      ['64:ff9b::7f00:1', false],
      ['64:ff9b::10.0.0.1', false],
      ['64:ff9b::c000:209', false],
      ['64:ff9b::808:808', true],
    ],
    outside: ['64:ff9b::1:0:0', false],
  },
  '64:ff9b:1::/48': { inside: [['64:ff9b:1::808:808', false]], outside: ['64:ff9b:2::', false] },
  '100::/64': { inside: [['100::ffff', false]], outside: ['100:0:0:1::', false] },
  '100:0:0:1::/64': { inside: [['100:0:0:1::1', false]], outside: ['100:0:0:2::', false] },
  '2001::/23': { inside: [['2001:1ff::1', false]], outside: ['2001:200::', true] },
  '2001::/32': { inside: [['2001:0:4136:e378:8000:63bf:3fff:fdd2', false]], outside: ['2001:1::', false] },
  '2001:1::1/128': { inside: [['2001:1::1', false]], outside: ['2001:1::', false] },
  '2001:1::2/128': { inside: [['2001:1::2', false]], outside: ['2001:1::4', false] },
  '2001:1::3/128': { inside: [['2001:1::3', false]], outside: ['2001:1::4', false] },
  '2001:2::/48': { inside: [['2001:2::ffff', false]], outside: ['2001:2:1::', false] },
  '2001:3::/32': { inside: [['2001:3::1', false]], outside: ['2001:4::', false] },
  '2001:4:112::/48': { inside: [['2001:4:112::1', false]], outside: ['2001:4:113::', false] },
  '2001:10::/28': { inside: [['2001:1f::1', false]], outside: ['2001:f::', false] },
  '2001:20::/28': { inside: [['2001:2f::1', false]], outside: ['2001:1f::1', false] },
  '2001:30::/28': { inside: [['2001:3f::1', false]], outside: ['2001:40::', false] },
  '2001:db8::/32': { inside: [['2001:db8::1', false]], outside: ['2001:db9::', true] },
  '2002::/16': {
    inside: [
      ['2002:7f00:1::', false],
      ['2002:a00:1::1', false],
      ['2002:808:808::1', true],
    ],
    outside: ['2003::', true],
  },
  '2620:4f:8000::/48': { inside: [['2620:4f:8000::1', false]], outside: ['2620:4f:8001::', true] },
  '3fff::/20': { inside: [['3fff:fff::1', false]], outside: ['3fff:1000::', true] },
  '5f00::/16': { inside: [['5f00::1', false]], outside: ['5f01::', false] },
  'fc00::/7': { inside: [['fd12:3456::1', false]], outside: ['fe00::', false] },
  'fe80::/10': { inside: [['fe80::1', false]], outside: ['fec0::', false] },
};

for (const row of [...IPV4_SPECIAL_PURPOSE, ...IPV6_SPECIAL_PURPOSE]) {
  test(`registry row ${row.prefix} (${row.name}, ${row.rfc})`, () => {
    const c = CASES[row.prefix];
    assert.ok(c, `no test case for the row ${row.prefix}`);
    for (const [address, allowed] of c.inside) {
      assert.equal(specialPurposeRow(address), row, `${address} falls under ${row.prefix}`);
      assert.equal(refusal(address) === undefined, allowed, `${address}: ${refusal(address)}`);
      if (!allowed && row.egress === 'refuse') assert.ok(refusal(address)!.includes(`(${row.prefix}, ${row.rfc})`), refusal(address));
    }
    const [address, allowed] = c.outside;
    assert.notEqual(specialPurposeRow(address), row, `${address} is outside ${row.prefix}`);
    assert.equal(refusal(address) === undefined, allowed, `${address}: ${refusal(address)}`);
    assert.ok(!refusal(address)?.includes(`(${row.prefix},`), `${address} is not refused for ${row.prefix}: ${refusal(address)}`);
  });
}

test('the table is read as the registry states it: egress departs from "Globally Reachable" only with a reason', () => {
  assert.equal(Object.keys(CASES).length, IPV4_SPECIAL_PURPOSE.length + IPV6_SPECIAL_PURPOSE.length, 'one case per row, none for a row that is gone');
  for (const row of [...IPV4_SPECIAL_PURPOSE, ...IPV6_SPECIAL_PURPOSE]) {
    if (row.globallyReachable !== false || row.egress !== 'refuse') assert.ok(row.why, `${row.prefix} needs a why`);
    assert.equal(row.egress === 'embedded-ipv4', row.embeddedAt !== undefined, row.prefix);
  }
  // Only three rows are ever judged by what they carry; nothing the registry calls non-global is allowed outright.
  assert.deepEqual(
    IPV6_SPECIAL_PURPOSE.filter((r) => r.egress === 'embedded-ipv4').map((r) => r.prefix),
    ['::ffff:0:0/96', '64:ff9b::/96', '2002::/16'],
  );
});

test('address space: IPv4 multicast is not unicast; IPv6 is allowed only inside 2000::/3', () => {
  assert.deepEqual(
    ADDRESS_SPACE.map((s) => s.prefix),
    ['224.0.0.0/4', '2000::/3'],
  );
  assert.match(refusal('224.0.0.0')!, /Multicast \(224\.0\.0\.0\/4, RFC 5771\)/);
  assert.match(refusal('239.255.255.250')!, /Multicast/);
  assert.equal(refusal('223.255.255.255'), undefined);
  assert.equal(refusal('2000::1'), undefined);
  assert.equal(refusal('3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), undefined);
  for (const outside of ['1fff:ffff::1', '4000::', 'e000::1', '200::1'])
    assert.match(refusal(outside)!, /outside Global Unicast \(2000::\/3, RFC 4291\)/, outside);
});

test('IPv6 spaces outside 2000::/3 are named in the refusal: IPv4-compatible, SIIT, site-local, multicast', () => {
  const inside: Record<string, string> = { '::/96': '::7f00:1', '::ffff:0:0:0/96': '::ffff:0:7f00:1', 'fec0::/10': 'fec0::1', 'ff00::/8': 'ff02::1' };
  for (const n of NAMED_OUTSIDE_GLOBAL_UNICAST)
    assert.match(refusal(inside[n.prefix]!)!, new RegExp(`${n.name} \\(${n.prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), n.prefix);
  // SIIT is refused whatever it carries, a global IPv4 address included.
  for (const siit of ['::ffff:0:7f00:1', '0:0:0:0:ffff:0:7f00:1', '::ffff:0:127.0.0.1', '::ffff:0:808:808'])
    assert.match(refusal(siit)!, /SIIT IPv4-translated/, siit);
});

test('spellings: every form isIP accepts is read the same; zone indexes and non-addresses are refused', () => {
  assert.deepEqual(ipv6Bytes('::ffff:127.0.0.1'), ipv6Bytes('0:0:0:0:0:FFFF:7F00:0001'));
  assert.deepEqual(ipv6Bytes('2002:7f00:1::'), [0x20, 0x02, 0x7f, 0, 0, 1, ...Array(10).fill(0)]);
  assert.match(refusal('fe80::1%eth0')!, /zone index/);
  assert.match(refusal('2606:4700::1%1')!, /zone index/);
  assert.match(refusal('localhost')!, /not an IP address/);
  assert.match(refusal('')!, /not an IP address/);
  assert.equal(refusal('8.8.8.8'), undefined);
  assert.equal(refusal('2606:4700:4700::1111'), undefined);
});
