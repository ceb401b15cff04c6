/**
 * The Durable Object routes of the admin API: list a worker's objects (with names, alarms, whether
 * one is live now, and the count created), and delete one (its instance stops, its data is wiped).
 * A tenant-bound token reaches its own tenant's objects only.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { ObjectIdHex } from '../../../schemas/durable-objects.ts';
import { ClassName } from '../../../schemas/workflows.ts';
import { HttpError, send } from './http.ts';
import { workerOf, type AdminDeps, type Route } from './route.ts';

export function objectRoutes(deps: Pick<AdminDeps, 'store' | 'objects' | 'audit'>): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/workers/{tenant}/{name}/objects',
      scope: 'read',
      summary: "A worker's Durable Objects (?limit, ?after=<class>:<id>) and how many it has created",
      run(call) {
        const worker = workerOf(deps.store, call);
        const limit = check(z.coerce.number().int().min(1).max(10_000).default(1000), call.url.searchParams.get('limit') ?? undefined, 'limit');
        const after = check(z.string().max(300).default(''), call.url.searchParams.get('after') ?? undefined, 'after');
        send(call.res, 200, { worker: worker.id, created: deps.objects.created(worker.id), objects: deps.objects.list(worker.id, limit, after) });
      },
    },
    {
      method: 'DELETE',
      path: '/v1/workers/{tenant}/{name}/objects/{class}/{id}',
      scope: 'deploy',
      summary: 'Delete a Durable Object: its live instance stops and its storage is wiped',
      async run(call) {
        const worker = workerOf(deps.store, call);
        const className = check(ClassName, call.params[2], 'class');
        const id = check(ObjectIdHex, call.params[3], 'id');
        if (!(await deps.objects.delete(worker.id, className, id))) throw new HttpError(404, `no object ${className}:${id} of ${worker.id}`);
        deps.audit.append({
          actor: `token:${call.who.tokenId}`,
          action: 'object.delete',
          target: worker.id,
          outcome: 'ok',
          detail: { object: `${className}:${id}` },
        });
        send(call.res, 200, { deleted: `${className}:${id}` });
      },
    },
  ];
}
