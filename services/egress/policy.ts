/**
 * Deciding whether a worker may fetch a URL, and pinning the address it will connect to. One parser
 * (WHATWG URL) reads the URL for both the decision and the dial, so no spelling can mean one host to
 * the check and another to the connection (docs/security.md, "One URL parser"). Names are resolved here, every
 * answer is checked, and the connection goes to an address that was checked: there is no second
 * lookup for a rebinding DNS server to answer differently. Names that are not public (special-use
 * names such as `localhost` or `*.internal`, single labels) are refused before any lookup, so no
 * local resolver is ever asked about them. Only an operator-declared origin reaches past either check.
 */
import { isIP, type BlockList } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { CordonError } from '../../lib/errors.ts';
import { refusal } from '../../lib/ip-classify.ts';
import { nameRefusal, specialName } from '../../lib/special-use-names.ts';

/** The worker may not reach this URL: 403, and a refusal (egress audits it). Named, as the worker's log shows it. */
export class EgressDenied extends CordonError {
  constructor(reason: string) {
    super(`egress denied: ${reason}`, { status: 403, refusal: true });
    this.name = 'EgressDenied';
  }
}

export interface WorkerPolicy {
  /** Origins (`scheme://host:port`) the worker declared; reachable even when private (`tcp://` ones by connect() only). */
  origins: string[];
  /** Hosts (exact, or `*.example.com`) the worker may not reach even when public. */
  denyHosts: string[];
  /** If non-empty, the only hosts the worker may reach (besides its origins). */
  allowHosts: string[];
  denyCidrs?: BlockList;
}

export interface Pinned {
  url: URL;
  /** The checked address to connect to. */
  address: string;
  family: 4 | 6;
  port: number;
}

export const EMPTY_POLICY: WorkerPolicy = { origins: [], denyHosts: [], allowHosts: [] };

function hostMatches(host: string, patterns: string[]): boolean {
  return patterns.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p));
}

export function originOf(url: URL): string {
  return `${url.protocol}//${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
}

/** Parse and check everything but the address. */
export function parseTarget(text: string, policy: WorkerPolicy): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new EgressDenied(`not a valid URL: ${JSON.stringify(String(text).slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new EgressDenied(`only http: and https: URLs may be fetched, not ${url.protocol}`);
  if (url.username || url.password) throw new EgressDenied('URLs with credentials (user:password@) are not allowed');
  const host = url.hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (host === '') throw new EgressDenied('the URL has no host');
  if (hostMatches(host, policy.denyHosts)) throw new EgressDenied(`${host} is on this worker's deny list`);
  const isOrigin = policy.origins.includes(originOf(url));
  if (!isOrigin && !isIP(host)) {
    const why = nameRefusal(url.hostname);
    if (why) throw new EgressDenied(why);
  }
  if (!isOrigin && policy.allowHosts.length && !hostMatches(host, policy.allowHosts)) throw new EgressDenied(`${host} is not on this worker's allow list`);
  return url;
}

/**
 * Where a `connect()` may go: `hostname` and `port` read as an http: URL would be, and checked by the
 * same rules (deny and allow lists, special-use names; pin() then the addresses) — with the worker's
 * `tcp://` origins standing in for its http ones, so only an origin declared for sockets reaches
 * past them. Returns the URL and the policy to pin it with.
 */
export function socketTarget(hostname: string, port: number, policy: WorkerPolicy): { url: URL; policy: WorkerPolicy } {
  // One host, nothing else: no user, path, port or second address smuggled into the URL below.
  if (isIP(hostname) !== 6 && !/^(?:[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$/.test(hostname))
    throw new EgressDenied(`not a valid host name: ${JSON.stringify(hostname.slice(0, 200))}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new EgressDenied(`not a valid port: ${port}`);
  const socketPolicy = { ...policy, origins: policy.origins.filter((o) => o.startsWith('tcp://')).map((o) => `http://${o.slice('tcp://'.length)}`) };
  const host = isIP(hostname) === 6 ? `[${hostname}]` : hostname;
  return { url: parseTarget(`http://${host}:${port}/`, socketPolicy), policy: socketPolicy };
}

/** Resolve (if needed), check every address, and pick the one to connect to. */
export async function pin(url: URL, policy: WorkerPolicy, resolver: Resolver): Promise<Pinned> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const isOrigin = policy.origins.includes(originOf(url));
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  // RFC 6761 §6.3: localhost is loopback and is never asked of DNS (reached only as a declared origin).
  else if (specialName(host)?.loopback) addresses = ['127.0.0.1', '::1'];
  else {
    const name = host.replace(/\.$/, '');
    const [v4, v6] = await Promise.all([resolver.resolve4(name).catch(() => [] as string[]), resolver.resolve6(name).catch(() => [] as string[])]);
    addresses = [...v4, ...v6];
    if (addresses.length === 0) throw new Error(`could not resolve ${name}`);
  }
  for (const a of addresses) {
    const family = isIP(a) === 6 ? 'ipv6' : 'ipv4';
    if (policy.denyCidrs?.check(a, family)) throw new EgressDenied(`${host} resolves to ${a}, on this worker's deny list`);
    if (isOrigin) continue;
    // Every answer must be public: a name that also points inside is refused as a whole.
    const why = refusal(a);
    if (why) throw new EgressDenied(host === a ? why : `${host} resolves to ${why}`);
  }
  const address = addresses[0]!;
  return { url, address, family: isIP(address) as 4 | 6, port };
}

export function systemResolver(servers?: string[]): Resolver {
  const r = new Resolver({ timeout: 5000, tries: 2 });
  if (servers?.length) r.setServers(servers);
  return r;
}
