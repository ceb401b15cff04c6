/**
 * Admin API tokens. A token carries scopes (`read`, `deploy`, `workflows`, `admin`) and optionally
 * one tenant it is bound to. Only a SHA-256 of each token is stored. The first token (the file the
 * first start writes) is an unbound admin token. `admin` implies every other scope.
 */
import type Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { tokenHash, tokenNatsKey } from '../../lib/rpc/client-proof.ts';

export const SCOPES = ['read', 'deploy', 'workflows', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  tokenId: string;
  scopes: Scope[];
  /** The one tenant this token may see and touch, or undefined for all tenants. */
  tenant: string | undefined;
}

export interface TokenInfo extends Principal {
  createdAt: string;
  revoked: boolean;
}

const hash = tokenHash;

export class TokenStore {
  readonly #db: Database.Database;
  readonly #revoked = new Set<(tokenId: string) => void>();
  constructor(db: Database.Database, rootToken: string) {
    this.#db = db;
    db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL, tenant TEXT,
      created_at INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)`);
    // The public key a token proves itself with over NATS (lib/rpc/client-proof.ts). Tokens made before
    // it was kept have none: they work over HTTP and WebSocket, and over NATS once issued again.
    const columns = db.prepare('PRAGMA table_info(tokens)').all() as { name: string }[];
    if (!columns.some((c) => c.name === 'nats_key')) db.exec('ALTER TABLE tokens ADD COLUMN nats_key TEXT');
    db.exec('CREATE UNIQUE INDEX IF NOT EXISTS tokens_nats_key ON tokens (nats_key)');
    db.prepare(`INSERT OR IGNORE INTO tokens (id, hash, scopes, tenant, created_at) VALUES ('root', ?, 'admin', NULL, ?)`).run(hash(rootToken), Date.now());
    // The root token may have been replaced (CORDON_ADMIN_TOKEN): keep its row pointing at the current one.
    db.prepare(`UPDATE tokens SET hash = ?, nats_key = ? WHERE id = 'root'`).run(hash(rootToken), tokenNatsKey(rootToken).publicKey);
  }

  create(scopes: Scope[], tenant: string | undefined): { token: string; info: TokenInfo } {
    const id = `t_${randomBytes(6).toString('hex')}`;
    const token = `cordon_${randomBytes(32).toString('base64url')}`;
    this.#db
      .prepare('INSERT INTO tokens (id, hash, nats_key, scopes, tenant, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(id, hash(token), tokenNatsKey(token).publicKey, scopes.join(','), tenant ?? null, Date.now());
    return { token, info: this.get(id)! };
  }

  /** The principal a presented token stands for, or undefined (unknown or revoked). */
  authenticate(token: string): Principal | undefined {
    const row = this.#db.prepare('SELECT id FROM tokens WHERE hash = ? AND revoked = 0').get(hash(token)) as { id: string } | undefined;
    if (!row) return undefined;
    const info = this.get(row.id)!;
    return { tokenId: info.tokenId, scopes: info.scopes, tenant: info.tenant };
  }

  /** The principal of the live token with this NATS public key (its proof is checked by the caller: lib/rpc/client-proof.ts). */
  byNatsKey(publicKey: string): Principal | undefined {
    const row = this.#db.prepare('SELECT id FROM tokens WHERE nats_key = ? AND revoked = 0').get(publicKey) as { id: string } | undefined;
    if (!row) return undefined;
    const info = this.get(row.id)!;
    return { tokenId: info.tokenId, scopes: info.scopes, tenant: info.tenant };
  }

  get(id: string): TokenInfo | undefined {
    const row = this.#db.prepare('SELECT id, scopes, tenant, created_at, revoked FROM tokens WHERE id = ?').get(id) as
      | { id: string; scopes: string; tenant: string | null; created_at: number; revoked: number }
      | undefined;
    if (!row) return undefined;
    return {
      tokenId: row.id,
      scopes: row.scopes.split(',') as Scope[],
      tenant: row.tenant ?? undefined,
      createdAt: new Date(row.created_at).toISOString(),
      revoked: row.revoked === 1,
    };
  }

  list(tenant?: string): TokenInfo[] {
    const ids = (
      tenant
        ? this.#db.prepare('SELECT id FROM tokens WHERE tenant = ? ORDER BY created_at').pluck().all(tenant)
        : this.#db.prepare('SELECT id FROM tokens ORDER BY created_at').pluck().all()
    ) as string[];
    return ids.map((id) => this.get(id)!);
  }

  /** Revoke a token; the root token cannot be revoked through the API (rotate the file instead). */
  revoke(id: string): boolean {
    if (id === 'root') return false;
    if (this.#db.prepare('UPDATE tokens SET revoked = 1 WHERE id = ? AND revoked = 0').run(id).changes !== 1) return false;
    for (const cb of this.#revoked) cb(id);
    return true;
  }

  /** Called with a token's id when it is revoked: what was obtained with it (RPC capabilities) goes too. */
  onRevoke(callback: (tokenId: string) => void): () => void {
    this.#revoked.add(callback);
    return () => this.#revoked.delete(callback);
  }
}

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes('admin') || p.scopes.includes(scope);
}
