/**
 * Mesh keys. One mesh secret (generated into the data dir on first start, or CORDON_MESH_SECRET)
 * derives one key per *link*, a client role and a server role in that order: the key with which
 * ingress reaches a sandbox is not the key of any link a sandbox is the client of.
 *
 * A link with a sandbox end is keyed per cordon: its key is derived from the link's base and the
 * cordon's name. A sandbox process holds only its own cordon's keys (its link to the supervisor, and
 * the key ingress uses to reach it), from which no other cordon's key can be computed; the supervisor
 * and ingress hold the base and derive the key of the cordon a peer names, so a proof made with
 * cordon C's key authenticates exactly C. Identity is what a process holds, never what it says.
 *
 * A shared key authenticates both ends alike, so on a link with a sandbox end the other end —
 * ingress reaching a sandbox, the supervisor a sandbox reaches — proves itself with a signature
 * instead: those roles hold an Ed25519 signing key, sandboxes only its public half. A sandbox, even
 * one of the same cordon (a replica), can therefore never pose as ingress or as the supervisor.
 *
 * A process gets only its role's keyring (`Keyring.forRole`, encoded into CORDON_MESH_KEYRING by
 * `cordon start`, or written to a file by `cordon keys issue` for CORDON_MESH_KEYRING_FILE), never the
 * secret. The encoding is versioned; a keyring of an older format is refused by name.
 */
import { createHmac, createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROLES = ['supervisor', 'sandbox', 'ingress', 'egress', 'cli', 'relay', 'agent'] as const;
export type Role = (typeof ROLES)[number];

/** Who may open a session to whom: [client role, server role]. Anything else is refused by construction. */
export const LINKS: readonly (readonly [Role, Role])[] = [
  ['sandbox', 'supervisor'],
  ['ingress', 'supervisor'],
  ['egress', 'supervisor'],
  ['ingress', 'sandbox'],
  ['relay', 'supervisor'],
  // The dedicated-cordon agent (`cordon run dedicated`) reads the list of q-/d- cordons, and nothing else.
  ['agent', 'supervisor'],
];

/** The roles that sign their proofs: the non-sandbox end of every link with a sandbox end. */
export const SIGNERS: readonly Role[] = [...new Set(LINKS.filter(([c, s]) => perCordon(c, s)).map(([c, s]) => (c === 'sandbox' ? s : c)))];

/** A cordon's name: what a sandbox's per-cordon keys are derived for. */
export const CORDON_NAME = /^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/;

/** The version of the keyring encoding (1: one key per unordered pair of roles, no longer accepted). */
const KEYRING_VERSION = 2;

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

const linkId = (client: Role, server: Role) => `${client}>${server}`;

function isLink(client: Role, server: Role): boolean {
  return LINKS.some(([c, s]) => c === client && s === server);
}

/** Whether the link's key is per cordon: it has a sandbox end. */
function perCordon(client: Role, server: Role): boolean {
  return client === 'sandbox' || server === 'sandbox';
}

/** The cordon a session's keys are derived for: the name of its sandbox end, if it has one. */
export function linkCordon(client: { role: Role; name?: string }, server: { role: Role; name?: string }): string | undefined {
  if (server.role === 'sandbox') return server.name;
  if (client.role === 'sandbox') return client.name;
  return undefined;
}

/** A link's key, or for a per-cordon link its base. Client and server are bound in order. */
export function linkKey(secret: Buffer, client: Role, server: Role): Buffer {
  return createHmac('sha256', secret).update(`cordon-mesh-v2\0link\0${client}\0${server}`).digest();
}

/** The Ed25519 seed of a signing role. */
function signingSeed(secret: Buffer, role: Role): Buffer {
  return createHmac('sha256', secret).update(`cordon-mesh-v2\0sign\0${role}`).digest();
}

// Node imports a raw Ed25519 seed only wrapped in PKCS#8 (RFC 8410): this fixed prefix is that wrapping.
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const privateFromSeed = (seed: Buffer): KeyObject => createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
const rawPublic = (key: KeyObject): Buffer => Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');
const publicFromRaw = (raw: Buffer): KeyObject => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });

/** The key of a per-cordon link for one cordon, from the link's base. */
export function cordonKey(base: Buffer, cordon: string): Buffer {
  return createHmac('sha256', base).update(`cordon-mesh-v2\0cordon\0${cordon}`).digest();
}

/**
 * The keys one role holds, by link. For a per-cordon link a sandbox's keyring holds its cordon's key;
 * any other role's holds the base.
 */
export class Keyring {
  readonly self: Role;
  /** A sandbox's cordon: the only cordon its per-cordon keys are for. */
  readonly cordon: string | undefined;
  readonly #links: ReadonlyMap<string, Buffer>;
  /** This role's signing seed, for a signing role. */
  readonly #seed: Buffer | undefined;
  readonly #signer: KeyObject | undefined;
  /** The public keys of the signing roles this keyring's links reach, by role (a sandbox's). */
  readonly #verifiers: ReadonlyMap<Role, KeyObject>;

  private constructor(
    self: Role,
    cordon: string | undefined,
    links: ReadonlyMap<string, Buffer>,
    seed: Buffer | undefined,
    verifiers: ReadonlyMap<Role, KeyObject>,
  ) {
    this.self = self;
    this.cordon = cordon;
    this.#links = links;
    this.#seed = seed;
    this.#signer = seed && privateFromSeed(seed);
    this.#verifiers = verifiers;
  }

  /** The keyring of `role` (for a sandbox, of one cordon): exactly what a process of that role is handed. */
  static forRole(secret: Buffer, role: Role, cordon?: string): Keyring {
    checkCordon(role, cordon, 'Keyring.forRole');
    const links = new Map<string, Buffer>();
    const verifiers = new Map<Role, KeyObject>();
    for (const [client, server] of LINKS) {
      if (client !== role && server !== role) continue;
      const key = linkKey(secret, client, server);
      links.set(linkId(client, server), role === 'sandbox' && perCordon(client, server) ? cordonKey(key, cordon!) : key);
      const other = client === role ? server : client;
      if (role === 'sandbox' && SIGNERS.includes(other)) verifiers.set(other, createPublicKey(privateFromSeed(signingSeed(secret, other))));
    }
    return new Keyring(role, cordon, links, SIGNERS.includes(role) ? signingSeed(secret, role) : undefined, verifiers);
  }

  /** Whether `role`, at this end of the link client→server, proves itself by signing rather than with the link key. */
  static signs(role: Role, client: Role, server: Role): boolean {
    return perCordon(client, server) && role !== 'sandbox';
  }

  /** Signs `data` as this role; throws for a role that holds no signing key. */
  sign(data: Buffer): Buffer {
    if (!this.#signer) throw new Error(`role ${this.self} holds no signing key`);
    return sign(null, data, this.#signer);
  }

  /** Whether `signature` over `data` is `role`'s; false when this keyring holds no public key of that role. */
  verify(role: Role, data: Buffer, signature: Buffer): boolean {
    const key = this.#verifiers.get(role);
    return key !== undefined && signature.length === 64 && verify(null, data, key, signature);
  }

  /**
   * The key of the link client→server — for a per-cordon link, of `cordon` — or undefined when this
   * keyring cannot authenticate that link (not its role's, or another cordon's).
   */
  key(client: Role, server: Role, cordon?: string): Buffer | undefined {
    const held = this.#links.get(linkId(client, server));
    if (!held || !perCordon(client, server)) return held;
    if (cordon === undefined || !CORDON_NAME.test(cordon)) return undefined;
    if (this.self !== 'sandbox') return cordonKey(held, cordon);
    return cordon === this.cordon ? held : undefined;
  }

  /** Whether this keyring holds the link client→server at all (for some cordon, if per cordon). */
  holds(client: Role, server: Role): boolean {
    return this.#links.has(linkId(client, server));
  }

  /** One line of text for an environment variable or a file (`cordon keys issue`). */
  encode(): string {
    const links: Record<string, string> = {};
    for (const [id, key] of this.#links) links[id] = key.toString('base64');
    const verify = Object.fromEntries([...this.#verifiers].map(([role, key]) => [role, rawPublic(key).toString('base64')]));
    return Buffer.from(
      JSON.stringify({ v: KEYRING_VERSION, role: this.self, cordon: this.cordon, links, sign: this.#seed?.toString('base64'), verify }),
    ).toString('base64');
  }

  /** Parses an encoded keyring; `source` names where it came from in errors. */
  static decode(text: string, source = 'CORDON_MESH_KEYRING'): Keyring {
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(Buffer.from(text.trim(), 'base64').toString('utf8')) as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('not an object');
    } catch {
      throw new Error(`${source} is not a Cordon keyring (expected what \`cordon start\` hands a service)`);
    }
    if (o.v === undefined && 'self' in o) {
      throw new Error(
        `${source} is a keyring of the old format (one key per pair of roles), which no longer authenticates: hand the process a new keyring (restart \`cordon start\`, or issue one from the mesh secret)`,
      );
    }
    if (o.v !== KEYRING_VERSION)
      throw new Error(`${source} is a keyring of format ${JSON.stringify(o.v)}; this Cordon reads format ${KEYRING_VERSION}: issue a new one`);
    const role = o.role;
    if (!isRole(role)) throw new Error(`${source} names no valid role`);
    const cordon = o.cordon;
    if (cordon !== undefined && typeof cordon !== 'string') throw new Error(`${source}: the cordon is not a name`);
    checkCordon(role, cordon, source);
    if (typeof o.links !== 'object' || o.links === null) throw new Error(`${source} holds no links`);
    const links = new Map<string, Buffer>();
    for (const [id, value] of Object.entries(o.links)) {
      const [client, server] = id.split('>');
      if (!isRole(client) || !isRole(server) || !isLink(client, server) || (client !== role && server !== role)) {
        throw new Error(`${source}: ${JSON.stringify(id)} is not a link of role ${role}`);
      }
      const key = typeof value === 'string' ? Buffer.from(value, 'base64') : undefined;
      if (key?.length !== 32) throw new Error(`${source}: the key of ${id} is not 32 bytes`);
      links.set(id, key);
    }
    const seed = typeof o.sign === 'string' ? Buffer.from(o.sign, 'base64') : undefined;
    if (SIGNERS.includes(role) !== (seed !== undefined) || (seed && seed.length !== 32))
      throw new Error(`${source}: a keyring of role ${role} ${SIGNERS.includes(role) ? 'needs its 32-byte signing seed' : 'holds no signing seed'}`);
    const verifiers = new Map<Role, KeyObject>();
    for (const [peer, value] of Object.entries((o.verify ?? {}) as Record<string, unknown>)) {
      const raw = typeof value === 'string' ? Buffer.from(value, 'base64') : undefined;
      if (!isRole(peer) || !SIGNERS.includes(peer) || raw?.length !== 32)
        throw new Error(`${source}: ${JSON.stringify(peer)} is not a signing role's 32-byte public key`);
      verifiers.set(peer, publicFromRaw(raw));
    }
    return new Keyring(role, cordon, links, seed, verifiers);
  }
}

/** A sandbox's keyring is for exactly one valid cordon; no other role's is for any. */
function checkCordon(role: Role, cordon: string | undefined, where: string): void {
  if (role !== 'sandbox') {
    if (cordon !== undefined) throw new Error(`${where}: a keyring of role ${role} is not for a cordon (got ${JSON.stringify(cordon)})`);
    return;
  }
  if (cordon === undefined) throw new Error(`${where}: a sandbox's keyring must name its cordon`);
  if (!CORDON_NAME.test(cordon)) throw new Error(`${where}: ${JSON.stringify(cordon)} is not a valid cordon name (lower-case letters, digits, dashes)`);
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

/** Where a process is handed its keyring: a file (`cordon keys issue --out`), or the text itself. */
export const KEYRING_FILE_ENV = 'CORDON_MESH_KEYRING_FILE';
export const KEYRING_ENV = 'CORDON_MESH_KEYRING';

/**
 * The keyring handed to this process, if any (the file wins over the variable), and where it came
 * from for errors. Undefined when neither is set: the process derives its keys from the mesh secret.
 */
export function handedKeyring(env: NodeJS.ProcessEnv = process.env): { ring: Keyring; source: string } | undefined {
  const file = env[KEYRING_FILE_ENV];
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new Error(
        `cannot read the keyring file ${KEYRING_FILE_ENV}=${file}: ${(e as Error).message} (issue one with \`cordon keys issue --role <role> --out <file>\` where the mesh secret is)`,
      );
    }
    const source = `the keyring file ${file}`;
    return { ring: Keyring.decode(text, source), source };
  }
  if (env[KEYRING_ENV]) return { ring: Keyring.decode(env[KEYRING_ENV]), source: KEYRING_ENV };
  return undefined;
}

/** Refuses a handed keyring that is not of `self` (and, for a sandbox, of `cordon`), saying what to do. */
export function checkHanded(handed: { ring: Keyring; source: string }, self: Role, cordon?: string): Keyring {
  const { ring, source } = handed;
  if (ring.self !== self)
    throw new Error(`${source} is for ${ring.self}, not ${self}: issue one with \`cordon keys issue --role ${self}${cordon ? ` --cordon ${cordon}` : ''}\``);
  if (ring.cordon !== cordon) {
    throw new Error(
      `${source} is for cordon ${ring.cordon}, not ${cordon}: a sandbox's keyring authenticates its one cordon only; issue one with \`cordon keys issue --role sandbox --cordon ${cordon}\``,
    );
  }
  return ring;
}

/**
 * A process's keyring: the one it was handed (CORDON_MESH_KEYRING_FILE, CORDON_MESH_KEYRING), else
 * derived from the mesh secret. A sandbox names its cordon, and a handed keyring must be that cordon's.
 * A process handed a keyring never reads the secret.
 */
export function loadKeyring(self: Role, dataDir: string, env: NodeJS.ProcessEnv = process.env, cordon?: string): Keyring {
  const handed = handedKeyring(env);
  if (handed) return checkHanded(handed, self, cordon);
  return Keyring.forRole(loadMeshSecret(dataDir, env), self, cordon);
}
