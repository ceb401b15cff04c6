/**
 * `cordon d1 execute` and `cordon d1 export`: SQL on a tenant's D1 database from the admin API, as
 * `wrangler d1 execute` runs it against Cloudflare's, and the database as SQL, as `wrangler d1 export`. It runs as the tenant's workers' SQL does — in the SQL processes,
 * under the same authorizer and quota — in one transaction, and is audited. A database that does not
 * exist yet is not created by it.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { ResourceName } from '../../../schemas/resources.ts';
import { TenantName } from '../../../schemas/worker.ts';
import type { D1Result } from '../../../schemas/d1.ts';
import { splitStatements } from '../sql-storage.ts';
import { HttpError, readJson, send } from './http.ts';
import { ownTenant, type AdminDeps, type Route } from './route.ts';

/** What an operator's command may take before it is stopped, as a worker's wall limit would. */
const COMMAND_MS = 30_000;

export function d1Routes(deps: Pick<AdminDeps, 'grants' | 'audit'>): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/d1/{tenant}/{database}/execute',
      scope: 'deploy',
      summary: "Run SQL on a tenant's D1 database: { command }; every statement's result, in one transaction",
      async run({ req, res, who, params }) {
        const tenant = check(TenantName, params[0], 'tenant');
        const database = check(ResourceName, params[1], 'database');
        ownTenant(who, tenant);
        const { command } = check(z.object({ command: z.string().min(1).max(400_000) }).strict(), await readJson(req), 'execute request');
        if (!deps.grants.resources.names('d1', tenant).includes(database)) throw new HttpError(404, `tenant ${tenant} has no D1 database ${database}`);
        const statements = splitStatements(command);
        if (statements.length === 0) throw new HttpError(400, 'the command holds no SQL statement');
        const entry = { actor: `token:${who.tokenId}`, action: 'd1.execute', target: `${tenant}/${database}` };
        let results: D1Result[];
        try {
          const db = deps.grants.resources.open('d1', tenant, database);
          results = (await db.call('batch', [statements.map((s) => [s, []])], Date.now() + COMMAND_MS)) as D1Result[];
        } catch (e) {
          deps.audit.append({ ...entry, outcome: 'error', detail: { statements: statements.length, reason: (e as Error).message.slice(0, 300) } });
          throw e;
        }
        deps.audit.append({ ...entry, outcome: 'ok', detail: { statements: statements.length } });
        // BLOBs as arrays of numbers, as D1 returns them.
        const plain = results.map((r) => ({
          results: r.rows.map((row) =>
            Object.fromEntries(r.columnNames.map((c, i) => [c, row[i] instanceof Uint8Array ? [...(row[i] as Uint8Array)] : row[i]])),
          ),
          meta: r.meta,
        }));
        send(res, 200, { results: plain });
      },
    },
    {
      method: 'POST',
      path: '/v1/d1/{tenant}/{database}/export',
      scope: 'deploy',
      summary: "A tenant's D1 database as the SQL that rebuilds it, as wrangler d1 export: { tables?, noSchema?, noData? }; { sql }",
      async run({ req, res, who, params }) {
        const tenant = check(TenantName, params[0], 'tenant');
        const database = check(ResourceName, params[1], 'database');
        ownTenant(who, tenant);
        const options = check(
          z
            .object({ tables: z.array(z.string().min(1).max(256)).max(64).optional(), noSchema: z.boolean().optional(), noData: z.boolean().optional() })
            .strict(),
          await readJson(req),
          'export request',
        );
        if (!deps.grants.resources.names('d1', tenant).includes(database)) throw new HttpError(404, `tenant ${tenant} has no D1 database ${database}`);
        const entry = { actor: `token:${who.tokenId}`, action: 'd1.export', target: `${tenant}/${database}` };
        let sql: string;
        try {
          sql = (await deps.grants.resources.open('d1', tenant, database).call('export', [options], Date.now() + COMMAND_MS)) as string;
        } catch (e) {
          deps.audit.append({ ...entry, outcome: 'error', detail: { reason: (e as Error).message.slice(0, 300) } });
          throw e;
        }
        deps.audit.append({ ...entry, outcome: 'ok', detail: { bytes: Buffer.byteLength(sql) } });
        send(res, 200, { sql });
      },
    },
  ];
}
