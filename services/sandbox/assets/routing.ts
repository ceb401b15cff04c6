/**
 * Which asset (or redirect, or the worker) a request meets: Cloudflare's Workers Static Assets rules,
 * written from its documentation (html_handling, not_found_handling, run_worker_first) and checked
 * against the asset worker miniflare runs (docs/static-assets.md). Pure: it reads the version's
 * manifest through `lookup` and touches nothing else. A path is a key in the manifest, never a
 * file-system path, so `..` or `%2e%2e` names no file but one listed under that exact key — and the
 * manifest holds none (schemas/assets.ts refuses such paths at deploy).
 */
import type { AssetRouting } from '../../../schemas/assets.ts';
import type { AssetRules } from './rules.ts';

/** The asset a path names: its hash (the ETag), or undefined. */
export type Lookup = (path: string) => string | undefined;

/** What the rules decide for one path. */
export type Intent = { asset: { path: string; hash: string; status: 200 | 404 } } | { redirect: string } | null;

/**
 * One step of an html_handling table: serve the file if it exists, or redirect to `to` when `file`
 * exists, `to` itself is no asset, and `to` (resolved without redirects) serves that same file — so a
 * redirect never leads somewhere else or into a loop.
 */
type Step = { serve: string } | { file: string; to: string };

/** The steps for `p` under each html_handling, in the order they are tried (Cloudflare's tables). */
function steps(p: string, mode: AssetRouting['htmlHandling']): Step[] {
  const cut = (n: number) => p.slice(0, p.length - n);
  switch (mode) {
    case 'none':
      return [{ serve: p }];
    case 'auto-trailing-slash': {
      let head: Step[] = [];
      if (p.endsWith('/index')) head = [{ serve: p }, { file: `${p}.html`, to: cut(5) }, { file: `${cut(6)}.html`, to: cut(6) }];
      else if (p.endsWith('/index.html'))
        head = [
          { file: p, to: cut(10) },
          { file: `${cut(11)}.html`, to: cut(11) },
        ];
      else if (p.endsWith('/')) head = [{ serve: `${p}index.html` }, { file: `${cut(1)}.html`, to: cut(1) }];
      else if (p.endsWith('.html'))
        head = [
          { file: p, to: cut(5) },
          { file: `${cut(5)}/index.html`, to: `${cut(5)}/` },
        ];
      return [...head, { serve: p }, { serve: `${p}.html` }, { file: `${p}/index.html`, to: `${p}/` }];
    }
    case 'force-trailing-slash': {
      let head: Step[] = [];
      if (p.endsWith('/index')) head = [{ serve: p }, { file: `${p}.html`, to: cut(5) }, { file: `${cut(6)}.html`, to: cut(5) }];
      else if (p.endsWith('/index.html'))
        head = [
          { file: p, to: cut(10) },
          { file: `${cut(11)}.html`, to: cut(10) },
        ];
      else if (p.endsWith('/')) head = [{ serve: `${p}index.html` }, { serve: `${cut(1)}.html` }];
      else if (p.endsWith('.html')) head = [{ file: p, to: `${cut(5)}/` }, { serve: p }, { file: `${cut(5)}/index.html`, to: `${cut(5)}/` }];
      return [...head, { serve: p }, { file: `${p}.html`, to: `${p}/` }, { file: `${p}/index.html`, to: `${p}/` }];
    }
    case 'drop-trailing-slash': {
      let head: Step[] = [];
      if (p === '/index') head = [{ serve: p }, { file: '/index.html', to: '/' }];
      else if (p === '/index.html') head = [{ file: p, to: '/' }];
      else if (p.endsWith('/index')) head = [{ serve: p }, { file: `${cut(6)}.html`, to: cut(6) }, { file: `${p}.html`, to: cut(6) }];
      else if (p.endsWith('/index.html')) head = [{ file: p, to: cut(11) }, { serve: p }, { file: `${cut(11)}.html`, to: cut(11) }];
      else if (p === '/') head = [{ serve: '/index.html' }];
      else if (p.endsWith('/'))
        head = [
          { file: `${cut(1)}.html`, to: cut(1) },
          { file: `${cut(1)}/index.html`, to: cut(1) },
        ];
      else if (p.endsWith('.html'))
        head = [
          { file: p, to: cut(5) },
          { file: `${cut(5)}/index.html`, to: cut(5) },
        ];
      return [...head, { serve: p }, { serve: `${p}.html` }, { serve: `${p}/index.html` }];
    }
  }
}

/** The not_found_handling answer for `p`: the SPA's /index.html (200), or the nearest 404.html up the path (404). */
function notFound(p: string, routing: AssetRouting, lookup: Lookup): Intent {
  if (routing.notFoundHandling === 'single-page-application') {
    const hash = lookup('/index.html');
    return hash ? { asset: { path: '/index.html', hash, status: 200 } } : null;
  }
  if (routing.notFoundHandling === '404-page') {
    for (let dir = p.slice(0, p.lastIndexOf('/')); ; dir = dir.slice(0, dir.lastIndexOf('/'))) {
      const hash = lookup(`${dir}/404.html`);
      if (hash) return { asset: { path: `${dir}/404.html`, hash, status: 404 } };
      if (dir === '') return null;
    }
  }
  return null;
}

/** What `p` (a decoded path) resolves to; `noRedirects` while checking where a redirect would land. */
export function resolvePath(p: string, routing: AssetRouting, lookup: Lookup, noRedirects = false): Intent {
  for (const step of steps(p, routing.htmlHandling)) {
    if ('serve' in step) {
      const hash = lookup(step.serve);
      if (hash) return { asset: { path: step.serve, hash, status: 200 } };
    } else if (!noRedirects) {
      const hash = lookup(step.file);
      if (!hash || lookup(step.to)) continue;
      const landing = resolvePath(step.to, routing, lookup, true);
      if (landing && 'asset' in landing && landing.asset.hash === hash) return { redirect: step.to };
    }
  }
  return notFound(p, routing, lookup);
}

/** A URL path decoded segment by segment (a malformed escape stays as it is), with runs of `/` made one. */
export function decodePath(pathname: string): string {
  return pathname
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    })
    .join('/')
    .replace(/\/+/g, '/');
}

export function encodePath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/** What the assets answer to a request (env.ASSETS.fetch, or a request the assets take before the worker). */
export type AssetAnswer =
  | { kind: 'asset'; path: string; hash: string; status: 200 | 404 }
  | { kind: 'redirect'; status: number; location: string }
  | { kind: 'method-not-allowed' }
  /** `rewritten`: a `_redirects` 200 led here, so the answer is the assets' even with a worker. */
  | { kind: 'not-found'; rewritten?: true };

/** Where a `_redirects` rule sends the client: on this origin as a path (with the request's query unless it has one), else the whole URL. */
function ruleLocation(to: string, url: URL): string {
  const dest = new URL(to, url);
  const search = dest.search || url.search;
  return dest.origin === url.origin ? `${dest.pathname}${search}${dest.hash}` : `${dest.origin}${dest.pathname}${search}${dest.hash}`;
}

export function answer(method: string, url: URL, routing: AssetRouting, lookup: Lookup, rules?: AssetRules): AssetAnswer {
  let pathname = url.pathname;
  const rule = rules?.redirect(url);
  if (rule && rule.status !== 200) return { kind: 'redirect', status: rule.status, location: ruleLocation(rule.to, url) };
  if (rule) pathname = new URL(rule.to, url).pathname;
  const decoded = decodePath(pathname);
  const intent = resolvePath(decoded, routing, lookup);
  if (!intent) return rule ? { kind: 'not-found', rewritten: true } : { kind: 'not-found' };
  if (method !== 'GET' && method !== 'HEAD') return { kind: 'method-not-allowed' };
  if ('redirect' in intent) return { kind: 'redirect', status: 307, location: encodePath(intent.redirect) + url.search };
  // A path spelled otherwise than its canonical encoding (`//`, needless escapes) is sent to that spelling.
  const canonical = encodePath(decoded);
  if (canonical !== pathname) return { kind: 'redirect', status: 307, location: canonical + url.search };
  return { kind: 'asset', ...intent.asset };
}

/** A glob of run_worker_first (`*` matches any characters, everything else itself) as a test of a path. */
function glob(pattern: string): (path: string) => boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[-/\\^$+?.()|[\]{}]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${source}$`);
  return (path) => re.test(path);
}

/** Compiled once per version: whether a path goes to the worker before the assets. */
export function workerFirst(routing: AssetRouting): (pathname: string) => boolean {
  const rule = routing.runWorkerFirst;
  if (typeof rule === 'boolean') return () => rule;
  const excluded = rule.filter((r) => r.startsWith('!')).map((r) => glob(r.slice(1)));
  const included = rule.filter((r) => !r.startsWith('!')).map(glob);
  // An exclusion wins over an inclusion, as Cloudflare's static routing has it.
  return (path) => !excluded.some((m) => m(path)) && included.some((m) => m(path));
}

/**
 * Whether a request the worker would otherwise get is the assets' (the router's part): always for an
 * assets-only worker; never when run_worker_first takes it; else when the assets have an answer for it
 * other than "no such asset" (a `_redirects` rule's answer counts, a rewrite to nothing too). The not-found handling counts there only with run_worker_first patterns
 * or, for a navigation, with navigationPrefersAssets (Workers' compatibility behaviour); otherwise a
 * miss goes to the worker, whose env.ASSETS.fetch applies it.
 */
export function assetsFirst(
  method: string,
  url: URL,
  headers: Headers,
  routing: AssetRouting,
  lookup: Lookup,
  runsFirst: (p: string) => boolean,
  rules?: AssetRules,
): boolean {
  if (!routing.hasWorker) return true;
  if (runsFirst(url.pathname)) return false;
  const staticRouting = Array.isArray(routing.runWorkerFirst);
  const navigation = routing.navigationPrefersAssets && headers.get('sec-fetch-mode') === 'navigate';
  const probe = staticRouting || navigation ? routing : { ...routing, notFoundHandling: 'none' as const };
  const a = answer(method, url, probe, lookup, rules);
  return a.kind !== 'not-found' || a.rewritten === true;
}
