/**
 * Which addresses egress may connect to: an allow-list of global unicast. IPv6 must be inside
 * 2000::/3 and IPv4 outside multicast, and then the most specific row of the IANA special-purpose
 * registries covering the address (special-purpose-addresses.ts) decides; any reserved space not
 * listed there is refused by default. Forms that embed IPv4 (IPv4-mapped, NAT64 64:ff9b::/96, 6to4)
 * are judged by the IPv4 address they carry; other embeddings (IPv4-compatible, IPv4-translated,
 * local-use NAT64, Teredo) are refused outright.
 *
 * Membership is checked with Node's `net.BlockList`, one per row, rather than hand-written CIDR
 * arithmetic, and no third-party IP classifier is trusted here (several have had SSRF CVEs).
 */
import { BlockList, isIP } from 'node:net';
import {
  ADDRESS_SPACE,
  IPV4_SPECIAL_PURPOSE,
  IPV6_SPECIAL_PURPOSE,
  NAMED_OUTSIDE_GLOBAL_UNICAST,
  type SpecialPurposeBlock,
} from './special-purpose-addresses.ts';

type Family = 'ipv4' | 'ipv6';

function subnet(prefix: string): { list: BlockList; bits: number; family: Family } {
  const [net, bits] = prefix.split('/') as [string, string];
  const family: Family = isIP(net) === 4 ? 'ipv4' : 'ipv6';
  const list = new BlockList();
  list.addSubnet(net, Number(bits), family);
  return { list, bits: Number(bits), family };
}

const rows = (table: readonly SpecialPurposeBlock[]) => table.map((row) => ({ row, ...subnet(row.prefix) }));
const ROWS = { ipv4: rows(IPV4_SPECIAL_PURPOSE), ipv6: rows(IPV6_SPECIAL_PURPOSE) };
const SPACES = ADDRESS_SPACE.map((space) => ({ space, ...subnet(space.prefix) }));
const OUTSIDE_NAMES = NAMED_OUTSIDE_GLOBAL_UNICAST.map((n) => ({ n, ...subnet(n.prefix) }));

/** The most specific special-purpose row covering `address`, if any: the registries nest (e.g. 192.0.0.9/32 in 192.0.0.0/24). */
export function specialPurposeRow(address: string): SpecialPurposeBlock | undefined {
  const family: Family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
  let best: (typeof ROWS.ipv4)[number] | undefined;
  for (const r of ROWS[family]) if (r.list.check(address, family) && (!best || r.bits > best.bits)) best = r;
  return best?.row;
}

/** The sixteen bytes of an IPv6 address, in whatever spelling `isIP` accepts (the WHATWG URL parser canonicalises it). */
export function ipv6Bytes(address: string): number[] {
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = canonical.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]);
}

function embeddedIPv4(address: string, at: number): string {
  return ipv6Bytes(address)
    .slice(at, at + 4)
    .join('.');
}

function describe(row: { prefix: string; name: string; rfc: string }): string {
  return `${row.name} (${row.prefix}, ${row.rfc})`;
}

/** What an IPv4 address is, when that makes it refused ("Loopback (127.0.0.0/8, …)"). */
function refused4(address: string): string | undefined {
  for (const { space, list, family } of SPACES)
    if (space.rule === 'never-inside' && family === 'ipv4' && list.check(address, 'ipv4')) return `${describe(space)}, not unicast`;
  const row = specialPurposeRow(address);
  return row && explain(row);
}

function explain(row: SpecialPurposeBlock): string {
  return `${describe(row)}${row.why ? `: ${row.why}` : ''}`;
}

function refused6(address: string): string | undefined {
  const row = specialPurposeRow(address);
  if (row?.egress === 'embedded-ipv4') {
    const v4 = embeddedIPv4(address, row.embeddedAt!);
    const why = refused4(v4);
    return why && `${describe(row)} for ${v4}, which is ${why}`;
  }
  if (row) return explain(row);
  for (const { space, list, family } of SPACES) {
    if (space.rule === 'only-inside' && family === 'ipv6' && !list.check(address, 'ipv6')) {
      const named = OUTSIDE_NAMES.filter((o) => o.list.check(address, 'ipv6')).sort((a, b) => b.bits - a.bits)[0];
      return `${named ? `${describe(named.n)}, ` : ''}outside ${describe(space)}`;
    }
  }
  return undefined;
}

/** Why `address` may not be reached, or undefined when it is global unicast. Non-addresses are refused. */
export function refusal(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return `${JSON.stringify(address)} is not an IP address`;
  // A zone index (fe80::1%eth0) names a link, never a global destination.
  if (address.includes('%')) return `${address} has a zone index, so it is link-scoped`;
  const why = family === 4 ? refused4(address) : refused6(address);
  return why && `${address} is ${why}`;
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
