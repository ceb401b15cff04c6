/**
 * Cloudflare-style route patterns: `host/path`, e.g. `*\/hello*`, `api.example.com/*`,
 * `*.example.com/v1/*`. In the path `*` matches any run of characters; in the host it may appear
 * once, first (`*` alone is every host). The host is matched without its port; the path against the
 * URL path (no query). The most specific match wins: more literal characters in the host first, then
 * in the path; between equals, the route that came first (the older) wins, so a newcomer never wins a tie.
 *
 * A host pattern has one spelling (`normalizeHostPattern`): lower case, international names as
 * punycode (UTS #46, as a browser maps them), no trailing dot. Every comparison — matching, the
 * conflict checks, host ownership — is made on that spelling, so `ADMIN.B.EXAMPLE`, `admin.b.example.`
 * and a full-width `ａｄｍｉｎ.b.example` are all the one host `admin.b.example`.
 */
import tr46 from 'tr46';
import { CordonError } from './errors.ts';

export interface CompiledRoute<T> {
  /** The pattern with its host normalised. */
  pattern: string;
  /** The normalised host pattern. */
  host: string;
  path: RegExp;
  score: [number, number];
  /** The tenant whose worker the route serves: on a host assigned to a tenant only its routes match. */
  tenant: string;
  value: T;
}

/** A host pattern assigned to a tenant: the hosts it matches are served by that tenant's routes only. */
export interface HostOwner {
  host: string;
  tenant: string;
}

export class RoutePatternError extends CordonError {
  constructor(pattern: string, why: string) {
    super(`invalid route pattern ${JSON.stringify(pattern)}: ${why}`, { status: 400 });
    this.name = 'RoutePatternError';
  }
}

// UTS #46 nontransitional, STD3 rules (letters, digits, hyphen), as WHATWG URL maps a host;
// DNS lengths are not checked (a pattern's host may be the tail of a name).
const IDNA = { checkHyphens: false, checkBidi: true, checkJoiners: true, useSTD3ASCIIRules: true, transitionalProcessing: false, verifyDNSLength: false };

function pathRegExp(glob: string): RegExp {
  return new RegExp(
    '^' +
      glob
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*') +
      '$',
    's',
  );
}

/**
 * A host pattern's one spelling, or a RoutePatternError: `*`, `*suffix` or an exact host, the
 * non-wildcard part lower case, in punycode, without a trailing dot and without empty labels.
 */
export function normalizeHostPattern(host: string, pattern: string = host): string {
  const wildcard = host.startsWith('*');
  const rest = wildcard ? host.slice(1) : host;
  if (rest.includes('*')) throw new RoutePatternError(pattern, 'the host may hold one *, and only first: *, *.example.com or *example.com');
  if (rest === '') {
    if (wildcard) return '*';
    throw new RoutePatternError(pattern, 'the host is empty');
  }
  const ascii = tr46.toASCII(rest, IDNA);
  if (ascii === null || !/^[a-z0-9.-]+$/.test(ascii))
    throw new RoutePatternError(pattern, 'the host is not a valid domain name (letters, digits, dashes and dots; international names are mapped to punycode)');
  const name = ascii.endsWith('.') && ascii.length > 1 ? ascii.slice(0, -1) : ascii;
  const labels = name.split('.');
  // A leading empty label is `*.example.com`'s dot; any other empty label is no host at all.
  if (labels.some((l, i) => l === '' && !(wildcard && i === 0 && labels.length > 1)))
    throw new RoutePatternError(pattern, 'the host has an empty label (two dots in a row, or only a dot)');
  // `*` glued to a punycode label would match the ASCII encoding, not the names it looks like.
  if (wildcard && labels[0]!.startsWith('xn--'))
    throw new RoutePatternError(pattern, 'a * may not be part of an international label: write *.bücher.example, not *bücher.example');
  return (wildcard ? '*' : '') + name;
}

export function parseRoutePattern(pattern: string): { host: string; path: string } {
  if (pattern.length === 0 || pattern.length > 1024) throw new RoutePatternError(pattern, 'must be 1-1024 characters');
  if (/[\s\0?#]/.test(pattern)) throw new RoutePatternError(pattern, 'may not contain spaces, NUL, ? or #');
  if (/^[a-z]+:\/\//i.test(pattern)) throw new RoutePatternError(pattern, 'leave out the scheme: write host/path');
  const slash = pattern.indexOf('/');
  if (slash <= 0) throw new RoutePatternError(pattern, 'expected host/path, e.g. */hello* or api.example.com/*');
  return { host: normalizeHostPattern(pattern.slice(0, slash), pattern), path: pattern.slice(slash) };
}

/** The pattern in its one spelling (host normalised): what the supervisor stores and compares. */
export function normalizeRoutePattern(pattern: string): string {
  const { host, path } = parseRoutePattern(pattern);
  return host + path;
}

/** Whether a (normalised) host name matches a (normalised) host pattern. */
export function hostMatches(pattern: string, host: string): boolean {
  return pattern.startsWith('*') ? host.endsWith(pattern.slice(1)) : host === pattern;
}

/** Whether some host matches both (normalised) host patterns. */
export function hostsOverlap(a: string, b: string): boolean {
  const [sa, sb] = [a.replace(/^\*/, ''), b.replace(/^\*/, '')];
  if (a.startsWith('*') && b.startsWith('*')) return sa.endsWith(sb) || sb.endsWith(sa);
  if (a.startsWith('*')) return sb.endsWith(sa);
  if (b.startsWith('*')) return sa.endsWith(sb);
  return a === b;
}

/** Whether every host `inner` matches is matched by `outer` too (both normalised). */
export function hostWithin(inner: string, outer: string): boolean {
  return outer.startsWith('*') ? inner.replace(/^\*/, '').endsWith(outer.slice(1)) : inner === outer;
}

/**
 * Patterns already parsed (host normalised, path compiled), by their text: the whole table is compiled
 * again on every change, and with tens of thousands of routes IDNA mapping and RegExp compilation
 * dominated each deploy. Bounded: emptied when it outgrows any table seen.
 */
const parsed = new Map<string, Pick<CompiledRoute<unknown>, 'pattern' | 'host' | 'path' | 'score'>>();
const MAX_PARSED = 250_000;

export function compileRoute<T>(pattern: string, value: T, tenant = ''): CompiledRoute<T> {
  let p = parsed.get(pattern);
  if (!p) {
    const { host, path } = parseRoutePattern(pattern);
    const literal = (s: string) => s.replace(/\*/g, '').length;
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(pattern, (p = { pattern: host + path, host, path: pathRegExp(path), score: [literal(host), literal(path)] }));
  }
  return { ...p, tenant, value };
}

/**
 * Where a route stands among equally specific ones: the lower first. The supervisor gives every route
 * one that no other route shares (its deploy order, then its pattern), so a table can be changed
 * route by route and still order ties as the whole table would.
 */
export type RouteOrder = readonly [number, string];

/** A route's identity in a table that changes route by route: its order, which no other route shares. */
export function routeKey(order: RouteOrder): string {
  return `${order[0]}\n${order[1]}`;
}

interface Entry<T> {
  route: CompiledRoute<T>;
  order: RouteOrder;
}

/** Most specific first; of two equally specific routes, the lower order (the older) first. */
function ahead(a: Entry<unknown>, b: Entry<unknown>): number {
  return (
    b.route.score[0] - a.route.score[0] ||
    b.route.score[1] - a.route.score[1] ||
    a.order[0] - b.order[0] ||
    (a.order[1] < b.order[1] ? -1 : a.order[1] > b.order[1] ? 1 : 0)
  );
}

/** The first place in `list` (kept in `ahead` order) that `e` does not come after. */
function placeOf<T>(list: Entry<T>[], e: Entry<T>): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ahead(list[mid]!, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Routes most specific first, matched in order; of two equally specific routes the older wins. A
 * host matched by an owner's host pattern is served by that owner's routes only, whatever other
 * tenants' wildcards say. Routes are set and deleted one by one by a key (ingress follows the
 * supervisor's changes so: with 50,000 workers, building the whole table again for each deploy
 * stalled every request behind it).
 */
export class RouteTable<T> {
  readonly #byKey = new Map<string, Entry<T>>();
  /**
   * Routes of exact hosts by host, and routes of wildcard hosts, each in `ahead` order. A request
   * looks only at its host's routes and at the wildcards, not at every route (with 50,000 workers'
   * routes a linear scan cost more than the request).
   */
  readonly #exact = new Map<string, Entry<T>[]>();
  readonly #wildcards: Entry<T>[] = [];
  #owners: HostOwner[] = [];

  /** `routes` oldest first: their place in the list is their order. */
  constructor(routes: CompiledRoute<T>[] = [], owners: HostOwner[] = []) {
    this.reset(
      routes.map((r, i) => [String(i), r, [i, '']]),
      owners,
    );
  }

  /** The whole table at once: one sort rather than a placement per route. */
  reset(routes: [key: string, route: CompiledRoute<T>, order: RouteOrder][], owners: HostOwner[]): void {
    this.#byKey.clear();
    this.#exact.clear();
    this.#wildcards.length = 0;
    for (const [key, route, order] of routes) this.#byKey.set(key, { route, order });
    for (const e of [...this.#byKey.values()].sort(ahead)) this.#listOf(e.route.host).push(e);
    this.setOwners(owners);
  }

  /** Adds the route under `key`, or replaces the one there. */
  set(key: string, route: CompiledRoute<T>, order: RouteOrder): void {
    this.delete(key);
    const e = { route, order };
    this.#byKey.set(key, e);
    const list = this.#listOf(route.host);
    list.splice(placeOf(list, e), 0, e);
  }

  get(key: string): CompiledRoute<T> | undefined {
    return this.#byKey.get(key)?.route;
  }

  delete(key: string): boolean {
    const e = this.#byKey.get(key);
    if (!e) return false;
    this.#byKey.delete(key);
    const list = this.#listOf(e.route.host);
    let i = placeOf(list, e);
    while (i < list.length && list[i] !== e) i++;
    list.splice(i, 1);
    if (list.length === 0 && list !== this.#wildcards) this.#exact.delete(e.route.host);
    return true;
  }

  setOwners(owners: HostOwner[]): void {
    // Owners' patterns never overlap across tenants; longest first in case an old table says otherwise.
    this.#owners = [...owners].sort((a, b) => b.host.replace('*', '').length - a.host.replace('*', '').length);
  }

  #listOf(host: string): Entry<T>[] {
    if (host.startsWith('*')) return this.#wildcards;
    let list = this.#exact.get(host);
    if (!list) this.#exact.set(host, (list = []));
    return list;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The route for a request: `host` is the normalised host name (no port, no brackets, lower case, no trailing dot). */
  match(host: string, path: string): CompiledRoute<T> | undefined {
    const owner = this.#owners.find((o) => hostMatches(o.host, host))?.tenant;
    const fits = (r: CompiledRoute<T>) => (owner === undefined || r.tenant === owner) && r.path.test(path);
    const exact = this.#exact.get(host)?.find((e) => fits(e.route));
    const wildcard = this.#wildcards.find((w) => (exact !== undefined && ahead(w, exact) > 0) || (hostMatches(w.route.host, host) && fits(w.route)));
    return wildcard && (exact === undefined || ahead(wildcard, exact) < 0) ? wildcard.route : exact?.route;
  }
}
