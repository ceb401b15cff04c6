/**
 * `cordon keys issue --role <role> [--cordon <name>] [--out <file>]`: the keyring of one role — for a
 * sandbox, of one cordon — derived from the mesh secret, for a process on another host that must
 * never hold the secret (`cordon run` reads it from CORDON_MESH_KEYRING_FILE). The supervisor's and
 * ingress's keyrings hold Ed25519 signing seeds, a sandbox's only public keys; every keyring is a
 * credential of its role, so the file is written 0600 and never over a file of a wider mode.
 */
import { chownSync, closeSync, existsSync, fchmodSync, fstatSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { cliError } from './admin-client.ts';
import { loadConfig, loadSettings } from '../lib/config.ts';
import { CORDON_NAME, Keyring, loadMeshSecret } from '../lib/rpc/index.ts';
import { SERVICE_ROLES, type ServiceRole } from './service-process.ts';

export const KEYS_USAGE =
  'usage: cordon keys issue --role <supervisor|egress|ingress|sandbox> [--cordon <name>] [--out <file>]\n' +
  '       cordon keys cluster --out <dir> [--cordons <a,b>] [--owner <uid>]';

/** Writes `text` to `file` created 0600 (an existing file is truncated and narrowed to 0600 first). */
function writePrivate(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600);
  try {
    fchmodSync(fd, 0o600); // an existing file keeps its mode on open; narrow it before the key is in it
    if ((fstatSync(fd).mode & 0o077) !== 0) throw cliError(`cannot make ${file} private (mode 0600)`);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * `keys cluster`: what compose.yaml's secrets are made of. The mesh secret is made in `dir` if it is
 * not there yet (and stays there, on the operator's host); each role's keyring is written beside it,
 * 0600, owned by `owner` (the containers' user, uid 10001) where this process may chown.
 */
function clusterKeys(values: { out?: string; cordons?: string; owner?: string }, env: NodeJS.ProcessEnv): number {
  if (!values.out) throw cliError(`name the directory to write to: --out <dir>\n${KEYS_USAGE}`);
  const cordons = values.cordons ? loadSettings({ CORDON_CORDONS: values.cordons }).mesh.cordons : loadSettings(env).mesh.cordons;
  const owner = values.owner === undefined ? undefined : Number(values.owner);
  if (owner !== undefined && !(Number.isInteger(owner) && owner >= 0)) throw cliError(`--owner must be a numeric user id, got ${JSON.stringify(values.owner)}`);
  mkdirSync(values.out, { recursive: true, mode: 0o700 });
  const secret = loadMeshSecret(values.out, {});
  const rings: [string, ServiceRole, string?][] = [
    ['supervisor', 'supervisor'],
    ['egress', 'egress'],
    ['ingress', 'ingress'],
    ...cordons.map((c): [string, ServiceRole, string] => [`sandbox-${c}`, 'sandbox', c]),
  ];
  for (const [name, role, cordon] of rings) {
    const file = join(values.out, `${name}.keyring`);
    writePrivate(file, Keyring.forRole(secret, role, cordon).encode() + '\n');
    if (owner !== undefined) chownSync(file, owner, -1);
  }
  process.stderr.write(
    `wrote ${rings.map(([n]) => `${n}.keyring`).join(', ')} (0600${owner !== undefined ? `, owner ${owner}` : ''}) to ${values.out}; ` +
      `its mesh.secret issues more: keep it on this host, out of every container\n`,
  );
  return 0;
}

export function keysCommand(args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { role: { type: 'string' }, cordon: { type: 'string' }, out: { type: 'string' }, cordons: { type: 'string' }, owner: { type: 'string' } },
  });
  if (positionals[0] === 'cluster' && positionals.length === 1) return clusterKeys(values, env);
  if (positionals[0] !== 'issue' || positionals.length !== 1) throw cliError(KEYS_USAGE);
  const role = values.role;
  if (!(SERVICE_ROLES as readonly string[]).includes(role ?? ''))
    throw cliError(`--role must be one of ${SERVICE_ROLES.join(', ')}${role ? `, got ${JSON.stringify(role)}` : ''}\n${KEYS_USAGE}`);
  if (role === 'sandbox') {
    if (!values.cordon) throw cliError("a sandbox's keyring is for one cordon: add --cordon <name>");
    if (!CORDON_NAME.test(values.cordon)) throw cliError(`${JSON.stringify(values.cordon)} is not a valid cordon name (lower-case letters, digits, dashes)`);
  } else if (values.cordon !== undefined) throw cliError(`--cordon is for a sandbox's keyring only; ${role} serves every cordon`);
  const { dataDir } = loadConfig(env);
  // Issuing from a secret that does not exist yet would make one no running mesh uses: refuse instead.
  if (!env.CORDON_MESH_SECRET && !existsSync(join(dataDir, 'mesh.secret'))) {
    throw cliError(
      `no mesh secret here (${join(dataDir, 'mesh.secret')} does not exist and CORDON_MESH_SECRET is not set): run this where the supervisor's data dir is, with CORDON_DATA_DIR pointing at it`,
    );
  }
  const text = Keyring.forRole(loadMeshSecret(dataDir, env), role as ServiceRole, values.cordon).encode() + '\n';
  if (values.out) {
    writePrivate(values.out, text);
    process.stderr.write(
      `wrote the keyring of ${role}${values.cordon ? ` (cordon ${values.cordon})` : ''} to ${values.out} (0600); hand it to that process as CORDON_MESH_KEYRING_FILE\n`,
    );
  } else process.stdout.write(text);
  return 0;
}
