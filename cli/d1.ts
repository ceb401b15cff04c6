/** `npx cordon d1 execute <tenant>/<database> --command "<SQL>"`: as `wrangler d1 execute --command`, through the admin API. */
import { parseArgs } from 'node:util';
import { adminClient, cliError } from './admin-client.ts';

export const D1_USAGE = `  d1 execute <tenant>/<database> --command "<SQL>" [--json]
                                  run SQL on a tenant's D1 database (one transaction, the workers' authorizer);
                                  prints each statement's rows`;

export async function d1Command(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { command: { type: 'string' }, json: { type: 'boolean' } } });
  const [sub, ref] = positionals;
  if (sub !== 'execute' || !ref || !values.command) throw cliError(`usage:\n${D1_USAGE}`);
  const [tenant, database] = ref.includes('/') ? ref.split('/', 2) : ['default', ref];
  const { results } = (await adminClient().request('POST', `/v1/d1/${encodeURIComponent(tenant!)}/${encodeURIComponent(database!)}/execute`, {
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
