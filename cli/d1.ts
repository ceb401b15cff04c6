/**
 * `npx cordon d1 execute <tenant>/<database> --command "<SQL>"` and `npx cordon d1 export <tenant>/<database>`:
 * as `wrangler d1 execute --command` and `wrangler d1 export`, through the admin API.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { adminClient, cliError } from './admin-client.ts';

export const D1_USAGE = `  d1 execute <tenant>/<database> --command "<SQL>" [--json]
                                  run SQL on a tenant's D1 database (one transaction, the workers' authorizer);
                                  prints each statement's rows
  d1 export <tenant>/<database> [--output <file>] [--table <name>]... [--no-schema] [--no-data]
                                  the database as the SQL that rebuilds it, as wrangler d1 export (stdout by default)`;

export async function d1Command(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      command: { type: 'string' },
      json: { type: 'boolean' },
      output: { type: 'string' },
      table: { type: 'string', multiple: true },
      'no-schema': { type: 'boolean' },
      'no-data': { type: 'boolean' },
    },
  });
  const [sub, ref] = positionals;
  if (!ref || (sub !== 'execute' && sub !== 'export') || (sub === 'execute' && !values.command)) throw cliError(`usage:\n${D1_USAGE}`);
  const [tenant, database] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  const path = `/v1/d1/${encodeURIComponent(tenant!)}/${encodeURIComponent(database!)}`;
  if (sub === 'export') {
    if (values['no-schema'] && values['no-data']) throw cliError('--no-schema and --no-data together leave nothing to export');
    const { sql } = (await adminClient().request('POST', `${path}/export`, {
      ...(values.table ? { tables: values.table } : {}),
      ...(values['no-schema'] ? { noSchema: true } : {}),
      ...(values['no-data'] ? { noData: true } : {}),
    })) as { sql: string };
    if (values.output) writeFileSync(values.output, `${sql}\n`);
    else process.stdout.write(`${sql}\n`);
    return 0;
  }
  const { results } = (await adminClient().request('POST', `${path}/execute`, {
    command: values.command,
  })) as { results: { results: Record<string, unknown>[]; meta: { changes: number; duration: number } }[] };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    return 0;
  }
  for (const r of results) {
    for (const row of r.results) process.stdout.write(`${JSON.stringify(row)}\n`);
    process.stdout.write(`(${r.results.length} row${r.results.length === 1 ? '' : 's'}, ${r.meta.changes} changed, ${r.meta.duration.toFixed(1)} ms)\n`);
  }
  return 0;
}
