/** The Durable Objects fixture project (test/fixtures/projects/objects), copied outside the repository as a user's project. */
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './mesh.ts';

export function objectsProject(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-objects-'));
  cpSync(join(ROOT, 'test/fixtures/projects/objects'), dir, { recursive: true });
  return dir;
}
