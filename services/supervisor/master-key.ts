/**
 * The supervisor's master key: CORDON_MASTER_KEY (64 hex digits), else `<dataDir>/master.key`,
 * generated 0600 on first start. Purpose-specific keys are derived from it with HKDF, so one key
 * never serves two purposes (wrapping worker keys, authenticating the audit log, …).
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type KeyPurpose = 'audit' | 'wrap' | 'git' | 'traces' | 'objects';

export class MasterKey {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error('the master key must be 32 bytes');
    this.#key = key;
  }

  derive(purpose: KeyPurpose): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#key, Buffer.alloc(0), `cordon-master-v1:${purpose}`, 32));
  }

  static load(dataDir: string, env: NodeJS.ProcessEnv = process.env): MasterKey {
    if (env.CORDON_MASTER_KEY) {
      if (!/^[0-9a-f]{64}$/i.test(env.CORDON_MASTER_KEY)) throw new Error('CORDON_MASTER_KEY must be 64 hex digits (32 bytes)');
      return new MasterKey(Buffer.from(env.CORDON_MASTER_KEY, 'hex'));
    }
    const file = join(dataDir, 'master.key');
    try {
      return new MasterKey(Buffer.from(readFileSync(file, 'utf8').trim(), 'hex'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(e as Error).message}`);
    }
    const key = randomBytes(32);
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return new MasterKey(key);
  }
}
