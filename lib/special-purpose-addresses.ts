/**
 * The IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890, updated by RFC 8190), as data:
 * one row per registry entry, with the registry's own name, RFC and its "Forwardable" and "Globally
 * Reachable" columns as the registry states them (`null` where it says N/A or leaves the column empty
 * for a deprecated block). `egress` is Cordon's decision for a destination whose most specific
 * covering row is that one, and `why` says why wherever it is not simply "the registry says it is not
 * globally reachable".
 *
 * Revision followed: the registries as they stand with RFC 9780 (Dummy IPv6 Prefix, 100:0:0:1::/64)
 * and RFC 9665 (2001:1::3/128) as their newest IPv6 rows, RFC 8880 (192.0.0.170–171) and RFC 7600
 * (192.0.0.8) among the newest IPv4 rows. A block the registry adds later inside 2000::/3 or
 * unicast IPv4 is allowed until it is added here; everything outside those spaces is refused
 * whether or not it is listed (see ADDRESS_SPACE).
 *
 * Beside the special-purpose rows, ADDRESS_SPACE holds the two entries of the IANA IPv4 and IPv6
 * Address Space Registries that make the check an allow-list: IPv4 multicast is not unicast, and
 * IPv6 is allowed only inside Global Unicast 2000::/3.
 */

export interface SpecialPurposeBlock {
  /** The address block exactly as the registry writes it. */
  prefix: string;
  /** The registry's name for it. */
  name: string;
  /** The registry's reference. */
  rfc: string;
  /** The registry's "Forwardable" column (null: N/A or empty). */
  forwardable: boolean | null;
  /** The registry's "Globally Reachable" column (null: N/A or empty). */
  globallyReachable: boolean | null;
  /**
   * What egress does with a destination whose most specific covering row is this one: refuse it, or
   * judge the IPv4 address it embeds (at `embeddedAt`, a byte offset) as if it had been given.
   */
  egress: 'refuse' | 'embedded-ipv4';
  embeddedAt?: number;
  /** Why egress departs from a plain reading of "Globally Reachable", where it does. */
  why?: string;
}

const ANYCAST = "an anycast service address: the nearest instance answers, which may be inside the operator's own network";
const IDENTIFIER = 'an identifier prefix, not a locator: no host is reached at one by plain IP';

/** IANA IPv4 Special-Purpose Address Registry. */
export const IPV4_SPECIAL_PURPOSE: readonly SpecialPurposeBlock[] = [
  { prefix: '0.0.0.0/8', name: '"This network"', rfc: 'RFC 791 §3.2', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '0.0.0.0/32', name: '"This host on this network"', rfc: 'RFC 1122 §3.2.1.3', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '10.0.0.0/8', name: 'Private-Use', rfc: 'RFC 1918', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '100.64.0.0/10', name: 'Shared Address Space', rfc: 'RFC 6598', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '127.0.0.0/8', name: 'Loopback', rfc: 'RFC 1122 §3.2.1.3', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '169.254.0.0/16', name: 'Link Local', rfc: 'RFC 3927', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '172.16.0.0/12', name: 'Private-Use', rfc: 'RFC 1918', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.0.0.0/24', name: 'IETF Protocol Assignments', rfc: 'RFC 6890 §2.1', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.0.0.0/29', name: 'IPv4 Service Continuity Prefix', rfc: 'RFC 7335', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.0.0.8/32', name: 'IPv4 dummy address', rfc: 'RFC 7600', forwardable: false, globallyReachable: false, egress: 'refuse' },
  {
    prefix: '192.0.0.9/32',
    name: 'Port Control Protocol Anycast',
    rfc: 'RFC 7723',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  {
    prefix: '192.0.0.10/32',
    name: 'Traversal Using Relays around NAT Anycast',
    rfc: 'RFC 8155',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  { prefix: '192.0.0.170/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 8880, RFC 7050 §2.2', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.0.0.171/32', name: 'NAT64/DNS64 Discovery', rfc: 'RFC 8880, RFC 7050 §2.2', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.0.2.0/24', name: 'Documentation (TEST-NET-1)', rfc: 'RFC 5737', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535', forwardable: true, globallyReachable: true, egress: 'refuse', why: ANYCAST },
  { prefix: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450', forwardable: true, globallyReachable: true, egress: 'refuse', why: ANYCAST },
  {
    prefix: '192.88.99.0/24',
    name: 'Deprecated (6to4 Relay Anycast)',
    rfc: 'RFC 7526',
    forwardable: null,
    globallyReachable: null,
    egress: 'refuse',
    why: 'deprecated; the registry gives it no reachability',
  },
  { prefix: '192.88.99.2/32', name: '6a44-relay anycast address', rfc: 'RFC 6751', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '192.168.0.0/16', name: 'Private-Use', rfc: 'RFC 1918', forwardable: true, globallyReachable: false, egress: 'refuse' },
  {
    prefix: '192.175.48.0/24',
    name: 'Direct Delegation AS112 Service',
    rfc: 'RFC 7534',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  { prefix: '198.18.0.0/15', name: 'Benchmarking', rfc: 'RFC 2544', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '198.51.100.0/24', name: 'Documentation (TEST-NET-2)', rfc: 'RFC 5737', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '203.0.113.0/24', name: 'Documentation (TEST-NET-3)', rfc: 'RFC 5737', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '240.0.0.0/4', name: 'Reserved', rfc: 'RFC 1112 §4', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '255.255.255.255/32', name: 'Limited Broadcast', rfc: 'RFC 8190, RFC 919 §7', forwardable: false, globallyReachable: false, egress: 'refuse' },
];

/** IANA IPv6 Special-Purpose Address Registry. */
export const IPV6_SPECIAL_PURPOSE: readonly SpecialPurposeBlock[] = [
  { prefix: '::1/128', name: 'Loopback Address', rfc: 'RFC 4291', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '::/128', name: 'Unspecified Address', rfc: 'RFC 4291', forwardable: false, globallyReachable: false, egress: 'refuse' },
  {
    prefix: '::ffff:0:0/96',
    name: 'IPv4-mapped Address',
    rfc: 'RFC 4291',
    forwardable: false,
    globallyReachable: false,
    egress: 'embedded-ipv4',
    embeddedAt: 12,
    why: 'a dual-stack socket connects to the embedded IPv4 address itself, so that address decides',
  },
  {
    prefix: '64:ff9b::/96',
    name: 'IPv4-IPv6 Translat.',
    rfc: 'RFC 6052',
    forwardable: true,
    globallyReachable: true,
    egress: 'embedded-ipv4',
    embeddedAt: 12,
    why: 'a NAT64 translator forwards to the embedded IPv4 address, so that address must be allowed too',
  },
  { prefix: '64:ff9b:1::/48', name: 'IPv4-IPv6 Translat.', rfc: 'RFC 8215', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '100::/64', name: 'Discard-Only Address Block', rfc: 'RFC 6666', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '100:0:0:1::/64', name: 'Dummy IPv6 Prefix', rfc: 'RFC 9780', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '2001::/23', name: 'IETF Protocol Assignments', rfc: 'RFC 2928', forwardable: false, globallyReachable: false, egress: 'refuse' },
  {
    prefix: '2001::/32',
    name: 'TEREDO',
    rfc: 'RFC 4380, RFC 8190',
    forwardable: true,
    globallyReachable: null,
    egress: 'refuse',
    why: 'the registry gives no reachability (N/A); the server and the obfuscated client it embeds are not a destination egress can judge',
  },
  {
    prefix: '2001:1::1/128',
    name: 'Port Control Protocol Anycast',
    rfc: 'RFC 7723',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  {
    prefix: '2001:1::2/128',
    name: 'Traversal Using Relays around NAT Anycast',
    rfc: 'RFC 8155',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  {
    prefix: '2001:1::3/128',
    name: 'DNS-SD Service Registration Protocol Anycast',
    rfc: 'RFC 9665',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  { prefix: '2001:2::/48', name: 'Benchmarking', rfc: 'RFC 5180, RFC Errata 1752', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450', forwardable: true, globallyReachable: true, egress: 'refuse', why: ANYCAST },
  { prefix: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535', forwardable: true, globallyReachable: true, egress: 'refuse', why: ANYCAST },
  {
    prefix: '2001:10::/28',
    name: 'Deprecated (previously ORCHID)',
    rfc: 'RFC 4843',
    forwardable: null,
    globallyReachable: null,
    egress: 'refuse',
    why: 'deprecated; the registry gives it no reachability',
  },
  { prefix: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343', forwardable: true, globallyReachable: true, egress: 'refuse', why: IDENTIFIER },
  {
    prefix: '2001:30::/28',
    name: 'Drone Remote ID Protocol Entity Tags (DETs) Prefix',
    rfc: 'RFC 9374',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: IDENTIFIER,
  },
  { prefix: '2001:db8::/32', name: 'Documentation', rfc: 'RFC 3849', forwardable: false, globallyReachable: false, egress: 'refuse' },
  {
    prefix: '2002::/16',
    name: '6to4',
    rfc: 'RFC 3056',
    forwardable: true,
    globallyReachable: null,
    egress: 'embedded-ipv4',
    embeddedAt: 2,
    why: 'the registry gives no reachability (N/A); a 6to4 packet goes to the IPv4 address it embeds, so that address decides',
  },
  {
    prefix: '2620:4f:8000::/48',
    name: 'Direct Delegation AS112 Service',
    rfc: 'RFC 7534',
    forwardable: true,
    globallyReachable: true,
    egress: 'refuse',
    why: ANYCAST,
  },
  { prefix: '3fff::/20', name: 'Documentation', rfc: 'RFC 9637', forwardable: false, globallyReachable: false, egress: 'refuse' },
  { prefix: '5f00::/16', name: 'Segment Routing (SRv6) SIDs', rfc: 'RFC 9602', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: 'fc00::/7', name: 'Unique-Local', rfc: 'RFC 4193, RFC 8190', forwardable: true, globallyReachable: false, egress: 'refuse' },
  { prefix: 'fe80::/10', name: 'Link-Local Unicast', rfc: 'RFC 4291', forwardable: false, globallyReachable: false, egress: 'refuse' },
];

export interface AddressSpace {
  prefix: string;
  name: string;
  rfc: string;
  /** Whether a destination must be inside this space (allow-list) or outside it. */
  rule: 'only-inside' | 'never-inside';
}

/** From the IANA IPv4 and IPv6 Address Space Registries: what "unicast" means before any special purpose. */
export const ADDRESS_SPACE: readonly AddressSpace[] = [
  { prefix: '224.0.0.0/4', name: 'Multicast', rfc: 'RFC 5771', rule: 'never-inside' },
  { prefix: '2000::/3', name: 'Global Unicast', rfc: 'RFC 4291', rule: 'only-inside' },
];

/**
 * IPv6 spaces outside 2000::/3 that are refused by the allow-list anyway; named here only so that a
 * refusal says what the address is (none of them is a row of the special-purpose registry).
 */
export const NAMED_OUTSIDE_GLOBAL_UNICAST: readonly { prefix: string; name: string; rfc: string }[] = [
  { prefix: '::/96', name: 'Deprecated IPv4-compatible', rfc: 'RFC 4291 §2.5.5.1' },
  { prefix: '::ffff:0:0:0/96', name: 'SIIT IPv4-translated', rfc: 'RFC 2765' },
  { prefix: 'fec0::/10', name: 'Deprecated Site-Local', rfc: 'RFC 3879' },
  { prefix: 'ff00::/8', name: 'Multicast', rfc: 'RFC 4291' },
];
