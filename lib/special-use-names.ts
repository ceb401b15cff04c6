/**
 * Names that are not public host names, refused by name before any DNS lookup: a resolver that
 * answers one (split-horizon DNS, /etc/hosts-like local zones, mDNS gateways, a search list) answers
 * from inside the operator's network, and what it says is not evidence of a public destination —
 * not even when the address looks public.
 *
 * SPECIAL_USE_NAMES is the IANA Special-Use Domain Names registry (RFC 6761), one row per entry as the
 * registry lists it (revision with resolver.arpa, RFC 9462, and service.arpa, RFC 9665, as its newest
 * entries), with Cordon's decision. PRIVATE_USE_NAMES are names outside that registry that can only
 * ever be answered privately. A name matches a row when it is the row's name or a subdomain of it.
 * A name of one label (`http://intranet/`) is refused too: dotless names are not used on the public
 * Internet (ICANN prohibits them for gTLDs) and a resolver answers them from local zones.
 */

export interface SpecialName {
  /** The domain, lower case, without the trailing dot. */
  name: string;
  /** The reference the registry gives (or, for a name outside it, where it is reserved). */
  rfc: string;
  /** Whether egress refuses the name and everything under it. */
  refused: boolean;
  why: string;
  /** RFC 6761 §6.3: the name means loopback, and is never asked of DNS. */
  loopback?: true;
}

const PRIVATE_REVERSE = 'reverse-mapping zone of non-public addresses: any address answer is a local one';
const MDNS_REVERSE = 'reverse-mapping zone of link-local addresses, answered by multicast DNS';
const NAT64_DISCOVERY = 'NAT64 prefix discovery, answered by the local resolver';

/** IANA Special-Use Domain Names registry. */
export const SPECIAL_USE_NAMES: readonly SpecialName[] = [
  { name: '6tisch.arpa', rfc: 'RFC 9031', refused: true, why: 'used only inside a 6TiSCH network' },
  { name: '10.in-addr.arpa', rfc: 'RFC 6761', refused: true, why: PRIVATE_REVERSE },
  ...Array.from({ length: 16 }, (_, i) => ({ name: `${16 + i}.172.in-addr.arpa`, rfc: 'RFC 6761', refused: true, why: PRIVATE_REVERSE })),
  { name: '168.192.in-addr.arpa', rfc: 'RFC 6761', refused: true, why: PRIVATE_REVERSE },
  { name: '170.0.0.192.in-addr.arpa', rfc: 'RFC 8880', refused: true, why: NAT64_DISCOVERY },
  { name: '171.0.0.192.in-addr.arpa', rfc: 'RFC 8880', refused: true, why: NAT64_DISCOVERY },
  { name: '254.169.in-addr.arpa', rfc: 'RFC 6762', refused: true, why: MDNS_REVERSE },
  { name: '8.e.f.ip6.arpa', rfc: 'RFC 6762', refused: true, why: MDNS_REVERSE },
  { name: '9.e.f.ip6.arpa', rfc: 'RFC 6762', refused: true, why: MDNS_REVERSE },
  { name: 'a.e.f.ip6.arpa', rfc: 'RFC 6762', refused: true, why: MDNS_REVERSE },
  { name: 'b.e.f.ip6.arpa', rfc: 'RFC 6762', refused: true, why: MDNS_REVERSE },
  { name: 'alt', rfc: 'RFC 9476', refused: true, why: 'names of non-DNS systems: the public DNS never answers them' },
  { name: 'example', rfc: 'RFC 6761', refused: true, why: 'never delegated: an answer can only come from a local resolver' },
  // Delegated, with public answers; RFC 6761 §6.5 asks resolvers to treat them as any other name, so the address check decides.
  { name: 'example.com', rfc: 'RFC 6761', refused: false, why: 'delegated in the public DNS' },
  { name: 'example.net', rfc: 'RFC 6761', refused: false, why: 'delegated in the public DNS' },
  { name: 'example.org', rfc: 'RFC 6761', refused: false, why: 'delegated in the public DNS' },
  { name: 'home.arpa', rfc: 'RFC 8375', refused: true, why: 'names on a residential network' },
  { name: 'invalid', rfc: 'RFC 6761', refused: true, why: 'guaranteed not to exist: an answer is a local fabrication' },
  { name: 'ipv4only.arpa', rfc: 'RFC 8880', refused: true, why: NAT64_DISCOVERY },
  { name: 'local', rfc: 'RFC 6762', refused: true, why: 'multicast DNS names on the local link' },
  { name: 'localhost', rfc: 'RFC 6761', refused: true, why: 'loopback: a resolver that answers it is not trusted to answer anything else', loopback: true },
  { name: 'onion', rfc: 'RFC 7686', refused: true, why: 'Tor onion services, never in the DNS' },
  { name: 'resolver.arpa', rfc: 'RFC 9462', refused: true, why: 'answered by the local resolver about itself' },
  { name: 'service.arpa', rfc: 'RFC 9665', refused: true, why: 'service discovery names of the local network' },
  { name: 'test', rfc: 'RFC 6761', refused: true, why: 'never delegated: an answer can only come from a local resolver' },
];

/** Names outside the registry that are reserved for, or only ever seen in, private networks. */
export const PRIVATE_USE_NAMES: readonly SpecialName[] = [
  { name: 'internal', rfc: 'ICANN Board resolution 2024.07.29.06', refused: true, why: 'reserved for private use, never delegated' },
  ...['intranet', 'private', 'corp', 'home', 'lan'].map((name) => ({
    name,
    rfc: 'RFC 6762 appendix G',
    refused: true,
    why: 'used on private networks, not delegated in the public DNS',
  })),
];

const ALL = [...SPECIAL_USE_NAMES, ...PRIVATE_USE_NAMES];

/** A host name as DNS compares it: lower case, without the one trailing dot of a fully qualified name. */
export function canonicalName(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

/** The most specific row `host` falls under, if any. */
export function specialName(host: string): SpecialName | undefined {
  const name = canonicalName(host);
  let best: SpecialName | undefined;
  for (const row of ALL) if ((name === row.name || name.endsWith(`.${row.name}`)) && (!best || row.name.length > best.name.length)) best = row;
  return best;
}

/** Why the host name `host` may not be looked up, or undefined when it may be (then its addresses decide). */
export function nameRefusal(host: string): string | undefined {
  const name = canonicalName(host);
  if (name.split('.').some((label) => label === '')) return `${JSON.stringify(host)} is not a valid host name (it has an empty label)`;
  const row = specialName(name);
  if (row?.refused) return `${name} is a special-use name (.${row.name}, ${row.rfc}): ${row.why}`;
  if (!row && !name.includes('.')) return `${name} is a single-label name, which only a local resolver answers`;
  return undefined;
}
