// A platform worker that runs each customer's app as a Dynamic Worker: an isolate of its own that
// holds only what the platform passes it — its name, a stub of the platform's API scoped to that
// customer (props it never sees), and an egress gateway that allow-lists hosts per customer.
// GET /apps/<customer>/<path> runs <customer>'s app on <path>.
// Dynamic workflows: an app's background jobs are instances of the platform's `app-jobs` workflow, whose
// run() loads the app and runs the app's own `Workflow` class with the durable `step`; the app starts and
// reads its jobs through `env.JOBS`, a stub scoped to that app (it cannot name another app's job).
import { WorkerEntrypoint, WorkflowEntrypoint } from 'cloudflare:workers';

interface Loader {
  get(id: string, getCode: () => Promise<unknown>): { getEntrypoint(name?: string, options?: { props?: unknown }): { fetch(r: Request): Promise<Response> } };
}
interface Env {
  LOADER: Loader;
  JOBS: {
    create(o: { id?: string; params?: unknown }): Promise<{ id: string }>;
    get(id: string): Promise<{ status(): Promise<{ status: string; output?: unknown }> }>;
  };
}
type Exports = Record<string, (o: { props: unknown }) => unknown>;
interface AppProps {
  app: string;
}

/**
 * The customers' apps. A real platform would read them from its own store; the id below carries the
 * version, so a new version is a new Worker and the old one is unloaded when idle.
 */
const APPS: Record<string, { version: number; allow: string[]; modules: Record<string, unknown> }> = {
  alice: {
    version: 1,
    allow: ['api.alice.example'],
    modules: {
      'app.js': `import banner from './banner.txt';
        import { WorkflowEntrypoint } from 'cloudflare:workers';
        import config from './config.json';
        export default {
          async fetch(request, env) {
            const path = new URL(request.url).pathname;
            if (path === '/outbound') {
              const r = await fetch('https://' + new URL(request.url).searchParams.get('host') + '/');
              return new Response('outbound: ' + r.status + ' ' + (await r.text()));
            }
            if (path === '/job') return new Response(await env.JOBS.start({ n: Number(new URL(request.url).searchParams.get('n')) }));
            if (path === '/job-status') return Response.json(await env.JOBS.status(new URL(request.url).searchParams.get('id')));
            return new Response(banner + ' ' + config.colour + ' | ' + (await env.PLATFORM.greet()) + ' | ' + env.APP);
          },
        };
        // Run durably by the platform's app-jobs workflow: each step is recorded, and replayed after a restart.
        export class Workflow extends WorkflowEntrypoint {
          async run(params, step) {
            const doubled = await step.do('double', async () => params.n * 2);
            return await step.do('add one', async () => doubled + 1);
          }
        }`,
      'banner.txt': { text: 'Alice’s shop' },
      'config.json': { json: { colour: 'blue' } },
    },
  },
  bob: {
    version: 3,
    allow: [],
    modules: {
      'app.js': {
        cjs: "const counter = require('./counter.js'); module.exports = { fetch: async (request, env) => { const id = new URL(request.url).searchParams.get('job'); if (id) { try { return Response.json(await env.JOBS.status(id)); } catch (e) { return new Response(e.message, { status: 404 }); } } return new Response('Bob’s blog, visit ' + counter.next() + ' | ' + env.APP); } };",
      },
      'counter.js': { cjs: 'let n = 0; exports.next = () => ++n;' },
    },
  },
};

/** The platform's API as one customer's app sees it: the props say which customer, and the app cannot change them. */
export class Platform extends WorkerEntrypoint<Env, AppProps> {
  greet(): string {
    return `hello ${this.ctx.props.app}, from the platform`;
  }
}

/** Every fetch() of an app comes here: hosts not on that customer's allow-list are refused. */
export class Egress extends WorkerEntrypoint<Env, AppProps & { allow: string[] }> {
  async fetch(request: Request): Promise<Response> {
    const host = new URL(request.url).hostname;
    if (!this.ctx.props.allow.includes(host)) return new Response(`egress to ${host} is not allowed for ${this.ctx.props.app}`, { status: 403 });
    return fetch(request);
  }
}

/** An app's jobs, as the app sees them: it starts its own and reads its own; another app's id is no job of its. */
export class Jobs extends WorkerEntrypoint<Env, AppProps> {
  async start(params: unknown): Promise<string> {
    const job = await this.env.JOBS.create({ id: `${this.ctx.props.app}-${crypto.randomUUID()}`, params: { app: this.ctx.props.app, params } });
    return job.id;
  }
  async status(id: string): Promise<{ status: string; output?: unknown }> {
    if (typeof id !== 'string' || !id.startsWith(`${this.ctx.props.app}-`)) throw new Error('no such job');
    const { status, output } = await (await this.env.JOBS.get(id)).status();
    return { status, output };
  }
}

/** The app's Worker: loaded (or still held) under an id that changes with its version. */
function loadApp(env: Env, exports: Exports, name: string) {
  const app = APPS[name]!;
  return env.LOADER.get(`${name}:${app.version}`, async () => ({
    compatibilityDate: '2026-11-01',
    mainModule: 'app.js',
    modules: app.modules,
    env: { APP: name, PLATFORM: exports.Platform!({ props: { app: name } }), JOBS: exports.Jobs!({ props: { app: name } }) },
    globalOutbound: exports.Egress!({ props: { app: name, allow: app.allow } }),
    limits: { cpuMs: 100 },
  }));
}

/** A job of an app: the app's own Workflow class, run with this workflow's durable step. */
export class AppWorkflow extends WorkflowEntrypoint<Env> {
  async run(event: { payload: { app: string; params: unknown } }, step: unknown): Promise<unknown> {
    const { app, params } = event.payload;
    if (!APPS[app]) throw new Error(`no app ${app}`);
    const workflow = loadApp(this.env, (this.ctx as { exports: Exports }).exports, app).getEntrypoint('Workflow') as unknown as {
      run(params: unknown, step: unknown): Promise<unknown>;
    };
    return workflow.run(params, step);
  }
}

export default {
  async fetch(request: Request, env: Env, ctx: { exports: Exports }): Promise<Response> {
    const url = new URL(request.url);
    const [, , name, ...rest] = url.pathname.split('/');
    if (!name || !APPS[name]) return new Response('no such app\n', { status: 404 });
    return loadApp(env, ctx.exports, name)
      .getEntrypoint()
      .fetch(new Request(`https://${name}.app/${rest.join('/')}${url.search}`, request));
  },
};
