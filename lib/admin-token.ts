/**
 * The first admin token: CORDON_ADMIN_TOKEN, else generated on first start into
 * `<dataDir>/admin.token` (mode 0600). The supervisor checks it; the CLI reads it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function adminTokenPath(dataDir: string): string {
  return join(dataDir, 'admin.token');
}

export function loadAdminToken(dataDir: string): string {
  if (process.env.CORDON_ADMIN_TOKEN) return process.env.CORDON_ADMIN_TOKEN;
  const file = adminTokenPath(dataDir);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = `cordon_${randomBytes(32).toString('base64url')}`;
  try {
    writeFileSync(file, token + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Created meanwhile by another process (launcher and supervisor race on first start).
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readFileSync(file, 'utf8').trim();
    throw e;
  }
  return token;
}
