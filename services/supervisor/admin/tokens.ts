/**
 * The token routes of the admin API (tokens.ts): create, list, revoke. A tenant-bound admin token
 * mints and revokes tokens of its own tenant only; secrets are shown once, at creation.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { TenantName } from '../../../schemas/worker.ts';
import { SCOPES } from '../tokens.ts';
import { HttpError, readJson, send } from './http.ts';
import { ownTenant, type AdminDeps, type Route } from './route.ts';

const TokenRequest = z.object({
  scopes: z.array(z.enum(SCOPES)).min(1).max(4),
  tenant: TenantName.optional(),
});

export function tokenRoutes(deps: Pick<AdminDeps, 'tokens' | 'audit'>): Route[] {
  const { tokens, audit } = deps;
  return [
    {
      method: 'POST',
      path: '/v1/tokens',
      scope: 'admin',
      summary: 'Create a token: { scopes: [read|deploy|workflows|admin], tenant? }; the token is shown once',
      async run({ req, res, who }) {
        const input = check(TokenRequest, await readJson(req), 'token request');
        // A tenant-bound admin can only mint tokens bound to its own tenant.
        const tenant = input.tenant ?? who.tenant;
        if (who.tenant !== undefined) ownTenant(who, tenant!);
        const { token, info } = tokens.create(input.scopes, tenant);
        audit.append({
          actor: `token:${who.tokenId}`,
          action: 'token.create',
          target: info.tokenId,
          outcome: 'ok',
          detail: { scopes: info.scopes, tenant: info.tenant ?? null },
        });
        send(res, 201, { token, ...info });
      },
    },
    {
      method: 'GET',
      path: '/v1/tokens',
      scope: 'admin',
      summary: 'List tokens (never the secrets)',
      run({ res, who }) {
        send(res, 200, { tokens: tokens.list(who.tenant) });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/tokens/{id}',
      scope: 'admin',
      summary: 'Revoke a token',
      run({ res, who, params }) {
        const info = tokens.get(params[0]!);
        if (!info) throw new HttpError(404, `no token ${params[0]}`);
        if (who.tenant !== undefined) ownTenant(who, info.tenant ?? '*');
        if (!tokens.revoke(info.tokenId))
          throw new HttpError(409, info.tokenId === 'root' ? 'the root token cannot be revoked through the API' : 'already revoked');
        audit.append({ actor: `token:${who.tokenId}`, action: 'token.revoke', target: info.tokenId, outcome: 'ok' });
        send(res, 200, { revoked: info.tokenId });
      },
    },
  ];
}
