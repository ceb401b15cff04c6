// A platform worker that runs each customer's app as a Dynamic Worker: an isolate of its own that
// holds only what the platform passes it — its name, a stub of the platform's API scoped to that
// customer (props it never sees), and an egress gateway that allow-lists hosts per customer.
// GET /apps/<customer>/<path> runs <customer>'s app on <path>.
import { WorkerEntrypoint } from 'cloudflare:workers';

interface Loader {
  get(id: string, getCode: () => Promise<unknown>): { getEntrypoint(name?: string, options?: { props?: unknown }): { fetch(r: Request): Promise<Response> } };
}
interface Env {
  LOADER: Loader;
}
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
        import config from './config.json';
        export default {
          async fetch(request, env) {
            const path = new URL(request.url).pathname;
            if (path === '/outbound') {
              const r = await fetch('https://' + new URL(request.url).searchParams.get('host') + '/');
              return new Response('outbound: ' + r.status + ' ' + (await r.text()));
            }
            return new Response(banner + ' ' + config.colour + ' | ' + (await env.PLATFORM.greet()) + ' | ' + env.APP);
          },
        };`,
      'banner.txt': { text: 'Alice’s shop' },
      'config.json': { json: { colour: 'blue' } },
    },
  },
  bob: {
    version: 3,
    allow: [],
    modules: {
      'app.js': {
        cjs: "const counter = require('./counter.js'); module.exports = { fetch: (request, env) => new Response('Bob’s blog, visit ' + counter.next() + ' | ' + env.APP) };",
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

export default {
  async fetch(request: Request, env: Env, ctx: { exports: Record<string, (o: { props: unknown }) => unknown> }): Promise<Response> {
    const url = new URL(request.url);
    const [, , name, ...rest] = url.pathname.split('/');
    const app = name ? APPS[name] : undefined;
    if (!name || !app) return new Response('no such app\n', { status: 404 });
    const worker = env.LOADER.get(`${name}:${app.version}`, async () => ({
      compatibilityDate: '2026-11-01',
      mainModule: 'app.js',
      modules: app.modules,
      env: { APP: name, PLATFORM: ctx.exports.Platform({ props: { app: name } }) },
      globalOutbound: ctx.exports.Egress({ props: { app: name, allow: app.allow } }),
      limits: { cpuMs: 100 },
    }));
    return worker.getEntrypoint().fetch(new Request(`https://${name}.app/${rest.join('/')}${url.search}`, request));
  },
};
