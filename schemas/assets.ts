/**
 * Workers Static Assets (docs/static-assets.md): the asset manifest a version carries, the routing
 * settings of wrangler's `assets` section, the limits, and the one capability method a sandbox reads
 * asset bytes with. The bytes are stored apart from the bundle (content-addressed per worker, sealed
 * with the worker's key, in parts); the manifest is inside the bundle, so a version (and a rollback)
 * names exactly its assets.
 */
import { z } from 'zod';

export const ASSET_LIMITS = {
  /** Cloudflare's limits: files per version, and bytes per file. */
  files: 20_000,
  fileBytes: 25 * 1024 * 1024,
  /** An asset's path (URL-decoded, from the leading `/`), at most. */
  pathChars: 1024,
  /** Bytes per sealed part: one part crosses sandbox↔supervisor and supervisor↔disk at a time. */
  partBytes: 4 * 1024 * 1024,
  /** The manifest as JSON, at most: it travels inside the bundle, which a sandbox loads in one message. */
  manifestBytes: 4 * 1024 * 1024,
} as const;

/** The capability handle a sandbox reads a version's asset bytes through (granted only with a manifest). */
export const ASSETS_HANDLE = '$assets';
export const ASSET_METHODS = ['part'] as const;
/** The methods of an `assets` binding (env.ASSETS: fetch, and a body's parts past the first), served in the sandbox itself. */
export const ASSETS_BINDING_METHODS = ['fetch', 'part'] as const;

export const AssetHash = z.string().regex(/^[0-9a-f]{64}$/, 'an asset hash is the SHA-256 of its bytes, in hex');

/**
 * Why `path` cannot name an asset, or undefined when it can: the decoded URL path of the file, from
 * `/`. No `.` or `..` segment and no empty one (so one file has one name), no backslash, no NUL or
 * other control character. It is a key in a map, never a file-system path, but a clean key keeps
 * `cordon export` and the routing rules simple.
 */
export function assetPathProblem(path: string): string | undefined {
  if (path.length < 2 || path.length > ASSET_LIMITS.pathChars) return `must be 2-${ASSET_LIMITS.pathChars} characters`;
  if (!path.startsWith('/')) return 'must start with /';
  if (/[\u0000-\u001f\u007f\\]/.test(path)) return 'may not hold a control character or a backslash';
  for (const segment of path.slice(1).split('/'))
    if (segment === '' || segment === '.' || segment === '..') return 'may not have an empty, "." or ".." segment';
  return undefined;
}

export const AssetPath = z.string().superRefine((p, ctx) => {
  const why = assetPathProblem(p);
  if (why) ctx.addIssue({ code: 'custom', message: `asset path ${JSON.stringify(p.slice(0, 200))} ${why}` });
});

export const HTML_HANDLING = ['auto-trailing-slash', 'force-trailing-slash', 'drop-trailing-slash', 'none'] as const;
export const NOT_FOUND_HANDLING = ['none', '404-page', 'single-page-application'] as const;
export type HtmlHandling = (typeof HTML_HANDLING)[number];
export type NotFoundHandling = (typeof NOT_FOUND_HANDLING)[number];

/** A `run_worker_first` route pattern: a path glob (`*` any characters), `!` in front to exclude. */
const RoutePattern = z.string().min(2).max(256).regex(/^!?\//, 'a run_worker_first pattern is a path from / (with ! in front to exclude it)');

/** How requests meet the assets (wrangler's `assets` section, without `directory` and `binding`). */
export const AssetRouting = z
  .object({
    htmlHandling: z.enum(HTML_HANDLING).default('auto-trailing-slash'),
    notFoundHandling: z.enum(NOT_FOUND_HANDLING).default('none'),
    /** true: every request goes to the worker; patterns: those that match (and no `!` pattern) do. */
    runWorkerFirst: z.union([z.boolean(), z.array(RoutePattern).max(100)]).default(false),
    /**
     * Workers' `assets_navigation_prefers_asset_serving` (on from compatibility date 2025-04-01): a
     * navigation request (`Sec-Fetch-Mode: navigate`) that matches no asset gets the not-found handling
     * (the SPA's index.html, a 404 page) without the worker.
     */
    navigationPrefersAssets: z.boolean().default(true),
    /** false for an assets-only worker (no `main`): nothing but the assets answers. */
    hasWorker: z.boolean().default(true),
  })
  .strict();
export type AssetRouting = z.infer<typeof AssetRouting>;

/**
 * A `_redirects` or `_headers` pattern: a path from `/`, or `https://host/path`. `*` (once) matches any
 * characters and is `:splat` in what it gives; `:name` placeholders are whole path segments (or a host
 * label), which keeps every rule's match linear in the path.
 */
export const RulePattern = z
  .string()
  .max(1000)
  .superRefine((p, ctx) => {
    const path = p.startsWith('https://') ? p.slice(p.indexOf('/', 8)) : p;
    const fail = (why: string) => ctx.addIssue({ code: 'custom', message: `rule ${JSON.stringify(p.slice(0, 200))}: ${why}` });
    if (!path.startsWith('/') || (p.startsWith('https://') && p.indexOf('/', 8) < 0)) return fail('must be a path from / or https://host/path');
    if (p.split('*').length > 2) return fail('may have one * at most');
    if (/[\s\u0000-\u001f\u007f]/.test(p)) return fail('may not hold spaces or control characters');
    const names: string[] = [];
    // A host's placeholders are whole labels (https://:project.example.com/), a path's whole segments.
    const host = p.startsWith('https://') ? p.slice(8, p.indexOf('/', 8)).split('.') : [];
    for (const piece of [...host, ...path.split('/')]) {
      if (!piece.includes(':')) continue;
      if (!/^:[A-Za-z]\w*$/.test(piece)) return fail('a :placeholder must be a whole path segment (/:name/) or host label');
      names.push(piece.slice(1));
    }
    if (new Set(names).size !== names.length || (p.includes('*') && names.includes('splat')))
      return fail('each :placeholder is named once (and :splat is the *)');
  });

/** One `_redirects` line: static rules (no `*` or `:`) match the path exactly, the others as patterns. */
export const AssetRedirect = z
  .object({
    from: RulePattern,
    to: z.string().min(1).max(1000),
    status: z.union([z.literal(200), z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]),
    line: z.number().int().min(1),
  })
  .strict()
  .refine((r) => r.status !== 200 || r.to.startsWith('/'), 'a 200 (rewrite) goes to a path of this site')
  .refine((r) => URL.canParse(r.to, 'https://example.com/'), 'the destination is not a URL or path');
export type AssetRedirect = z.infer<typeof AssetRedirect>;

const HeaderName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/, 'not a valid header name');

/** One `_headers` block: headers set (or appended, when an earlier block set the same) and removed on every assets answer it matches. */
export const AssetHeaderRule = z
  .object({
    pattern: RulePattern,
    set: z
      .array(
        z.tuple([
          HeaderName,
          z
            .string()
            .max(2000)
            .regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'a header value holds a control character'),
        ]),
      )
      .max(100),
    unset: z.array(HeaderName).max(100),
  })
  .strict();
export type AssetHeaderRule = z.infer<typeof AssetHeaderRule>;

/** Whether a rule is matched as a pattern (else exactly). */
export function isDynamicRule(pattern: string): boolean {
  return pattern.includes('*') || /\/:/.test(pattern);
}

/** Cloudflare's limits on the rule files. */
export const RULE_LIMITS = { staticRedirects: 2000, dynamicRedirects: 100, headerRules: 100, redirectLine: 1000, headerLine: 2000 } as const;

export const AssetFile = z.object({ path: AssetPath, hash: AssetHash, size: z.number().int().min(0).max(ASSET_LIMITS.fileBytes) }).strict();
export type AssetFile = z.infer<typeof AssetFile>;

/** A version's assets as deployed and as the sandbox receives them in its bundle. */
export const AssetManifest = z
  .object({
    routing: AssetRouting,
    files: z
      .array(AssetFile)
      .max(ASSET_LIMITS.files, `at most ${ASSET_LIMITS.files} asset files (Cloudflare's limit)`)
      .refine((fs) => new Set(fs.map((f) => f.path)).size === fs.length, 'each asset path is listed once'),
    /** `_redirects`, in file order. */
    redirects: z
      .array(AssetRedirect)
      .max(RULE_LIMITS.staticRedirects + RULE_LIMITS.dynamicRedirects)
      .default([]),
    /** `_headers`, in file order. */
    headers: z.array(AssetHeaderRule).max(RULE_LIMITS.headerRules).default([]),
  })
  .strict()
  .refine(
    (m) => m.redirects.filter((r) => isDynamicRule(r.from)).length <= RULE_LIMITS.dynamicRedirects,
    `at most ${RULE_LIMITS.dynamicRedirects} _redirects rules with * or :placeholders (Cloudflare's limit)`,
  )
  .refine(
    (m) => JSON.stringify(m).length <= ASSET_LIMITS.manifestBytes,
    `the asset manifest is over ${ASSET_LIMITS.manifestBytes} bytes as JSON (4 MiB): shorter paths or fewer files`,
  );
export type AssetManifest = z.infer<typeof AssetManifest>;

/** How many parts a file of `size` bytes is stored in (an empty file is one empty part). */
export function partCount(size: number): number {
  return Math.max(1, Math.ceil(size / ASSET_LIMITS.partBytes));
}

/** The supervisor's `$assets` capability for one worker version: a part of one of the files its manifest lists. */
export interface AssetPartsApi {
  part(hash: string, index: number): Promise<Uint8Array>;
}
