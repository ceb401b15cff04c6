/**
 * The Host header, checked before it routes anything or goes into the URL the worker sees: a host
 * name (letters, digits, `-`, `_`, dots), a dotted IPv4 address or a bracketed IPv6 one, then an
 * optional port. Anything else — a path, a query, userinfo, a second host, spaces, non-ASCII — is
 * refused (400), so nothing but a host can reach the worker's URL through it.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface RequestHost {
  /** `host[:port]` as the worker's URL carries it (lower case). */
  authority: string;
  /** What routes match: no port, no brackets, no trailing dot. */
  name: string;
}

const HOST = /^(?:\[([0-9a-f:.]{2,45})\]|([a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?))(?::(\d{1,5}))?$/;

export function parseHost(header: string | undefined): RequestHost | undefined {
  if (header === undefined || header.length > 261) return undefined;
  const m = HOST.exec(header.toLowerCase());
  if (!m) return undefined;
  const [, v6, name, port] = m;
  if (port !== undefined && Number(port) > 65535) return undefined;
  if (v6 !== undefined) return isIPv6(v6) ? { authority: m[0], name: v6 } : undefined;
  const bare = name!.replace(/\.$/, '');
  if (bare.length > 253) return undefined;
  // A name whose last label is a number is an IPv4 address to a URL parser: only the dotted form, so the route and the worker's URL agree.
  if (/^(?:0x[0-9a-f]*|\d+)$/.test(bare.slice(bare.lastIndexOf('.') + 1)) && !isIPv4(bare)) return undefined;
  return { authority: m[0], name: bare };
}
