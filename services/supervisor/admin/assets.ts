/**
 * Uploading a worker's static assets before the deploy that lists them (docs/static-assets.md): which
 * of a manifest's files the store lacks, and one file's bytes under its SHA-256. A token that may deploy
 * the worker's tenant may upload; a file is at most 25 MiB, a worker's files together at most its quota.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { ASSET_LIMITS, AssetHash } from '../../../schemas/assets.ts';
import { TenantName, WorkerName } from '../../../schemas/worker.ts';
import { readBytes, readJson, send } from './http.ts';
import { ownTenant, type AdminDeps, type Call, type Route } from './route.ts';

/** As a deploy names its worker: the tenant defaults to the token's own, else `default`. */
const MissingRequest = z.object({ tenant: TenantName.optional(), name: WorkerName, hashes: z.array(AssetHash).max(ASSET_LIMITS.files) }).strict();

/** The worker a route names, which need not exist yet (its first deploy uploads before it is created). */
function workerNamed(call: Call): string {
  const [tenant, name] = call.params as [string, string];
  ownTenant(call.who, check(TenantName, tenant, 'tenant'));
  return `${tenant}/${check(WorkerName, name, 'worker name')}`;
}

export function assetRoutes(deps: Pick<AdminDeps, 'store' | 'audit'>): Route[] {
  const { store, audit } = deps;
  return [
    {
      method: 'POST',
      path: '/v1/assets/missing',
      scope: 'deploy',
      summary: "Which of a manifest's asset files a worker has not uploaded: { tenant?, name, hashes } → { worker, missing }",
      async run(call) {
        const input = check(MissingRequest, await readJson(call.req), 'missing-assets request');
        const tenant = input.tenant ?? call.who.tenant ?? 'default';
        ownTenant(call.who, tenant);
        const id = `${tenant}/${input.name}`;
        // Before counting what is stored: uploads no version lists and nobody deployed within the hour go.
        store.assets.collect(id);
        send(call.res, 200, { worker: id, missing: store.assets.missing(id, input.hashes) });
      },
    },
    {
      method: 'PUT',
      path: '/v1/workers/{tenant}/{name}/assets/{hash}',
      scope: 'deploy',
      summary: 'Upload one static asset file (the raw bytes; {hash} is their SHA-256 in hex), at most 25 MiB',
      async run(call) {
        const id = workerNamed(call);
        const hash = check(AssetHash, call.params[2], 'asset hash');
        const bytes = await readBytes(call.req, ASSET_LIMITS.fileBytes);
        store.assets.put(id, hash, bytes);
        audit.append({ actor: `token:${call.who.tokenId}`, action: 'worker.asset-upload', target: id, outcome: 'ok', detail: { hash, bytes: bytes.length } });
        send(call.res, 201, { hash, bytes: bytes.length });
      },
    },
  ];
}
