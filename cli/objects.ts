/** `npx cordon objects …`: a worker's Durable Objects through the admin API (list: scope read; delete: scope deploy). */
import { adminClient, cliError } from './admin-client.ts';

export const OBJECTS_USAGE = `  objects list <[tenant/]worker>                                its Durable Objects: class, id, name, live, alarm, open WebSockets
  objects delete <[tenant/]worker> <class> <id>                 stop the object and wipe its storage`;

interface Listed {
  created: number;
  objects: { className: string; id: string; name: string | null; createdAt: number; alarm: number | null; live: boolean; sockets?: number }[];
}

export async function objectsCommand(args: string[], workerPath: (ref: string | undefined) => string): Promise<number> {
  const [sub, ref, className, id] = args;
  if (sub === 'list') {
    const r = (await adminClient().request('GET', `${workerPath(ref)}/objects`)) as Listed;
    for (const o of r.objects)
      process.stdout.write(
        `${o.className}\t${o.id}\t${o.name ?? '-'}\t${o.live ? 'live' : 'idle'}\t${new Date(o.createdAt).toISOString()}${o.alarm === null ? '' : `\talarm ${new Date(o.alarm).toISOString()}`}${o.sockets ? `\tsockets ${o.sockets}` : ''}\n`,
      );
    process.stdout.write(`created: ${r.created}\n`);
    return 0;
  }
  if (sub === 'delete') {
    if (!className || !id) throw cliError('usage: cordon objects delete <[tenant/]worker> <class> <id>');
    await adminClient().request('DELETE', `${workerPath(ref)}/objects/${encodeURIComponent(className)}/${encodeURIComponent(id)}`);
    process.stdout.write(`deleted ${className} ${id}\n`);
    return 0;
  }
  throw cliError(`usage:\n${OBJECTS_USAGE}`);
}
