// A durable signup flow: a step, a sleep, a wait for an approval event, a flaky step that succeeds on
// its third attempt. Deploy: npx cordon deploy --config examples/workflows/wrangler.jsonc
import { WorkflowEntrypoint } from 'cloudflare:workers';
import { NonRetryableError } from 'cloudflare:workflows';

interface Params {
  user: string;
  sleepMs?: number;
  fail?: 'nonretryable' | 'always';
}

interface Env {
  SIGNUP: {
    create(o: { id?: string; params?: Params }): Promise<{ id: string }>;
    createBatch(batch: { id?: string; params?: Params }[]): Promise<{ id: string }[]>;
    get(
      id: string,
    ): Promise<
      { id: string; status(): Promise<unknown>; sendEvent(e: { type: string; payload?: unknown }): Promise<void> } & Record<Control, () => Promise<void>>
    >;
    list(filter?: { status?: string; limit?: number }): Promise<{ id: string; status: string; output?: unknown }[]>;
  };
  DB: { sql: { exec(q: string, ...b: unknown[]): { toArray(): unknown[] } } };
}

type Control = 'pause' | 'resume' | 'terminate' | 'restart';

interface Step {
  do<T>(name: string, fn: (ctx: { attempt: number }) => Promise<T>): Promise<T>;
  do<T>(name: string, config: object, fn: (ctx: { attempt: number }) => Promise<T>): Promise<T>;
  sleep(name: string, duration: number | string): Promise<void>;
  waitForEvent<T>(name: string, o: { type: string; timeout?: string | number }): Promise<{ payload: T; timestamp: Date; type: string }>;
}

export class Signup extends WorkflowEntrypoint<Env> {
  async run(event: { payload: Params; instanceId: string }, step: Step): Promise<unknown> {
    // Every execution of a step callback is counted in the worker's own database: tests compare the
    // count with the engine's attempts to prove a committed step never runs again.
    const ran = (name: string) => this.env.DB.sql.exec('INSERT INTO runs (instance, step) VALUES (?, ?)', event.instanceId, name);
    const user = await step.do('create user', async () => {
      ran('create user');
      if (event.payload.fail === 'nonretryable') throw new NonRetryableError('this user can never sign up');
      return { id: event.payload.user };
    });
    await step.sleep('cool off', event.payload.sleepMs ?? 10);
    const approval = await step.waitForEvent<{ by: string }>('approval', { type: 'approved', timeout: '1 hour' });
    const attempts = await step.do('flaky', { retries: { limit: 3, delay: 20, backoff: 'constant' } }, async ({ attempt }) => {
      ran('flaky');
      if (event.payload.fail === 'always' || attempt < 3) throw new Error(`attempt ${attempt} failed`);
      return attempt;
    });
    return { user: user.id, approvedBy: approval.payload.by, attempts };
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    env.DB.sql.exec('CREATE TABLE IF NOT EXISTS runs (instance TEXT, step TEXT)');
    const url = new URL(request.url);
    const id = url.searchParams.get('id') ?? undefined;
    if (url.pathname.endsWith('/start')) {
      const instance = await env.SIGNUP.create({
        id,
        params: { user: url.searchParams.get('user') ?? 'anon', sleepMs: Number(url.searchParams.get('sleep') ?? 10) },
      });
      return Response.json({ id: instance.id });
    }
    if (url.pathname.endsWith('/status')) return Response.json(await (await env.SIGNUP.get(id!)).status());
    if (url.pathname.endsWith('/approve')) {
      await (await env.SIGNUP.get(id!)).sendEvent({ type: 'approved', payload: { by: url.searchParams.get('by') } });
      return new Response('sent');
    }
    if (url.pathname.endsWith('/batch')) {
      const ids = (url.searchParams.get('ids') ?? '').split(',');
      const made = await env.SIGNUP.createBatch(ids.map((i) => ({ id: i, params: { user: i, sleepMs: 10 } })));
      return Response.json(made.map((m) => m.id));
    }
    if (url.pathname.endsWith('/list')) {
      const limit = url.searchParams.get('limit');
      return Response.json(await env.SIGNUP.list({ status: url.searchParams.get('status') ?? undefined, limit: limit ? Number(limit) : undefined }));
    }
    if (url.pathname.endsWith('/control')) {
      const op = url.searchParams.get('op') as Control;
      await (await env.SIGNUP.get(id!))[op]();
      return new Response(op);
    }
    if (url.pathname.endsWith('/runs'))
      return Response.json(env.DB.sql.exec('SELECT instance, step, COUNT(*) AS n FROM runs GROUP BY instance, step').toArray());
    return new Response(
      '/signup/start?user=…, /status?id=…, /approve?id=…&by=…, /batch?ids=a,b, /list?status=…&limit=…, /control?id=…&op=pause|resume|terminate|restart',
      { status: 404 },
    );
  },
};
