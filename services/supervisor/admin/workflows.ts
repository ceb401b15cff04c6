/**
 * The workflow routes of the admin API (scope `workflows`): instances of a tenant's workflows, for
 * operators and `npx cordon workflows …`. Values (params, payloads, outputs) are JSON here; inside
 * they are the isolate's wire encoding, which is JSON with bytes as {"$b": base64}.
 */
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { TenantName } from '../../../schemas/worker.ts';
import { EventType, InstanceId, STATUSES, WorkflowName } from '../../../schemas/workflows.ts';
import { WorkflowError } from '../workflows/errors.ts';
import { plainStatus as plain, toWire as wire } from '../workflows/json.ts';
import { readJson, send } from './http.ts';
import { ownTenant, type AdminDeps, type Call, type Route } from './route.ts';

export function workflowRoutes({ workflows: engine }: Pick<AdminDeps, 'workflows'>): Route[] {
  const at = (call: Call) => {
    const [tenant, workflow, id] = call.params;
    check(TenantName, tenant, 'tenant');
    check(WorkflowName, workflow, 'workflow');
    if (id !== undefined) check(InstanceId, id, 'instance id');
    ownTenant(call.who, tenant!);
    return { tenant: tenant!, workflow: workflow!, id: id! };
  };
  const base = '/v1/workflows/{tenant}/{workflow}/instances';
  return [
    {
      method: 'GET',
      path: '/v1/workflows/{tenant}',
      scope: 'workflows',
      summary: "The tenant's workflows and the workers hosting them",
      run(call) {
        const [tenant] = call.params;
        ownTenant(call.who, check(TenantName, tenant, 'tenant'));
        send(call.res, 200, { workflows: engine.workflows(tenant!) });
      },
    },
    {
      method: 'POST',
      path: base,
      scope: 'workflows',
      summary: 'Create an instance: { id?, params? }',
      async run(call) {
        const { tenant, workflow } = at(call);
        const body = check(
          z.object({ id: InstanceId.optional(), params: z.unknown().optional() }).strict(),
          (await readJson(call.req)) ?? {},
          'create request',
        );
        send(call.res, 201, { id: await engine.create({ tenant, workflow }, body.id ?? null, wire(body.params)) });
      },
    },
    {
      method: 'GET',
      path: base,
      scope: 'workflows',
      summary: 'List instances, newest first (?status=…&limit=…), or the one with an exact id (?id=…; none is an empty list, not a 404)',
      run(call) {
        const { tenant, workflow } = at(call);
        const id = call.url.searchParams.get('id');
        if (id !== null) {
          const ref = { tenant, workflow, id: check(InstanceId, id, 'instance id') };
          let found: ReturnType<typeof engine.status>[] = [];
          try {
            found = [engine.status(ref)];
          } catch (e) {
            if (!(e instanceof WorkflowError && e.status === 404)) throw e;
          }
          return send(call.res, 200, { instances: found.map(plain) });
        }
        const status = call.url.searchParams.get('status') ?? undefined;
        const limit = call.url.searchParams.get('limit');
        const filter = check(
          z.object({ status: z.enum(STATUSES).optional(), limit: z.coerce.number().int().min(1).max(10_000).optional() }),
          { status, limit: limit ?? undefined },
          'filter',
        );
        send(call.res, 200, { instances: engine.list({ tenant, workflow }, filter).map(plain) });
      },
    },
    {
      method: 'GET',
      path: '/v1/workflows/{tenant}/{workflow}/counts',
      scope: 'workflows',
      summary: 'How many instances are in each status',
      run(call) {
        const { tenant, workflow } = at(call);
        send(call.res, 200, { counts: engine.counts({ tenant, workflow }) });
      },
    },
    {
      method: 'GET',
      path: `${base}/{id}`,
      scope: 'workflows',
      summary: "An instance's status, output or error, its steps, and the id of its trace",
      run(call) {
        const ref = at(call);
        send(call.res, 200, { ...plain(engine.status(ref)), traceId: engine.traceId(ref) });
      },
    },
    {
      method: 'POST',
      path: `${base}/{id}/events/{type}`,
      scope: 'workflows',
      summary: 'Send an event: { payload? } (buffered until a waitForEvent of that type takes it)',
      async run(call) {
        const ref = at(call);
        const type = check(EventType, call.params[3], 'event type');
        const body = check(z.object({ payload: z.unknown().optional() }).strict(), (await readJson(call.req)) ?? {}, 'event');
        await engine.sendEvent(ref, type, wire(body.payload));
        send(call.res, 202, { sent: type });
      },
    },
    ...(['pause', 'resume', 'terminate', 'restart'] as const).map(
      (action): Route => ({
        method: 'POST',
        path: `${base}/{id}/${action}`,
        scope: 'workflows',
        summary: `${action[0]!.toUpperCase()}${action.slice(1)} an instance`,
        async run(call) {
          const ref = at(call);
          await engine[action](ref);
          send(call.res, 200, { id: ref.id, action });
        },
      }),
    ),
  ];
}
