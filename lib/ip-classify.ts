/**
 * Which addresses egress may connect to: public unicast only. A table of refused ranges checked with
 * Node's `net.BlockList` (so no hand-written CIDR arithmetic; see security-notes F10 for why
 * third-party IP classifiers are not trusted here). IPv6 forms that embed an IPv4 address
 * (IPv4-mapped, -compatible, NAT64, 6to4, Teredo) are refused as a whole, as smokescreen does, except
 * IPv4-mapped, which BlockList matches against the IPv4 table itself.
 */
import { BlockList, isIP } from 'node:net';

const REFUSED: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['0.0.0.0', 8, 'ipv4', '"this network" (0.0.0.0/8)'],
  ['10.0.0.0', 8, 'ipv4', 'private (10/8)'],
  ['100.64.0.0', 10, 'ipv4', 'carrier-grade NAT (100.64/10)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata lives here)'],
  ['172.16.0.0', 12, 'ipv4', 'private (172.16/12)'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'ipv4', 'documentation (TEST-NET-1)'],
  ['192.88.99.0', 24, 'ipv4', '6to4 relay anycast'],
  ['192.168.0.0', 16, 'ipv4', 'private (192.168/16)'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['198.51.100.0', 24, 'ipv4', 'documentation (TEST-NET-2)'],
  ['203.0.113.0', 24, 'ipv4', 'documentation (TEST-NET-3)'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved (240/4, broadcast)'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 96, 'ipv6', 'IPv4-compatible'],
  ['64:ff9b::', 96, 'ipv6', 'NAT64'],
  ['64:ff9b:1::', 48, 'ipv6', 'local NAT64'],
  ['100::', 64, 'ipv6', 'discard-only'],
  ['2001::', 32, 'ipv6', 'Teredo'],
  ['2001:2::', 48, 'ipv6', 'benchmarking'],
  ['2001:10::', 28, 'ipv6', 'ORCHID'],
  ['2001:20::', 28, 'ipv6', 'ORCHIDv2'],
  ['2001:db8::', 32, 'ipv6', 'documentation'],
  ['2002::', 16, 'ipv6', '6to4'],
  ['3fff::', 20, 'ipv6', 'documentation'],
  ['fc00::', 7, 'ipv6', 'unique local (private)'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const lists = REFUSED.map(([net, prefix, type, why]) => {
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return { list, why };
});
const globalUnicast6 = new BlockList();
globalUnicast6.addSubnet('2000::', 3, 'ipv6');

/** Why `address` may not be reached, or undefined when it is public unicast. Non-addresses are refused. */
export function refusal(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { list, why } of lists) if (list.check(address, type)) return `${address} is ${why}`;
  // IPv4-mapped addresses were matched against the IPv4 table above; anything else outside 2000::/3 is unassigned.
  if (family === 6 && !/^::ffff:/i.test(address) && !globalUnicast6.check(address, 'ipv6')) return `${address} is outside global unicast (2000::/3)`;
  return undefined;
}

/** Parse a CIDR such as `10.1.0.0/16` or `2001:db8::/32` into a BlockList entry (for per-worker lists). */
export function cidrList(cidrs: string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [net, bits] = c.split('/');
    const family = isIP(net ?? '');
    const prefix = Number(bits ?? (family === 4 ? 32 : 128));
    if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`not a CIDR: ${JSON.stringify(c)}`);
    list.addSubnet(net!, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}
