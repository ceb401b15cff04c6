/**
 * `npx cordon workflows …`: instances of a tenant's workflows through the admin API (scope `workflows`).
 * Values (--params, --payload) are JSON; `status` prints the status line, output or error, and steps.
 */
import { parseArgs } from 'node:util';
import { adminClient, cliError } from './admin-client.ts';

export const WORKFLOWS_USAGE = `  workflows create <workflow> [--id <id>] [--params <json>]      start an instance; prints its id
  workflows status <workflow> <id> [--json]                     status, output or error, and steps
  workflows list <workflow> [--status <s>] [--limit <n>] [--json]
  workflows event <workflow> <id> <type> [--payload <json>]     send an event (buffered until waited for)
  workflows pause|resume|terminate|restart <workflow> <id>
                                  (all take --tenant <t>; default: default)`;

interface Status {
  id: string;
  status: string;
  createdAt: string;
  output?: unknown;
  error?: { name: string; message: string };
  steps: { name: string; count: number; type: string; status: string; attempts: number; error?: { name: string; message: string } }[];
}

function json(text: string | undefined, flag: string): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw cliError(`${flag} must be JSON, e.g. ${flag} '{"user": 1}'`);
  }
}

export async function workflowsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      tenant: { type: 'string' },
      id: { type: 'string' },
      params: { type: 'string' },
      payload: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const [action, workflow, id, type] = positionals;
  if (!action || !workflow) throw cliError(`usage:\n${WORKFLOWS_USAGE}`);
  const base = `/v1/workflows/${encodeURIComponent(values.tenant ?? 'default')}/${encodeURIComponent(workflow)}/instances`;
  const client = adminClient();
  const needId = () => {
    if (!id) throw cliError(`workflows ${action} needs an instance id: cordon workflows ${action} ${workflow} <id>`);
    return `${base}/${encodeURIComponent(id)}`;
  };
  switch (action) {
    case 'create': {
      const r = (await client.request('POST', base, { id: values.id, params: json(values.params, '--params') })) as { id: string };
      process.stdout.write(`${r.id}\n`);
      return 0;
    }
    case 'status': {
      const s = (await client.request('GET', needId())) as Status;
      if (values.json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
      else {
        process.stdout.write(`${s.id}\t${s.status}\tcreated ${s.createdAt}\n`);
        if (s.output !== undefined) process.stdout.write(`output\t${JSON.stringify(s.output)}\n`);
        if (s.error) process.stdout.write(`error\t${s.error.name}: ${s.error.message}\n`);
        for (const st of s.steps)
          process.stdout.write(
            `step\t${st.name}#${st.count}\t${st.type}\t${st.status}\tattempts ${st.attempts}${st.error ? `\t${st.error.name}: ${st.error.message}` : ''}\n`,
          );
      }
      return 0;
    }
    case 'list': {
      const q = new URLSearchParams();
      if (values.status) q.set('status', values.status);
      if (values.limit) q.set('limit', values.limit);
      const { instances } = (await client.request('GET', `${base}${q.size ? `?${q}` : ''}`)) as { instances: Status[] };
      if (values.json) process.stdout.write(JSON.stringify(instances, null, 2) + '\n');
      else for (const s of instances) process.stdout.write(`${s.id}\t${s.status}\t${s.createdAt}\n`);
      return 0;
    }
    case 'event': {
      if (!type) throw cliError(`usage: cordon workflows event ${workflow} <id> <type> [--payload <json>]`);
      await client.request('POST', `${needId()}/events/${encodeURIComponent(type)}`, { payload: json(values.payload, '--payload') });
      process.stdout.write(`sent ${type} to ${id}\n`);
      return 0;
    }
    case 'pause':
    case 'resume':
    case 'terminate':
    case 'restart':
      await client.request('POST', `${needId()}/${action}`);
      process.stdout.write(`${action}: ${id}\n`);
      return 0;
    default:
      throw cliError(`unknown workflows action ${action}\nusage:\n${WORKFLOWS_USAGE}`);
  }
}
