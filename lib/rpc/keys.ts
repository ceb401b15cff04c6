/**
 * Mesh keys. One mesh secret (generated into the data dir on first start, or CORDON_MESH_SECRET)
 * derives a key per *pair of roles* that may talk: a process is handed only the pair keys of the
 * peers it is meant to reach (CORDON_MESH_KEYRING), so a compromised sandbox cannot pose as ingress
 * to another sandbox or as the supervisor to anyone.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROLES = ['supervisor', 'sandbox', 'ingress', 'egress', 'cli', 'relay'] as const;
export type Role = (typeof ROLES)[number];

/** Who may open a session to whom: [client role, server role]. Anything else is refused by construction. */
export const LINKS: readonly (readonly [Role, Role])[] = [
  ['sandbox', 'supervisor'],
  ['ingress', 'supervisor'],
  ['egress', 'supervisor'],
  ['ingress', 'sandbox'],
  ['relay', 'supervisor'],
];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function pairKey(secret: Buffer, a: Role, b: Role): Buffer {
  const [x, y] = a < b ? [a, b] : [b, a];
  return createHmac('sha256', secret).update(`cordon-mesh-v1\0${x}\0${y}`).digest();
}

/** The pair keys one role needs, as a map from peer role to key. */
export class Keyring {
  readonly self: Role;
  readonly keys: ReadonlyMap<Role, Buffer>;
  constructor(self: Role, keys: ReadonlyMap<Role, Buffer>) {
    this.self = self;
    this.keys = keys;
  }

  static derive(secret: Buffer, self: Role): Keyring {
    const keys = new Map<Role, Buffer>();
    for (const [a, b] of LINKS) {
      if (a === self) keys.set(b, pairKey(secret, a, b));
      else if (b === self) keys.set(a, pairKey(secret, a, b));
    }
    return new Keyring(self, keys);
  }

  keyFor(peer: Role): Buffer | undefined {
    return this.keys.get(peer);
  }

  /** Serialised for a child's environment (CORDON_MESH_KEYRING). */
  encode(): string {
    const o: Record<string, string> = { self: this.self };
    for (const [role, key] of this.keys) o[role] = key.toString('base64');
    return Buffer.from(JSON.stringify(o)).toString('base64');
  }

  static decode(text: string): Keyring {
    const o = JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as Record<string, unknown>;
    if (!isRole(o.self)) throw new Error('CORDON_MESH_KEYRING names no valid role');
    const keys = new Map<Role, Buffer>();
    for (const [role, value] of Object.entries(o)) {
      if (role === 'self') continue;
      if (!isRole(role) || typeof value !== 'string') throw new Error(`CORDON_MESH_KEYRING: bad entry ${role}`);
      const key = Buffer.from(value, 'base64');
      if (key.length !== 32) throw new Error(`CORDON_MESH_KEYRING: key for ${role} is not 32 bytes`);
      keys.set(role, key);
    }
    return new Keyring(o.self, keys);
  }
}

/** The mesh secret: CORDON_MESH_SECRET (hex or base64, ≥ 32 bytes) or `<dataDir>/mesh.secret`, created 0600 on first use. */
export function loadMeshSecret(dataDir: string, env: NodeJS.ProcessEnv = process.env): Buffer {
  const fromEnv = env.CORDON_MESH_SECRET;
  if (fromEnv) {
    const secret = /^[0-9a-f]+$/i.test(fromEnv) ? Buffer.from(fromEnv, 'hex') : Buffer.from(fromEnv, 'base64');
    if (secret.length < 32) throw new Error('CORDON_MESH_SECRET must encode at least 32 bytes (64 hex digits)');
    return secret;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, 'mesh.secret');
  try {
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const secret = randomBytes(32);
  try {
    writeFileSync(file, secret.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    throw e;
  }
  chmodSync(file, 0o600);
  return secret;
}

/** A process's keyring: from CORDON_MESH_KEYRING when the launcher handed one, else derived from the mesh secret. */
export function loadKeyring(self: Role, dataDir: string, env: NodeJS.ProcessEnv = process.env): Keyring {
  if (env.CORDON_MESH_KEYRING) {
    const ring = Keyring.decode(env.CORDON_MESH_KEYRING);
    if (ring.self !== self) throw new Error(`CORDON_MESH_KEYRING is for ${ring.self}, not ${self}`);
    return ring;
  }
  return Keyring.derive(loadMeshSecret(dataDir, env), self);
}
