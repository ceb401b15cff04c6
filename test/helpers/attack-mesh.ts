/**
 * The set-up most attack suites share: a fresh mesh, the attacker's projects (an `index.js` and a
 * `wrangler.json` each, deployed through the CLI as a user would, each under its tenant) and the bystander
 * every attack must leave unharmed (examples/hello as `bystander` of tenant `other`, at `/bystander`).
 * Resolves once each project's probe path and the bystander answer 200.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestMesh, waitFor, type TestMesh } from './mesh.ts';

export interface AttackProject {
  tenant: string;
  /** The worker's module, as `index.js`. */
  worker: string;
  /** wrangler.json, with `main: 'index.js'` added. */
  config: Record<string, unknown>;
  /** A path that answers 200 once the worker serves. */
  probe: string;
}

export interface AttackMesh {
  mesh: TestMesh;
  stop(): Promise<void>;
}

export async function startAttackMesh(projects: AttackProject[], env: NodeJS.ProcessEnv = {}): Promise<AttackMesh> {
  const dirs = projects.map((p) => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-attack-'));
    writeFileSync(join(dir, 'index.js'), p.worker);
    writeFileSync(join(dir, 'wrangler.json'), JSON.stringify({ main: 'index.js', ...p.config }));
    return dir;
  });
  const mesh = await startTestMesh(env);
  const stop = async () => {
    await mesh.stop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const [i, p] of projects.entries()) {
      const r = await mesh.cli(['deploy', '--tenant', p.tenant], dirs[i]);
      assert.equal(r.code, 0, r.stderr);
    }
    const r = await mesh.cli(['deploy', 'examples/hello/index.ts', '--name', 'bystander', '--tenant', 'other', '--route', '*/bystander*']);
    assert.equal(r.code, 0, r.stderr);
    const paths = [...projects.map((p) => p.probe), '/bystander'];
    await waitFor('every worker', async () => {
      for (const path of paths) {
        const res = await fetch(`${mesh.httpUrl}${path}`);
        await res.arrayBuffer();
        if (res.status !== 200) return undefined;
      }
      return true;
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { mesh, stop };
}
