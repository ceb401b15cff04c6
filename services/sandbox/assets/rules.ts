/**
 * A version's `_redirects` and `_headers` rules, compiled once (docs/static-assets.md), as Cloudflare
 * applies them to what its assets answer: a redirect rule before any asset is looked up (exact rules
 * first, then the patterns in file order), a header rule on every answer it matches. A pattern's `*`
 * is `:splat` in the target, and each `:name` stands for its segment (or host label). The patterns were
 * checked at deploy (schemas/assets.ts: one `*`, placeholders whole segments), so each compiled
 * expression matches in time linear in the path.
 */
import { isDynamicRule, type AssetHeaderRule, type AssetRedirect } from '../../../schemas/assets.ts';

interface Pattern {
  crossHost: boolean;
  re: RegExp;
}

function compile(pattern: string): Pattern {
  const crossHost = pattern.startsWith('https://');
  const hostEnd = crossHost ? pattern.indexOf('/', 8) : 0;
  const escape = (s: string) => s.replace(/[-/\\^$+?.()|[\]{}]/g, '\\$&');
  const part = (s: string, placeholder: string) =>
    s
      .split('*')
      .map((chunk) => escape(chunk).replace(/:([A-Za-z]\w*)/g, (_m, name: string) => `(?<${name}>${placeholder})`))
      .join('(?<splat>.*)');
  const source = crossHost ? part(pattern.slice(0, hostEnd), '[^/.]+') + part(pattern.slice(hostEnd), '[^/]+') : part(pattern, '[^/]+');
  return { crossHost, re: new RegExp(`^${source}$`) };
}

function test(p: Pattern, url: URL): Record<string, string> | undefined {
  const m = p.re.exec(p.crossHost ? `https://${url.hostname}${url.pathname}` : url.pathname);
  return m ? { ...m.groups } : undefined;
}

/** `text` with each `:name` replaced by what its placeholder matched. */
function fill(text: string, groups: Record<string, string>): string {
  let out = text;
  for (const [name, value] of Object.entries(groups)) out = out.replaceAll(`:${name}`, value);
  return out;
}

export interface RuleRedirect {
  status: number;
  /** A 200 rewrites to this path; the others answer with it as Location. */
  to: string;
}

export class AssetRules {
  readonly #exact = new Map<string, AssetRedirect>();
  readonly #patterns: [Pattern, AssetRedirect][] = [];
  readonly #headers: [Pattern, AssetHeaderRule][];

  constructor(redirects: AssetRedirect[], headers: AssetHeaderRule[]) {
    for (const r of redirects) {
      if (!isDynamicRule(r.from)) this.#exact.set(r.from, r);
      else this.#patterns.push([compile(r.from), r]);
    }
    this.#headers = headers.map((h) => [compile(h.pattern), h]);
  }

  /** The redirect rule `url` meets, if any: an exact rule (with host, or the earlier line) before any pattern. */
  redirect(url: URL): RuleRedirect | undefined {
    const withHost = this.#exact.get(`https://${url.hostname}${url.pathname}`);
    const withoutHost = this.#exact.get(url.pathname);
    const exact = withHost && withoutHost ? (withHost.line < withoutHost.line ? withHost : withoutHost) : (withHost ?? withoutHost);
    if (exact) return { status: exact.status, to: exact.to };
    for (const [p, r] of this.#patterns) {
      const groups = test(p, url);
      if (!groups) continue;
      const to = fill(r.to, groups).trim();
      return { status: r.status, to: /^\w+:\/\//.test(to) ? to : to.replace(/\/+/g, '/') };
    }
    return undefined;
  }

  /** `headers` with every matching `_headers` rule applied: removals, then each name set (appended to, when an earlier rule set it). */
  applyHeaders(url: URL, headers: [string, string][]): [string, string][] {
    let out = headers;
    const setHere = new Set<string>();
    for (const [p, rule] of this.#headers) {
      const groups = test(p, url);
      if (!groups) continue;
      for (const name of rule.unset) out = out.filter(([k]) => k.toLowerCase() !== name.toLowerCase());
      for (const [name, value] of rule.set) {
        const key = name.toLowerCase();
        if (!setHere.has(key)) out = out.filter(([k]) => k.toLowerCase() !== key);
        setHere.add(key);
        out = [...out, [key, fill(value, groups)]];
      }
    }
    return out;
  }
}
