/**
 * `cordon export <tenant> <dir>`: the tenant's deploy history as a plain git repository, one commit
 * per version (oldest first) with each worker's modules as files. The supervisor's own history
 * stores the code sealed; this is the readable copy, for the tenant or an auditor.
 */
import * as fs from 'node:fs';
import { join, dirname } from 'node:path';
import git from 'isomorphic-git';
import { cliError } from './admin-client.ts';
import { moduleNameProblem, NAME, type WorkerBundle } from '../schemas/worker.ts';

export interface ExportedVersion {
  worker: string;
  version: string;
  createdAt: string;
  bundle: WorkerBundle;
}

/** A module export would not write, and why (deploy refuses such names; an older store may hold them). */
export interface RefusedModule {
  worker: string;
  version: string;
  module: string;
  reason: string;
}

export async function writeExport(dir: string, tenant: string, versions: ExportedVersion[]): Promise<{ versions: number; refused: RefusedModule[] }> {
  // The answer is the admin API's, but what it names becomes paths here: check it all before writing anything.
  for (const v of versions) if (!NAME.test(v.worker)) throw cliError(`refusing to export: worker name ${JSON.stringify(v.worker)} is not a plain name`);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw cliError(`${dir} is not empty; export into a new directory`);
  fs.mkdirSync(dir, { recursive: true });
  await git.init({ fs, dir, defaultBranch: 'main' });
  const refused: RefusedModule[] = [];
  for (const v of versions) {
    const base = join(dir, v.worker);
    fs.rmSync(base, { recursive: true, force: true });
    const skipped: RefusedModule[] = [];
    for (const m of v.bundle.modules) {
      const reason = moduleNameProblem(m.name);
      if (reason) {
        skipped.push({ worker: v.worker, version: v.version, module: m.name, reason });
        continue;
      }
      const file = join(base, m.name);
      fs.mkdirSync(dirname(file), { recursive: true });
      fs.writeFileSync(file, m.type === 'data' || m.type === 'wasm' ? Buffer.from(m.content, 'base64') : m.content);
    }
    const { modules: _m, ...settings } = v.bundle;
    const record = skipped.length ? { ...settings, refusedModules: skipped.map(({ module, reason }) => ({ module, reason })) } : settings;
    fs.writeFileSync(join(base, 'cordon.json'), JSON.stringify(record, null, 2) + '\n');
    refused.push(...skipped);
    await git.add({ fs, dir, filepath: '.' });
    for (const f of await git.listFiles({ fs, dir })) if (!fs.existsSync(join(dir, f))) await git.remove({ fs, dir, filepath: f });
    const when = { name: 'cordon', email: 'cordon@localhost', timestamp: Math.floor(Date.parse(v.createdAt) / 1000), timezoneOffset: 0 };
    await git.commit({ fs, dir, message: `deploy ${tenant}/${v.worker} ${v.version}`, author: when, committer: when });
  }
  return { versions: versions.length, refused };
}
