/**
 * `cordon export <tenant> <dir>`: the tenant's deploy history as a plain git repository, one commit
 * per version (oldest first) with each worker's modules as files. The supervisor's own history
 * stores the code sealed; this is the readable copy, for the tenant or an auditor.
 */
import * as fs from 'node:fs';
import { join, dirname } from 'node:path';
import git from 'isomorphic-git';
import { CliError } from './admin-client.ts';
import type { WorkerBundle } from '../schemas/worker.ts';

export interface ExportedVersion {
  worker: string;
  version: string;
  createdAt: string;
  bundle: WorkerBundle;
}

export async function writeExport(dir: string, tenant: string, versions: ExportedVersion[]): Promise<number> {
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new CliError(`${dir} is not empty; export into a new directory`);
  fs.mkdirSync(dir, { recursive: true });
  await git.init({ fs, dir, defaultBranch: 'main' });
  for (const v of versions) {
    const base = join(dir, v.worker);
    fs.rmSync(base, { recursive: true, force: true });
    for (const m of v.bundle.modules) {
      // Module names were validated at deploy (no `..`, no absolute paths), but check again: this writes files.
      if (m.name.split('/').some((s) => s === '..' || s === '' || s === '.')) throw new CliError(`refusing module name ${JSON.stringify(m.name)}`);
      const file = join(base, m.name);
      fs.mkdirSync(dirname(file), { recursive: true });
      fs.writeFileSync(file, m.type === 'data' || m.type === 'wasm' ? Buffer.from(m.content, 'base64') : m.content);
    }
    const { modules: _m, ...settings } = v.bundle;
    fs.writeFileSync(join(base, 'cordon.json'), JSON.stringify(settings, null, 2) + '\n');
    await git.add({ fs, dir, filepath: '.' });
    for (const f of await git.listFiles({ fs, dir })) if (!fs.existsSync(join(dir, f))) await git.remove({ fs, dir, filepath: f });
    const when = { name: 'cordon', email: 'cordon@localhost', timestamp: Math.floor(Date.parse(v.createdAt) / 1000), timezoneOffset: 0 };
    await git.commit({ fs, dir, message: `deploy ${tenant}/${v.worker} ${v.version}`, author: when, committer: when });
  }
  return versions.length;
}
