// The workflows benchmark's worker: a 3-step workflow, an optional sleep before the last step, and an
// endpoint that creates instances in batches through the binding.
import { WorkflowEntrypoint } from 'cloudflare:workers';

interface Step {
  do<T>(name: string, fn: () => Promise<T>): Promise<T>;
  sleep(name: string, duration: number): Promise<void>;
}
interface Env {
  FLOW: {
    createBatch(batch: { params: { sleepMs: number } }[]): Promise<{ id: string }[]>;
    get(id: string): Promise<{ status(): Promise<{ status: string }> }>;
  };
}

export class ThreeSteps extends WorkflowEntrypoint<Env> {
  async run(event: { payload: { sleepMs: number } }, step: Step): Promise<number> {
    const a = await step.do('one', async () => 1);
    const b = await step.do('two', async () => a + 1);
    if (event.payload.sleepMs) await step.sleep('nap', event.payload.sleepMs);
    return step.do('three', async () => b + 1);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith('/status')) {
      const ids = (url.searchParams.get('ids') ?? '').split(',').filter(Boolean);
      const statuses = await Promise.all(ids.map(async (id) => (await (await env.FLOW.get(id)).status()).status));
      return Response.json(statuses);
    }
    const n = Math.min(Number(url.searchParams.get('n') ?? 100), 100);
    const sleepMs = Number(url.searchParams.get('sleep') ?? 0);
    const created = await env.FLOW.createBatch(Array.from({ length: n }, () => ({ params: { sleepMs } })));
    return Response.json({ ids: created.map((i) => i.id) });
  },
};
