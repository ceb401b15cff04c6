/**
 * A worker's static assets at deploy, as wrangler gathers them (docs/static-assets.md): every file under
 * the `assets.directory`, but those `.assetsignore` lists (gitignore syntax, read with `ignore`, the
 * library git tools use) and `.assetsignore` itself; each file's path from `/`, SHA-256 and size.
 * Cloudflare's limits are checked here so a deploy fails before uploading anything, with the file
 * named (the supervisor checks them again): 20,000 files, 25 MiB per file. A symbolic link is followed
 * only when it stays inside the directory; one pointing out of it is refused, so a link cannot publish
 * a file from elsewhere on the deployer's machine. `_headers` and `_redirects` at the root are rules,
 * not files (asset-rules.ts).
 */
import ignoreModule from 'ignore';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { ASSET_LIMITS, assetPathProblem, type AssetFile, type AssetHeaderRule, type AssetRedirect } from '../schemas/assets.ts';
import { cliError, type AdminClient } from './admin-client.ts';
import { parseHeaders, parseRedirects } from './asset-rules.ts';

// A CommonJS module whose export is also its `default`: as typed for ES modules, that is `.default`.
const ignore = ignoreModule.default;

export interface GatheredAssets {
  files: AssetFile[];
  redirects: AssetRedirect[];
  headers: AssetHeaderRule[];
  /** Each file's place on disk, by path. */
  onDisk: Map<string, string>;
}

export function gatherAssets(directory: string): GatheredAssets {
  if (!existsSync(directory) || !statSync(directory).isDirectory())
    throw cliError(`assets.directory ${directory} is not a directory; create it, or point assets.directory at your build output`);
  const root = realpathSync(directory);
  const ignoreFile = join(root, '.assetsignore');
  const ignored = ignore().add('.assetsignore');
  if (existsSync(ignoreFile)) ignored.add(readFileSync(ignoreFile, 'utf8'));
  const files: AssetFile[] = [];
  const onDisk = new Map<string, string>();
  let redirects: AssetRedirect[] = [];
  let headers: AssetHeaderRule[] = [];
  // A link back to a directory already walked would make the walk endless.
  const walked = new Set<string>();
  const walk = (dir: string) => {
    if (walked.has(realpathSync(dir))) throw cliError(`assets: ${relative(root, dir)} is a link back to a directory already included; remove it`);
    walked.add(realpathSync(dir));
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      const rel = relative(root, full).split(sep).join('/');
      if (ignored.ignores(entry.isDirectory() ? `${rel}/` : rel)) continue;
      let real: string;
      try {
        real = realpathSync(full);
      } catch (e) {
        throw cliError(`assets: ${rel}: ${(e as Error).message}`);
      }
      if (real !== root && !real.startsWith(root + sep))
        throw cliError(`assets: ${rel} is a symbolic link to ${real}, outside the assets directory; copy the file in, or list it in .assetsignore`);
      const stat = statSync(real);
      if (stat.isDirectory()) {
        walk(full);
        continue;
      }
      if (!stat.isFile()) throw cliError(`assets: ${rel} is not a regular file; remove it or list it in .assetsignore`);
      if (rel === '_redirects' || rel === '_headers') {
        if (stat.size > 1024 * 1024) throw cliError(`assets: ${rel} is over 1 MiB`);
        const text = readFileSync(real, 'utf8');
        if (rel === '_redirects') redirects = parseRedirects(text);
        else headers = parseHeaders(text);
        continue;
      }
      const path = `/${rel}`;
      const why = assetPathProblem(path);
      if (why) throw cliError(`assets: ${rel}: the file's path ${why}; rename it`);
      if (stat.size > ASSET_LIMITS.fileBytes)
        throw cliError(`assets: ${rel} is ${stat.size} bytes; a static asset is at most ${ASSET_LIMITS.fileBytes} bytes (25 MiB, Cloudflare's limit)`);
      if (files.length === ASSET_LIMITS.files)
        throw cliError(
          `assets: more than ${ASSET_LIMITS.files} files in ${directory} (Cloudflare's limit per version); list what need not be served in .assetsignore`,
        );
      const hash = createHash('sha256').update(readFileSync(real)).digest('hex');
      files.push({ path, hash, size: stat.size });
      onDisk.set(path, real);
    }
  };
  walk(root);
  return { files: files.sort((a, b) => (a.path < b.path ? -1 : 1)), onDisk, redirects, headers };
}

/** Uploads what the supervisor does not hold yet for the worker (the tenant as the deploy will resolve it); returns how many files went. */
export async function uploadAssets(client: AdminClient, tenant: string | undefined, name: string, gathered: GatheredAssets): Promise<number> {
  const { worker, missing } = (await client.request('POST', '/v1/assets/missing', { tenant, name, hashes: gathered.files.map((f) => f.hash) })) as {
    worker: string;
    missing: string[];
  };
  const workerPath = `/v1/workers/${worker.split('/').map(encodeURIComponent).join('/')}`;
  const wanted = new Set(missing);
  let sent = 0;
  for (const f of gathered.files) {
    if (!wanted.delete(f.hash)) continue;
    await client.request('PUT', `${workerPath}/assets/${f.hash}`, readFileSync(gathered.onDisk.get(f.path)!));
    sent++;
  }
  return sent;
}
