/**
 * Cloudflare-style route patterns: `host/path`, where `*` matches any run of characters, e.g.
 * `*\/hello*`, `api.example.com/*`, `*.example.com/v1/*`. The host is matched without its port,
 * case-insensitively; the path is matched against the URL path (no query). The most specific match
 * wins: more literal characters in the host first, then in the path.
 */
export interface CompiledRoute<T> {
  pattern: string;
  host: RegExp;
  path: RegExp;
  score: [number, number];
  value: T;
}

export class RoutePatternError extends Error {
  constructor(pattern: string, why: string) {
    super(`invalid route pattern ${JSON.stringify(pattern)}: ${why}`);
    this.name = 'RoutePatternError';
  }
}

function toRegExp(glob: string): RegExp {
  return new RegExp('^' + glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', 's');
}

export function parseRoutePattern(pattern: string): { host: string; path: string } {
  if (pattern.length === 0 || pattern.length > 1024) throw new RoutePatternError(pattern, 'must be 1-1024 characters');
  if (/[\s\0?#]/.test(pattern)) throw new RoutePatternError(pattern, 'may not contain spaces, NUL, ? or #');
  if (/^[a-z]+:\/\//i.test(pattern)) throw new RoutePatternError(pattern, 'leave out the scheme: write host/path');
  const slash = pattern.indexOf('/');
  if (slash <= 0) throw new RoutePatternError(pattern, 'expected host/path, e.g. */hello* or api.example.com/*');
  const host = pattern.slice(0, slash).toLowerCase();
  if (!/^[a-z0-9.*-]+$/.test(host)) throw new RoutePatternError(pattern, 'the host part may hold only letters, digits, dots, dashes and *');
  return { host, path: pattern.slice(slash) };
}

export function compileRoute<T>(pattern: string, value: T): CompiledRoute<T> {
  const { host, path } = parseRoutePattern(pattern);
  const literal = (s: string) => s.replace(/\*/g, '').length;
  return { pattern, host: toRegExp(host), path: toRegExp(path), score: [literal(host), literal(path)], value };
}

/** Routes sorted most specific first, matched in order. */
export class RouteTable<T> {
  readonly #routes: CompiledRoute<T>[];
  constructor(routes: CompiledRoute<T>[]) {
    this.#routes = [...routes].sort((a, b) => b.score[0] - a.score[0] || b.score[1] - a.score[1] || a.pattern.localeCompare(b.pattern));
  }

  get size(): number {
    return this.#routes.length;
  }

  match(hostHeader: string, path: string): CompiledRoute<T> | undefined {
    const host = hostHeader.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
    return this.#routes.find((r) => r.host.test(host) && r.path.test(path));
  }
}
