// An app platform (README.md): one AppRunner Durable Object per customer keeps that customer's app
// (its code, version and allowed hosts) in its own SQLite database, loads the code with the Worker
// Loader and runs the app's `App` class as a facet: an object of its own, with a SQLite database the
// platform's code cannot read, and no network but what the platform allows it.
//
//   PUT /customers/<customer>/app?allow=host1,host2   body: the app's ES module (exports class App)
//   DELETE /customers/<customer>/app                   the app and its data go
//   ANY /customers/<customer>/<path>                   the customer's app answers
//   GET /customers/<customer>/_platform/sql?q=...       what the platform's own SQL sees (a demonstration)
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';

interface Stub {
  fetch(request: Request): Promise<Response>;
}
interface Env {
  LOADER: { get(id: string, getCode: () => Promise<unknown>): { getDurableObjectClass(name?: string): unknown } };
  RUNNER: { getByName(name: string): Stub };
}
interface App {
  source: string;
  version: number;
  allow: string[];
}

/** Every fetch() of an app with allowed hosts comes here: any other host is refused. */
export class Gateway extends WorkerEntrypoint<Env, { customer: string; allow: string[] }> {
  async fetch(request: Request): Promise<Response> {
    const host = new URL(request.url).host;
    if (!this.ctx.props.allow.includes(host)) return new Response(`the platform does not let ${this.ctx.props.customer} reach ${host}`, { status: 403 });
    return fetch(request);
  }
}

/** One customer: their app's code in this object's own database, and the app itself as its facet `app`. */
export class AppRunner extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const [, , customer, ...rest] = url.pathname.split('/');
    const path = rest.join('/');
    if (path === 'app' && request.method === 'PUT') return this.deploy(customer!, await request.text(), url.searchParams.get('allow'));
    if (path === 'app' && request.method === 'DELETE') {
      // The app goes, and its database with it.
      this.ctx.facets.delete('app');
      await this.ctx.storage.delete('app');
      return new Response(`${customer}: deleted\n`);
    }
    if (path === '_platform/sql') {
      // What the platform's own SQL reaches: its own tables only; the app's database is not one of them.
      try {
        return Response.json(this.ctx.storage.sql.exec(url.searchParams.get('q') ?? '').toArray());
      } catch (e) {
        return new Response((e as Error).message, { status: 400 });
      }
    }
    const app = (await this.ctx.storage.get('app')) as App | undefined;
    if (!app) return new Response(`${customer} has no app yet: PUT its code to /customers/${customer}/app\n`, { status: 404 });
    const worker = this.env.LOADER.get(`${customer}:${app.version}`, async () => ({
      compatibilityDate: '2026-11-01',
      mainModule: 'app.js',
      modules: { 'app.js': app.source },
      env: { CUSTOMER: customer },
      // No network at all, or only the hosts the platform allows this customer, through the Gateway.
      globalOutbound: app.allow.length ? this.ctx.exports.Gateway({ props: { customer, allow: app.allow } }) : null,
      limits: { cpuMs: 100 },
    }));
    const facet = this.ctx.facets.get('app', () => ({ class: worker.getDurableObjectClass('App') })) as Stub;
    return facet.fetch(new Request(`https://${customer}.app/${path}${url.search}`, request));
  }

  /** A new version: stored, and the running facet stopped so that the next request starts the new class (its data stays). */
  async deploy(customer: string, source: string, allow: string | null): Promise<Response> {
    // Versions only grow (a deleted app's too): the loader id names the code, so new code needs a new id.
    const version = (((await this.ctx.storage.get('version')) as number | undefined) ?? 0) + 1;
    const app: App = { source, version, allow: allow ? allow.split(',').filter(Boolean) : [] };
    await this.ctx.storage.put({ app, version });
    this.ctx.facets.abort('app', new Error('a new version was deployed'));
    return new Response(`${customer}: version ${app.version}\n`);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const customer = new URL(request.url).pathname.split('/')[2] ?? '';
    if (!/^[a-z0-9-]{1,32}$/.test(customer)) return new Response('a customer name is 1-32 of a-z, 0-9 and -\n', { status: 404 });
    return env.RUNNER.getByName(customer).fetch(request);
  },
};
