/**
 * Each tenant's deploy history as a real git repository (`<data>/supervisor/git/<tenant>.git`,
 * bare; `git clone` it to read it). Every deploy is a commit on `main` whose tree holds, per worker,
 * `manifest.json` (version, module names, sizes and SHA-256s, settings) and `bundle.sealed` (the
 * encrypted bundle, exactly as stored). The supervisor checks before handing code out that the
 * sealed bytes are the blob that the version's commit recorded.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import git from 'isomorphic-git';

const AUTHOR = { name: 'cordon', email: 'cordon@localhost' };

/** The object id git gives these bytes as a blob. */
export function blobOid(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export class History {
  readonly #root: string;
  /** One writer at a time per tenant repository. */
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(root: string) {
    this.#root = root;
    fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  gitdir(tenant: string): string {
    return join(this.#root, `${tenant}.git`);
  }

  /** Commit a deploy; returns the commit id. */
  record(tenant: string, worker: string, version: string, manifest: object, sealed: Buffer, message: string): Promise<string> {
    const run = async () => {
      const gitdir = this.gitdir(tenant);
      if (!fs.existsSync(join(gitdir, 'HEAD'))) await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' });
      const bundle = await git.writeBlob({ fs, gitdir, blob: sealed });
      const man = await git.writeBlob({ fs, gitdir, blob: Buffer.from(JSON.stringify({ version, ...manifest }, null, 2) + '\n') });
      const workerTree = await git.writeTree({
        fs,
        gitdir,
        tree: [
          { mode: '100644', path: 'bundle.sealed', oid: bundle, type: 'blob' },
          { mode: '100644', path: 'manifest.json', oid: man, type: 'blob' },
        ],
      });
      const parent = await git.resolveRef({ fs, gitdir, ref: 'refs/heads/main' }).catch(() => undefined);
      const entries = parent ? (await git.readTree({ fs, gitdir, oid: (await git.readCommit({ fs, gitdir, oid: parent })).commit.tree })).tree : [];
      const root = entries.filter((e) => e.path !== worker);
      root.push({ mode: '040000', path: worker, oid: workerTree, type: 'tree' });
      root.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      const tree = await git.writeTree({ fs, gitdir, tree: root });
      const now = { ...AUTHOR, timestamp: Math.floor(Date.now() / 1000), timezoneOffset: 0 };
      const commit = await git.writeCommit({ fs, gitdir, commit: { message, tree, parent: parent ? [parent] : [], author: now, committer: now } });
      await git.writeRef({ fs, gitdir, ref: 'refs/heads/main', value: commit, force: true });
      return commit;
    };
    const previous = this.#locks.get(tenant) ?? Promise.resolve();
    const next = previous.then(run, run);
    this.#locks.set(
      tenant,
      next.catch(() => {}),
    );
    return next;
  }

  /** The blob id `bundle.sealed` of `worker` had in `commit`, or undefined if the commit does not record it. */
  async recordedBundle(tenant: string, worker: string, commit: string): Promise<string | undefined> {
    try {
      const gitdir = this.gitdir(tenant);
      const { tree } = (await git.readCommit({ fs, gitdir, oid: commit })).commit;
      const sub = (await git.readTree({ fs, gitdir, oid: tree })).tree.find((e) => e.path === worker && e.type === 'tree');
      if (!sub) return undefined;
      return (await git.readTree({ fs, gitdir, oid: sub.oid })).tree.find((e) => e.path === 'bundle.sealed')?.oid;
    } catch {
      return undefined;
    }
  }
}
