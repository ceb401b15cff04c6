/**
 * The `_redirects` and `_headers` files at the root of an assets directory, read as Cloudflare
 * documents them (docs/static-assets.md) into the rules the manifest carries. Neither file is served.
 * A line Cloudflare would reject is refused here, with its file and line number, rather than dropped.
 */
import { AssetHeaderRule, AssetRedirect, isDynamicRule, RULE_LIMITS } from '../schemas/assets.ts';
import { cliError } from './admin-client.ts';

const STATUSES = new Set([200, 301, 302, 303, 307, 308]);

/** The zod issue of a parsed rule, as one line. */
function checked<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { message: string }[] } } },
  v: unknown,
  where: string,
): T {
  const r = schema.safeParse(v);
  if (!r.success) throw cliError(`${where}: ${r.error.issues[0]!.message}`);
  return r.data;
}

/** `_redirects`: `source destination [status]` per line (302 by default), `#` comments. */
export function parseRedirects(text: string): AssetRedirect[] {
  const rules: AssetRedirect[] = [];
  const seen = new Set<string>();
  let dynamic = 0;
  let fixed = 0;
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const where = `assets: _redirects:${i + 1}`;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.length > RULE_LIMITS.redirectLine) throw cliError(`${where}: a line is at most ${RULE_LIMITS.redirectLine} characters`);
    const tokens = line.split(/\s+/);
    if (tokens.length < 2 || tokens.length > 3) throw cliError(`${where}: expected "source destination [status]"`);
    const [from, to, code] = tokens as [string, string, string | undefined];
    const status = code === undefined ? 302 : Number(code);
    if (!STATUSES.has(status)) throw cliError(`${where}: status ${code} is not one of 200, 301, 302, 303, 307, 308`);
    if (status === 200 && !to.startsWith('/')) throw cliError(`${where}: a 200 (rewrite) goes to a path of this site, not ${to}`);
    if (seen.has(from)) throw cliError(`${where}: ${from} already has a rule above`);
    seen.add(from);
    if (isDynamicRule(from) ? ++dynamic > RULE_LIMITS.dynamicRedirects : ++fixed > RULE_LIMITS.staticRedirects)
      throw cliError(
        `${where}: over Cloudflare's limit of ${RULE_LIMITS.staticRedirects} exact and ${RULE_LIMITS.dynamicRedirects} pattern (* or :placeholder) rules`,
      );
    rules.push(checked(AssetRedirect, { from, to, status, line: i + 1 }, where));
  }
  return rules;
}

/** `_headers`: a pattern on its own line, then its indented `Name: value` (or `! Name` to remove) lines. */
export function parseHeaders(text: string): AssetHeaderRule[] {
  const rules: { pattern: string; set: [string, string][]; unset: string[]; line: number }[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const where = `assets: _headers:${i + 1}`;
    if (raw.trim() === '' || raw.trim().startsWith('#')) continue;
    if (raw.length > RULE_LIMITS.headerLine) throw cliError(`${where}: a line is at most ${RULE_LIMITS.headerLine} characters`);
    if (!/^\s/.test(raw)) {
      if (rules.length === RULE_LIMITS.headerRules) throw cliError(`${where}: over Cloudflare's limit of ${RULE_LIMITS.headerRules} rules`);
      rules.push({ pattern: raw.trim(), set: [], unset: [], line: i + 1 });
      continue;
    }
    const rule = rules.at(-1);
    if (!rule) throw cliError(`${where}: a header line before any URL pattern`);
    const line = raw.trim();
    if (line.startsWith('!')) {
      rule.unset.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw cliError(`${where}: expected "Name: value" or "! Name"`);
    rule.set.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return rules.map(({ line, ...rule }) => checked(AssetHeaderRule, rule, `assets: _headers:${line}`));
}
